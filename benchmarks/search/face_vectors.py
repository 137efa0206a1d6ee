"""Face vectors for the face-index benchmark: synthetic identities, and vectors with the statistics of real embeddings.

Two data sets, both L2-normalised float32 with ``n / 5`` identities (about five faces a person, as in a day of
a site), queries being *new* faces of identities in the base (another photo of someone who was filmed):

* ``synthetic`` — :mod:`benchmarks.search.synthetic`: random unit identity centres plus isotropic noise. Nearly
  uniform on the sphere in all 128 dimensions: the hardest case for any approximate index (the strangers in the
  exact top 10 are near-ties at cosine ≈ 0.4 among 10^6 random points).
* ``real`` — built from the project's own face crops and embedder. The 9 faces of ``testdata/faces`` (8 people)
  are detected and aligned with the project's detector (CenterFace) into dlib chips; new *pseudo-identities* are
  pixel morphs of 2–3 chips of different people with random weights; each face of a pseudo-identity is that morph
  through random camera-like damage (rotation, scale, shift, mirror, brightness, contrast, blur, noise, JPEG).
  Every one of those chips goes through the real dlib ResNet (``DlibEmbedder``): a few thousand real embeddings.
  10^6 vectors cannot be embedded on two cores (54 ms a face), so the base is grown from them: identity centres
  drawn from a Gaussian fitted to the real pseudo-identity centres (mean and covariance, shrunk toward the
  diagonal), faces = centre + a real within-identity residual (an embedding minus its pseudo-identity's mean,
  drawn at random from the pool). The real embeddings themselves form the first rows of the base.

What the ``real`` set does and does not say: it has the real network's geometry (all embeddings in a narrow cone,
an anisotropic spectrum, real within-person spread under damage), so it is far easier for ANN indexes than the
synthetic set. Its between-person spread comes from morphs of 8 people, not from a population, so it may be
*lower*-dimensional than real faces at scale: the benchmark prints each set's effective dimension (participation
ratio of the covariance spectrum) beside the results, and the index defaults are chosen on the synthetic set,
the harder one.

Both sets are cached under ``var/bench/face-index/`` (``.npy``: plain arrays, ``allow_pickle=False``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from benchmarks.search import synthetic as syn

log = logging.getLogger(__name__)

FACES_PER_PERSON = 5


def synthetic(n: int, queries: int, dim: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(base, queries) of the synthetic identities (``n / 5`` people, queries are new faces of base people)."""
    rng = np.random.default_rng(seed)
    people = max(1, n // FACES_PER_PERSON)
    centres = syn.identities(rng, people, dim)
    base = np.empty((n, dim), dtype=np.float32)
    for i in range(0, n, 100_000):
        m = min(100_000, n - i)
        base[i:i + m] = syn.faces_of(rng, centres, rng.integers(0, people, size=m))
    return base, syn.faces_of(rng, centres, rng.integers(0, people, size=queries))


# -- real embeddings --------------------------------------------------------------------------------
def source_chips(testdata: Path) -> tuple[list[np.ndarray], list[int]]:
    """dlib chips (150×150 BGR) of every face in ``testdata/faces`` and the person each belongs to."""
    from models.zoo import ModelZoo

    zoo = ModelZoo.from_config()
    detector, embedder = zoo.face_detector(), zoo.face_embedder("dlib-resnet-v1")
    chips: list[np.ndarray] = []
    people: list[int] = []
    names: dict[str, int] = {}
    for path in sorted((testdata / "faces").glob("*.jpg")):
        image = cv2.imread(str(path))
        if image is None:
            continue
        faces = detector.detect(image)
        if not len(faces):
            continue
        if path.name.startswith("person_"):  # a portrait: its largest face is the named person
            best = int(np.argmax(faces.area))
            faces = faces[np.array([i == best for i in range(len(faces))])]
        for n, chip in enumerate(embedder.chips(image, faces)):
            key = path.stem.rsplit("_", 1)[0] if path.name.startswith("person_") else f"{path.stem}#{n}"
            people.append(names.setdefault(key, len(names)))
            chips.append(chip)
    return chips, people


def damage(rng: np.random.Generator, chip: np.ndarray) -> np.ndarray:
    """One camera-like copy of a chip: small similarity warp, mirror, light, blur, noise, JPEG."""
    size = chip.shape[0]
    angle, scale = rng.uniform(-10, 10), rng.uniform(0.92, 1.08)
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)
    matrix[:, 2] += rng.uniform(-5, 5, size=2)
    out = cv2.warpAffine(chip, matrix, (size, size), borderMode=cv2.BORDER_REPLICATE)
    if rng.random() < 0.5:
        out = np.ascontiguousarray(out[:, ::-1])
    out = cv2.convertScaleAbs(out, alpha=rng.uniform(0.6, 1.3), beta=rng.uniform(-25, 25))
    if rng.random() < 0.5:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 2.0))
    noisy = out.astype(np.float32) + rng.normal(0, rng.uniform(0, 8), out.shape).astype(np.float32)
    out = np.clip(noisy, 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 95))])
    decoded = cv2.imdecode(jpeg, cv2.IMREAD_COLOR) if ok else None
    return out if decoded is None else decoded


def morph(rng: np.random.Generator, chips: list[np.ndarray], people: list[int]) -> np.ndarray:
    """A pseudo-identity: a pixel blend of 2–3 chips of different people with Dirichlet weights."""
    persons = rng.choice(sorted(set(people)), size=int(rng.integers(2, 4)), replace=False)
    picks = [int(rng.choice([i for i, p in enumerate(people) if p == person])) for person in persons]
    weights = rng.dirichlet(np.ones(len(picks)))
    blend = sum(w * chips[i].astype(np.float32) for w, i in zip(weights, picks, strict=True))
    return np.clip(blend, 0, 255).astype(np.uint8)


def real_embeddings(testdata: Path, identities: int, faces: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, identity labels): ``faces`` damaged copies of each of ``identities`` pseudo-identities,
    embedded by the real dlib ResNet (the 8 real people are the first identities)."""
    from models.zoo import ModelZoo

    rng = np.random.default_rng(seed)
    chips, people = source_chips(testdata)
    embedder = ModelZoo.from_config().face_embedder("dlib-resnet-v1")
    recipes: list[np.ndarray] = []
    for person in sorted(set(people)):
        recipes.append(chips[people.index(person)])
    while len(recipes) < identities:
        recipes.append(morph(rng, chips, people))
    vectors, labels = [], []
    for label, recipe in enumerate(recipes[:identities]):
        batch = [damage(rng, recipe) for _ in range(faces)]
        vectors.append(embedder.embed_chips(batch))
        labels += [label] * faces
        if label % 100 == 0:
            log.info("real embeddings: %d/%d identities", label, identities)
    return np.concatenate(vectors).astype(np.float32), np.asarray(labels, dtype=np.int64)


def effective_dimension(vectors: np.ndarray) -> float:
    """Participation ratio of the covariance spectrum, (Σλ)² / Σλ²: 128 for isotropic 128-d data."""
    sample = vectors[: min(len(vectors), 100_000)].astype(np.float64)
    eig = np.clip(np.linalg.eigvalsh(np.cov(sample, rowvar=False)), 0, None)
    return float(eig.sum() ** 2 / max(1e-30, (eig ** 2).sum()))


def grow(embeddings: np.ndarray, labels: np.ndarray, n: int, queries: int, seed: int = 2,
         shrink: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(base, queries) of ``n`` vectors with the statistics of the real embeddings (see the module docstring).

    Queries are real embeddings held out of the base (one damaged copy of each of ``queries`` pseudo-identities;
    their other copies are in the base) when there are enough, topped up with grown faces of grown people.
    """
    rng = np.random.default_rng(seed)
    dim = embeddings.shape[1]
    ids = np.unique(labels)
    centres = np.stack([embeddings[labels == i].mean(axis=0) for i in ids])
    residuals = embeddings - centres[np.searchsorted(ids, labels)]
    mean = centres.mean(axis=0)
    cov = np.cov(centres.astype(np.float64), rowvar=False)
    cov = (1 - shrink) * cov + shrink * np.diag(np.diag(cov))
    root = np.linalg.cholesky(cov + 1e-9 * np.eye(dim)).astype(np.float32)
    held = rng.choice(len(ids), size=min(queries, len(ids)), replace=False)
    held_rows = np.array([int(np.flatnonzero(labels == ids[i])[0]) for i in held], dtype=np.int64)
    keep = np.ones(len(embeddings), dtype=bool)
    keep[held_rows] = False
    real_base = embeddings[keep]
    people = max(1, (n - len(real_base)) // FACES_PER_PERSON)
    grown_centres = (mean + rng.standard_normal((people, dim)).astype(np.float32) @ root.T).astype(np.float32)
    base = np.empty((n, dim), dtype=np.float32)
    base[: len(real_base)] = real_base
    step = 100_000
    for i in range(len(real_base), n, step):
        m = min(step, n - i)
        who = rng.integers(0, people, size=m)
        noise = residuals[rng.integers(0, len(residuals), size=m)] * rng.choice([-1.0, 1.0], size=(m, 1))
        base[i:i + m] = grown_centres[who] + noise.astype(np.float32)
    q = list(embeddings[held_rows])
    while len(q) < queries:
        who = int(rng.integers(0, people))
        q.append(grown_centres[who] + residuals[int(rng.integers(0, len(residuals)))])
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    qa = np.asarray(q, dtype=np.float32)
    qa /= np.linalg.norm(qa, axis=1, keepdims=True)
    return base, qa


def cached(folder: Path, name: str, make: object) -> tuple[np.ndarray, ...]:
    """The arrays saved under ``folder/name.*.npy``, made (and saved) by ``make()`` when absent."""
    paths = sorted(folder.glob(f"{name}.*.npy"))
    if paths:
        return tuple(np.load(p, allow_pickle=False) for p in paths)
    assert callable(make)
    arrays = make()
    folder.mkdir(parents=True, exist_ok=True)
    for i, array in enumerate(arrays):
        np.save(folder / f"{name}.{i}.npy", array, allow_pickle=False)
    return tuple(arrays)


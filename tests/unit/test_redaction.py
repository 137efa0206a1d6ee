"""Redaction on export with the real face detector (CenterFace): a recording of the six-person group photo,
a case item on it, the preview listing the six faces, and packages whose redacted clip and still show no face
the detector can find — except the one face the investigator kept, where it is. The recording is unchanged.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from models.zoo import ModelZoo
from pipeline.access import ScopedStore, access_matrix
from pipeline.cases.redaction import iou
from pipeline.config import TubelineConfig, with_overrides
from pipeline.config.api import ApiConfig
from pipeline.store.local import LocalStore
from tests.unit.test_api_support import (
    T0,
    TEST_CASE,
    FakeAnalyzer,
    add_users,
    login,
    register_cameras,
    sample_search,
    write_recording,
)
from workers.api.app import create_app
from workers.api.context import build_context

TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata"


@pytest.fixture(scope="module")
def group() -> np.ndarray:
    image = cv2.imread(str(TESTDATA / "faces" / "group_6.jpg"))
    return cv2.resize(image, (400, 276), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def detector() -> object:
    return ModelZoo().face_detector()


@pytest.fixture
def client(tmp_path: Path, group: np.ndarray) -> Iterator[tuple[TestClient, LocalStore]]:
    store = LocalStore(tmp_path / "store")
    register_cameras(store)
    add_users(store)

    def frame(n: int) -> np.ndarray:
        return np.roll(group, n, axis=1)  # a slow pan

    write_recording(store, "cam-a", T0 - timedelta(seconds=3), 6, fps=5, size=(400, 276), frame=frame, crf=18)
    config = with_overrides(TubelineConfig(), {"cases.evidence_key_file": str(tmp_path / "evidence.key")})
    ctx = build_context(config, store=ScopedStore(store, access_matrix(config)["api"]), search=sample_search(),
                        face_analyzer_factory=FakeAnalyzer, audit_writer="test",
                        api=ApiConfig(cache_dir=str(tmp_path / "cache")))
    with TestClient(create_app(ctx, start_background=False)) as c:
        login(c, "ann")
        yield c, store


def faces_in_clip(data: bytes, detector: object) -> list[list[tuple[float, ...]]]:
    found = []
    with av.open(io.BytesIO(data)) as container:
        for frame in container.decode(video=0):
            found.append([tuple(b) for b in detector.detect(frame.to_ndarray(format="bgr24")).xyxy])  # type: ignore[attr-defined]
    return found


def package(client: TestClient, redact: dict) -> zipfile.ZipFile:
    built = client.post(f"/api/cases/{TEST_CASE}/packages", json={"reason": "release to the press", "redact": redact})
    assert built.status_code == 200, built.text
    return zipfile.ZipFile(io.BytesIO(client.get(built.json()["url"]).content))


def test_redacted_export_leaves_no_bystander_face_and_keeps_the_chosen_one(
        client: tuple[TestClient, LocalStore], detector: object) -> None:
    c, store = client
    segments = {i.key: hashlib.sha256(store.get(i.key)).hexdigest() for i in store.list("recordings/cam-a/")}
    item = c.post(f"/api/cases/{TEST_CASE}/items", json={"kind": "plate", "ref": "cam-a:s:0.plate.0"}).json()
    preview = c.post(f"/api/cases/{TEST_CASE}/redaction/preview",
                     json={"item_id": item["item_id"], "faces": True, "plates": False})
    assert preview.status_code == 200, preview.text
    objects = preview.json()["objects"]
    assert [o["label"] for o in objects] == [f"face:{n}" for n in range(1, 7)] and all(o["blurred"] for o in objects)
    assert preview.json()["image"].startswith("data:image/jpeg;base64,")

    zf = package(c, {"faces": True, "plates": False})
    clips = [n for n in zf.namelist() if n.startswith("clips/")]
    assert clips == [n for n in clips if n.endswith("-redacted.mp4")] and len(clips) == 1
    per_frame = faces_in_clip(zf.read(clips[0]), detector)
    assert len(per_frame) >= 15 and all(f == [] for f in per_frame), per_frame  # no face left to find
    stills = [n for n in zf.namelist() if n.startswith("stills/") and n.endswith("frame-redacted.png")]
    still = cv2.imdecode(np.frombuffer(zf.read(stills[0]), np.uint8), cv2.IMREAD_COLOR)
    assert len(detector.detect(still)) == 0  # type: ignore[attr-defined]
    manifest = __import__("json").loads(zf.read("manifest.json"))
    entry = next(f for f in manifest["files"] if f["path"] == clips[0])
    assert entry["redacted"]["faces_blurred"] == 6 and not entry["remuxed"]

    zf = package(c, {"faces": True, "plates": False, "keep": [f"{item['item_id']}/face:1"]})
    clip = next(n for n in zf.namelist() if n.startswith("clips/"))
    kept = faces_in_clip(zf.read(clip), detector)
    original = detector.detect(np.roll(cv2.resize(cv2.imread(str(TESTDATA / "faces" / "group_6.jpg")), (400, 276)),  # type: ignore[attr-defined]
                                       0, axis=1)).xyxy
    first = tuple(min(original, key=lambda b: b[0]))  # face:1 is the leftmost at the clip's start
    assert all(len(f) == 1 for f in kept) and iou(kept[0][0], first) > 0.3  # type: ignore[arg-type]
    assert segments == {i.key: hashlib.sha256(store.get(i.key)).hexdigest() for i in store.list("recordings/cam-a/")}

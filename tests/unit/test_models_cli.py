"""``tubeline models ...``: JSON output shapes of ``run``, list/verify, YOLO registration and the
export-yolo error without ultralytics. Uses the installed models (fails, never skips, without them)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from models.registry import load_registry
from workers.cli import main

TESTDATA = Path(__file__).resolve().parents[2].parent / "shared" / "testdata"
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "models" / "yolo11n-random-320.onnx"


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_list_shows_licences_and_install_state() -> None:
    code, out, _ = invoke("models", "list", "--json")
    assert code == 0
    entries = {e["id"]: e for e in json.loads(out)}
    assert entries["nanodet-coco"]["licence"] == "Apache-2.0"
    assert entries["dlib-resnet-v1"]["licence"] == "CC0-1.0"
    assert all(e["state"] == "ok" for e in entries.values()), entries


def test_verify_all_ok() -> None:
    code, out, _ = invoke("models", "verify")
    rows = [line.split() for line in out.splitlines() if line.strip()]
    ids = {r[1] for r in rows}
    assert code == 0 and all(r[0] == "ok" for r in rows) and ids >= {m.id for m in load_registry()}, out


def test_run_detect_shape() -> None:
    code, out, _ = invoke(
        "models",
        "run",
        "detect",
        str(TESTDATA / "images" / "dog.jpg"),
        str(TESTDATA / "images" / "person.jpg"),
    )
    assert code == 0
    results = lines(out)
    assert [Path(r["file"]).name for r in results] == ["dog.jpg", "person.jpg"]
    for r in results:
        assert set(r) == {"file", "detections"}
        for d in r["detections"]:
            assert set(d) == {"class", "score", "box"} and len(d["box"]) == 4
    assert {d["class"] for d in results[0]["detections"]} >= {"bicycle", "dog"}
    assert "person" in {d["class"] for d in results[1]["detections"]}


def test_run_plate_shape_and_text() -> None:
    code, out, _ = invoke(
        "models",
        "run",
        "plate",
        str(TESTDATA / "plates" / "cn" / "dataset_2.jpg"),
        str(TESTDATA / "plates" / "cn" / "crop_0.jpg"),
    )
    assert code == 0
    scene, crop = lines(out)
    assert set(scene) == {"file", "plates"}
    assert [p["text"] for p in scene["plates"]] == ["川AUE022"]
    assert set(scene["plates"][0]) == {"text", "confidence", "box"}
    assert [p["text"] for p in crop["plates"]] == ["津B6H920"]


def test_run_face_and_compare() -> None:
    code, out, _ = invoke("models", "run", "face", str(TESTDATA / "faces" / "group_6.jpg"))
    assert code == 0
    (result,) = lines(out)
    assert len(result["faces"]) == 6
    face = result["faces"][0]
    assert set(face) == {"box", "score", "landmarks", "quality", "embedding"}
    assert len(face["landmarks"]) == 5 and len(face["embedding"]) == 128
    code, out, _ = invoke(
        "models",
        "run",
        "face-compare",
        str(TESTDATA / "faces" / "person_a_1.jpg"),
        str(TESTDATA / "faces" / "person_a_2.jpg"),
    )
    same = json.loads(out)
    assert code == 0 and set(same) == {"similarity", "threshold", "same"} and same["same"] is True
    code, out, _ = invoke(
        "models",
        "run",
        "face-compare",
        str(TESTDATA / "faces" / "person_a_1.jpg"),
        str(TESTDATA / "faces" / "person_b_1.jpg"),
    )
    assert json.loads(out)["same"] is False


def test_unreadable_image_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    code, out, _ = invoke("models", "run", "detect", str(bad))
    assert code == 1 and lines(out) == [{"file": str(bad), "error": "cannot read image"}]


def test_export_yolo_without_ultralytics_explains_how_to_install() -> None:
    try:
        import ultralytics  # noqa: F401
    except ImportError:
        code, _, err = invoke("models", "export-yolo", "yolo11n.yaml")
        assert code == 3
        assert "pip install ultralytics" in err and "register-yolo" in err
    else:  # pragma: no cover - only where ultralytics is installed
        pytest.fail("ultralytics must not be installed in the project environment")


def test_register_yolo_flags_agpl_and_serves(tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    env = {"TUBELINE_MODELS__DIR": str(models_dir)}
    copy = tmp_path / "yolo11n-random-320.onnx"
    shutil.copyfile(FIXTURE, copy)
    code, out, _ = invoke("models", "register-yolo", str(copy), "--id", "yolo-fixture", env=env)
    assert code == 0, out
    code, out, err = invoke("models", "list", env=env)
    row = next(line for line in out.splitlines() if line.startswith("yolo-fixture"))
    assert "AGPL" in row and "WARNING: yolo-fixture" in err
    code, out, _ = invoke(
        "models", "run", "detect", "--model", "yolo-fixture", str(TESTDATA / "images" / "dog.jpg"), env=env
    )
    assert code == 0 and set(lines(out)[0]) == {"file", "detections"}


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    code, _, err = invoke(
        "models",
        "run",
        "detect",
        str(TESTDATA / "images" / "dog.jpg"),
        env={"TUBELINE_MODELS__DIR": str(tmp_path)},
    )
    assert code == 2 and "tubeline models install" in err

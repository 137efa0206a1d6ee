"""Names of the workers ``tubeline worker NAME`` can run, mapped to their classes."""

from __future__ import annotations

import importlib

# name -> "module:Class". Keep sorted.
WORKERS: dict[str, str] = {
    "api": "workers.api.worker:ApiWorker",
    "detect": "workers.detect.worker:DetectWorker",
    "face": "workers.face.worker:FaceWorker",
    "framestore": "workers.framestore:FrameStoreWorker",
    "index": "workers.index.worker:IndexWorker",
    "ingest": "workers.ingest.worker:IngestWorker",
    "plate": "workers.plate.worker:PlateWorker",
    "rules": "workers.rules.worker:RulesWorker",
    "synopsis": "workers.synopsis.worker:SynopsisWorker",
}


def worker_class(name: str) -> type:
    try:
        target = WORKERS[name]
    except KeyError:
        msg = f"unknown worker {name!r}; known: {', '.join(sorted(WORKERS))}"
        raise KeyError(msg) from None
    module_name, attr = target.split(":", 1)
    return getattr(importlib.import_module(module_name), attr)

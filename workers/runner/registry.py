"""Names of the workers ``tubeline worker NAME`` can run, mapped to their classes."""

from __future__ import annotations

import importlib

from pipeline.bus.base import Bus
from pipeline.config import TubelineConfig
from pipeline.runtime.worker import Worker
from pipeline.store.base import ObjectStore

# name -> "module:Class". Keep sorted.
WORKERS: dict[str, str] = {
    "api": "workers.api.worker:ApiWorker",
    "detect": "workers.detect.worker:DetectWorker",
    "face": "workers.face.worker:FaceWorker",
    "index": "workers.index.worker:IndexWorker",
    "ingest": "workers.ingest.worker:IngestWorker",
    "plate": "workers.plate.worker:PlateWorker",
    "quality": "workers.quality.worker:QualityWorker",
    "rules": "workers.rules.worker:RulesWorker",
    "synopsis": "workers.synopsis.worker:SynopsisWorker",
}


def worker_class(name: str) -> type[Worker]:
    try:
        target = WORKERS[name]
    except KeyError:
        msg = f"unknown worker {name!r}; known: {', '.join(sorted(WORKERS))}"
        raise KeyError(msg) from None
    module_name, attr = target.split(":", 1)
    return getattr(importlib.import_module(module_name), attr)


def make_worker(name: str, config: TubelineConfig, *, bus: Bus, store: ObjectStore) -> Worker:
    """The worker ``name`` wired for this process (the API gets its companions, see :mod:`workers.runner.companions`)."""
    cls = worker_class(name)
    if name == "api":
        from workers.runner.companions import api_companions

        return cls(config, bus=bus, store=store, companions=api_companions(config, store, bus=bus))
    return cls(config, bus=bus, store=store)

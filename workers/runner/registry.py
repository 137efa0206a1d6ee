"""Names of the workers ``tubeline worker NAME`` can run, mapped to their classes."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import threading
from pathlib import Path

from pipeline.access import ScopedStore, access_matrix
from pipeline.bus.base import Bus
from pipeline.config import TubelineConfig
from pipeline.runtime.worker import Worker
from pipeline.spool import SpooledStore, spooled_store
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


# Workers whose store writes go through a spool when the store (S3) fails (docs/reliability.md), and whether their
# reads wait for the store to come back (False: the worker has a fallback and must not stall — ingest keeps its
# cameras running on the last camera list it read).
SPOOLED: dict[str, bool] = {"detect": True, "face": True, "index": True, "ingest": False, "plate": True, "rules": True}


def worker_store(name: str, config: TubelineConfig, store: ObjectStore, stop_event: threading.Event) -> ObjectStore:
    """The store a spooling worker (:data:`SPOOLED`) writes through, else ``store``: its grant checked first
    (:class:`pipeline.access.ScopedStore`, the rights its own identity has in a deployment), then its own spool.
    The check sits outside the spool so that a write the identity may not make is refused at once and never
    spooled (the identity would be refused it later, and it would hold up the spool's queue); what the spool's
    hooks write later goes through the same check."""
    if name not in SPOOLED:
        return store
    grant = access_matrix(config)[name]
    spooled = spooled_store(store, config.spool, name, stop_event=stop_event, wait_reads=SPOOLED[name])
    if isinstance(spooled, SpooledStore):
        spooled.hook_store = ScopedStore(spooled.inner, grant)
    return ScopedStore(spooled, grant)


def worker_class(name: str) -> type[Worker]:
    try:
        target = WORKERS[name]
    except KeyError:
        msg = f"unknown worker {name!r}; known: {', '.join(sorted(WORKERS))}"
        raise KeyError(msg) from None
    module_name, attr = target.split(":", 1)
    return getattr(importlib.import_module(module_name), attr)


def summary(name: str) -> str:
    """The first line of the worker class's docstring, read from its source without importing the module
    (so ``tubeline worker --help`` does not load every worker's dependencies); "" if it has none."""
    module_name, attr = WORKERS[name].split(":", 1)
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        return ""
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == attr:
            lines = (ast.get_docstring(node) or "").strip().splitlines()
            return lines[0] if lines else ""
    return ""


def make_worker(name: str, config: TubelineConfig, *, bus: Bus, store: ObjectStore) -> Worker:
    """The worker ``name`` wired for this process (the API gets its companions, see :mod:`workers.runner.companions`;
    the other workers write through their grant and, where they have one, a spool: :func:`worker_store`)."""
    if name == "api":
        from workers.api.worker import ApiWorker
        from workers.runner.companions import api_companions

        return ApiWorker(config, bus=bus, store=store, companions=api_companions(config, store, bus=bus))
    stop = threading.Event()
    return worker_class(name)(config, bus=bus, store=worker_store(name, config, store, stop), stop_event=stop)

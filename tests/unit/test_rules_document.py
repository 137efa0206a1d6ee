"""The rules document in the store: versions, validation, conflicts, and the rules worker swapping it in live."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.bus.memory import MemoryBus
from pipeline.config import TubelineConfig
from pipeline.rulesdoc import RulesDocument, VersionConflict
from pipeline.store.local import LocalStore
from workers.rules.worker import RulesWorker

ZONE = {"cameras": [{"camera_id": "cam-a", "zones": [{"id": "door", "polygon": [[0, 0], [1, 0], [1, 1]]}],
                     "rules": [{"id": "door-in", "kind": "zone_intrusion", "zone": "door"}]}]}


def test_versions_history_and_conflicts(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    doc = RulesDocument(store)
    assert doc.load() is None and doc.effective(TubelineConfig()).cameras == []
    v1 = doc.save(ZONE, user="boss", expect_version=0)
    assert v1.version == 1 and doc.load().rules.cameras[0].zones[0].id == "door"  # type: ignore[union-attr]
    with pytest.raises(VersionConflict):
        doc.save(ZONE, user="eve", expect_version=0)
    bad = {"cameras": [{"camera_id": "cam-a", "rules": [{"id": "x", "kind": "zone_intrusion", "zone": "nowhere"}]}]}
    with pytest.raises(ValidationError, match="nowhere"):
        doc.save(bad, user="boss", expect_version=1)
    doc.save({"cameras": []}, user="boss", expect_version=1)
    assert sorted(i.key for i in store.list("config/rules-history/")) == [
        "config/rules-history/00000001.json", "config/rules-history/00000002.json"]


def test_rules_worker_swaps_a_saved_document_in_without_restart(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    worker = RulesWorker(TubelineConfig(), bus=MemoryBus(), store=store)
    assert not worker.reload() and worker.engine.ruleset("cam-a").track_zones == ()
    RulesDocument(store).save(ZONE, user="boss", expect_version=0)
    worker._next_poll = 0.0
    assert worker.reload() and worker.rules_version == 1
    assert [z.key for z in worker.engine.ruleset("cam-a").track_zones]
    worker._next_poll = 0.0
    assert not worker.reload()  # same version: nothing to do

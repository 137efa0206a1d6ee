"""Retention with legal hold on the API's scene (real indexer, real SearchService, real face embeddings).

Faces are kept 30 days here; the scene is from 2026-05-01, so every face is due. Person A's face on cam-a is
saved in an open case (legal hold); person A's mirror on cam-c and person B on cam-b are not. After
``retention run`` face search no longer returns the expired faces — their rows are gone from the catalog, their
vectors from the FAISS snapshot, their chips from the store — while the held face is still found; the audit log
records the deletion batch; closing the case releases the hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from pipeline.access import ScopedStore, access_matrix
from pipeline.bus.memory import MemoryBus
from pipeline.cases.records import CaseRegister
from pipeline.cases.retention import Sweeper
from pipeline.cases.rows import ParquetRows
from pipeline.cases.workspace import Workspace
from pipeline.catalog.shards import Manifest
from pipeline.config import TubelineConfig, with_overrides
from pipeline.search.service import SearchService
from pipeline.store.local import LocalStore
from tests.flow.test_api_scene import CASE, TESTDATA, load_analyzer, scene_config, setup_scene
from tests.unit.test_api_support import login
from workers.api.app import create_app
from workers.api.audit import AuditLog, tail
from workers.api.context import build_context
from workers.cli import main

HELD, EXPIRED = "cam-a:s0:100.face.0", "cam-c:s0:102.face.0"


@pytest.fixture(scope="module")
def analyzer() -> Any:
    return load_analyzer()


def face_ids(config: TubelineConfig, store: LocalStore, analyzer: Any) -> list[str]:
    query = analyzer.analyze(cv2.imread(str(TESTDATA / "faces" / "person_a_2.jpg")))
    service = SearchService(store, with_overrides(config, {"index.cache_dir": str(Path(config.index.cache_dir)
                                                                                  / "fresh")}))
    hits = service.faces(np.asarray(query.data["embedding"][0]), model_id=str(analyzer.embedder.model_id), k=10)
    service.close()
    return [h.face_id for h in hits]


def test_retention_deletes_an_expired_face_everywhere_but_keeps_a_face_held_by_an_open_case(
        tmp_path: Path, analyzer: Any) -> None:
    config = with_overrides(scene_config(TubelineConfig(), tmp_path), {
        "cases.retention.faces": 30, "cases.retention.crops": 0, "cases.retention.plates": 0,
        "cases.retention.tracks": 0, "cases.retention.alerts": 0, "cases.retention.recordings": 0,
        "cases.retention.synopses": 0, "cases.retention.exports": 0, "cases.retention.audit": 0,
        "cases.evidence_key_file": str(tmp_path / "evidence.key")})
    store, bus = LocalStore(tmp_path / "store"), MemoryBus(default_partitions=3)
    scene = setup_scene(config, bus, store, analyzer)
    ctx = build_context(config, store=ScopedStore(store, access_matrix(config)["api"]),
                        face_analyzer_factory=lambda: analyzer)
    with TestClient(create_app(ctx, start_background=False)) as client:
        login(client, "ann")
        saved = client.post(f"/api/cases/{CASE}/items", json={"kind": "face", "ref": HELD})
        assert saved.status_code == 200, saved.text
    before = face_ids(config, store, analyzer)
    assert {HELD, EXPIRED, "cam-b:s0:101.face.0"} == set(before)

    runner = CliRunner()
    env = {"TUBELINE_STORE__LOCAL__ROOT": str(tmp_path / "store"), "TUBELINE_CASES__RETENTION__FACES": "30",
           **{f"TUBELINE_CASES__RETENTION__{k.upper()}": "0" for k in
              ("crops", "plates", "tracks", "alerts", "recordings", "synopses", "exports", "audit")}}
    planned = runner.invoke(main, ["retention", "plan"], env=env)
    lines = planned.output.splitlines()
    assert planned.exit_code == 0 and [line.split()[:2] for line in lines[:-1]] == [["faces", "cam-b"], ["faces", "cam-c"]]
    assert lines[-1] == "4 to delete in 2 batch(es)", planned.output

    register, workspace = CaseRegister(store), Workspace(store)
    sweeper = Sweeper(store, config.cases, ParquetRows(store, config.index), cameras={}, register=register,
                      workspace=workspace)
    audit = AuditLog(store, writer_id="retention-test")
    done = sweeper.run(lambda e: audit.append({"user": "retention", **e}))
    assert done == {"faces": 4}  # 2 rows and their 2 chips

    after = face_ids(config, store, analyzer)
    assert after == [HELD]
    chips = {m.face_id: m.crop_key for _, m in scene.messages if hasattr(m, "face_id")}
    assert store.exists(chips[HELD]) and not store.exists(chips[EXPIRED])
    manifests = [i.key for i in store.list(f"{config.index.index_prefix}/faces/") if i.key.endswith("manifest.json")]
    assert [Manifest.from_json(store.get(k)).count for k in manifests] == [1]  # the vectors are gone from FAISS
    entries = [e for e in tail(store, 10) if e["action"] == "retention.delete"]
    assert sorted(i for e in entries for i in e["params"]["ids"]) == sorted([EXPIRED, "cam-b:s0:101.face.0"])

    register.close(CASE, by="ann", reason="closed")  # the hold ends with the case
    assert [r.ident for b in sweeper.plan() for r in b.rows] == [HELD]

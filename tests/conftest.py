"""Shared fixtures: the real local stack, unique names, and both backends of the bus and store.

The integration tier runs against a real Kafka-protocol broker and a real S3 server.
By default the session starts its own (Tansu + SeaweedFS, from the project's
dependencies) on free loopback ports in a temporary folder and stops them at the end.
To test against other servers (Apache Kafka, MinIO), set
``TUBELINE_TEST_KAFKA=host:port`` and ``TUBELINE_TEST_S3=host:port`` with
``TUBELINE_TEST_S3_ACCESS_KEY`` / ``TUBELINE_TEST_S3_SECRET_KEY``.

These fixtures never skip: if the servers cannot be started the tests error out.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.config import TubelineConfig, with_overrides
from pipeline.config.stack import StackConfig
from pipeline.stack import LocalStack, free_port_block

REPO = Path(__file__).resolve().parents[1]
TESTDATA = REPO.parent / "shared" / "testdata"


@dataclass
class RealStack:
    config: TubelineConfig
    stack: LocalStack | None
    spool_root: Path | None = None  # workers' write spools go under it (one folder per test prefix)

    def with_prefix(self, prefix: str, bucket: str | None = None) -> TubelineConfig:
        """The stack's config with a unique topic prefix (and bucket), for an isolated test."""
        overrides: dict[str, object] = {"bus.topic_prefix": prefix, **self._spool(prefix)}
        if bucket:
            overrides["store.s3.bucket"] = bucket
        return with_overrides(self.config, overrides)

    def _spool(self, prefix: str) -> dict[str, object]:
        return {"spool.dir": self.spool_root / prefix} if self.spool_root is not None else {}

    def as_service(self, service: str, prefix: str) -> TubelineConfig:
        """The config one worker kind runs with: its own store identity (which may use only its own prefixes of
        the stack's bucket, see pipeline.access) and topics under ``prefix``. Against servers given by the
        environment no identities are known: the session's credentials and bucket then."""
        if self.stack is None:
            return self.with_prefix(prefix)
        return with_overrides(self.stack.client_config(as_=service), {"bus.topic_prefix": prefix,
                                                                      **self._spool(prefix)})


def start_private_stack(state_dir: Path) -> LocalStack:
    """A fresh broker + S3 server on free ports (for tests that restart or kill them)."""
    seaweed = free_port_block(4, also_grpc=True)
    s3 = free_port_block(1, also_grpc=True)
    kafka = free_port_block(1)
    while kafka in {s3, s3 + 10000} or seaweed <= kafka <= seaweed + 3 or seaweed <= s3 <= seaweed + 3:
        kafka = free_port_block(1)
    stack = LocalStack(
        StackConfig(state_dir=state_dir, kafka_port=kafka, s3_port=s3, seaweed_base_port=seaweed, start_timeout_s=60)
    )
    stack.up()
    return stack


@pytest.fixture(scope="session")
def real_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealStack]:
    kafka = os.environ.get("TUBELINE_TEST_KAFKA")
    s3 = os.environ.get("TUBELINE_TEST_S3")
    if kafka and s3:
        cfg = TubelineConfig.model_validate(
            {
                "bus": {"backend": "kafka", "kafka": {"bootstrap_servers": kafka}},
                "store": {
                    "backend": "s3",
                    "s3": {
                        "endpoint": s3,
                        "access_key": os.environ.get("TUBELINE_TEST_S3_ACCESS_KEY"),
                        "secret_key": os.environ.get("TUBELINE_TEST_S3_SECRET_KEY"),
                    },
                },
            }
        )
        spool = tmp_path_factory.mktemp("spool")
        yield RealStack(with_overrides(cfg, {"spool.dir": spool / "session"}), None, spool)
        return
    stack = start_private_stack(tmp_path_factory.mktemp("stack"))
    try:
        spool = tmp_path_factory.mktemp("spool")
        yield RealStack(with_overrides(stack.client_config(), {"spool.dir": spool / "session"}), stack, spool)
    finally:
        stack.down()


@pytest.fixture
def unique_name() -> str:
    """A short unique prefix for topics, groups and buckets (lower-case, S3-safe)."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def testdata() -> Path:
    if not TESTDATA.is_dir():
        pytest.fail(f"shared test data not found at {TESTDATA}")
    return TESTDATA


# -- integration tests must run, never be skipped ---------------------------------------------------
_skipped_integration: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "integration" in report.keywords:
        _skipped_integration.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped_integration and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus: int) -> None:  # noqa: ANN001
    if _skipped_integration:
        terminalreporter.write_line(
            f"error: {len(_skipped_integration)} integration test(s) were skipped; they must run "
            f"(first: {_skipped_integration[0]})",
            red=True,
        )

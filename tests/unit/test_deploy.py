"""deploy/compose.yaml cannot run here (no Docker engine); these checks keep it in step with the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from pipeline.config import load_config
from workers.registry import WORKERS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    return {k: str(v) for k, v in env.items()}


def _substitute(value: str) -> str:
    """Replace ${VAR:?msg} with a sample value, as compose would with a filled .env."""
    return re.sub(r"\$\{([A-Z0-9_]+)(:[?-][^}]*)?\}", lambda m: f"sample-{m.group(1).lower()}", value)


def test_every_worker_kind_has_a_service(compose: dict) -> None:
    services = compose["services"]
    for name in WORKERS:
        service = services.get(f"worker-{name}")
        assert service is not None, f"no compose service for worker {name!r}"
        assert service["command"] == ["tubeline", "worker", name]


def test_worker_services_have_no_unknown_kind(compose: dict) -> None:
    kinds = {n.removeprefix("worker-") for n in compose["services"] if n.startswith("worker-")}
    assert kinds <= set(WORKERS), f"services for unknown workers: {kinds - set(WORKERS)}"


def test_every_service_has_a_healthcheck_or_is_one_shot(compose: dict) -> None:
    for name, service in compose["services"].items():
        assert "healthcheck" in service or service.get("restart") == "no", f"{name} has no healthcheck"


def test_worker_environment_is_a_valid_configuration(compose: dict) -> None:
    for name, service in compose["services"].items():
        if not name.startswith("worker-"):
            continue
        env = {k: _substitute(v) for k, v in _env(service).items() if k.startswith("TUBELINE_")}
        assert env, f"{name} sets no TUBELINE_* variables"
        config = load_config(environ=env)  # raises ConfigError on any unknown key or bad value
        for key in env:
            path = key.removeprefix("TUBELINE_").lower().split("__")
            node: object = config
            for part in path:
                assert hasattr(node, part), f"{name}: {key} is not a configuration key"
                node = getattr(node, part)
        assert config.bus.backend == "kafka" and config.store.backend == "s3"


def test_endpoints_match_the_kafka_and_minio_services(compose: dict) -> None:
    services = compose["services"]
    kafka_env = _env(services["kafka"])
    advertised = kafka_env["KAFKA_ADVERTISED_LISTENERS"].split("//", 1)[1]
    for name, service in services.items():
        if not name.startswith("worker-"):
            continue
        config = load_config(environ={k: _substitute(v) for k, v in _env(service).items()})
        assert config.bus.kafka.bootstrap_servers == advertised
        host, port = config.store.s3.endpoint.split(":")
        assert host in services and host == "minio" and port == "9000"
        assert "kafka" in service["depends_on"] and "minio-init" in service["depends_on"]
        assert str(config.runtime.health_port) in " ".join(service["healthcheck"]["test"])


def test_bucket_created_by_init_is_the_configured_bucket(compose: dict) -> None:
    init = " ".join(compose["services"]["minio-init"]["command"])
    bucket = load_config(environ={k: _substitute(v) for k, v in _env(compose["services"]["worker-framestore"]).items()}).store.s3.bucket
    assert f"local/{bucket}" in init


def test_no_secret_is_written_into_the_compose_file(compose: dict) -> None:
    for name, service in compose["services"].items():
        for key, value in _env(service).items():
            if any(word in key for word in ("SECRET", "PASSWORD", "ACCESS_KEY")):
                assert value.startswith("${"), f"{name}: {key} must come from the environment"


def test_only_loopback_ports_are_published(compose: dict) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"

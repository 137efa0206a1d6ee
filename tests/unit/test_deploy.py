"""deploy/: compose.yaml (run here only through podman-compose with compose.local.yaml, tests/integration/
test_containers.py), its local override and the Containerfiles are kept in step with the code."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml

from pipeline.config import ConfigError, load_config
from workers.runner.registry import WORKERS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    return {k: str(v) for k, v in env.items()}


def _sample(name: str) -> str:
    if name.endswith("_REGISTRY_KEY"):  # secrets.key: 32 bytes in base64
        return base64.b64encode(hashlib.sha256(name.encode()).digest()).decode()
    if name.endswith("_KEY_ID"):
        return "k1"
    return f"sample-{name.lower()}"


def _substitute(value: str) -> str:
    """Replace ${VAR:?msg} with a sample value, as compose would with a filled .env."""
    return re.sub(r"\$\{([A-Z0-9_]+)(:[?-][^}]*)?\}", lambda m: _sample(m.group(1)), value)


def _env_example() -> dict[str, str]:
    lines = (DEPLOY / ".env.example").read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


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
    bucket = load_config(environ={k: _substitute(v) for k, v in _env(compose["services"]["worker-rules"]).items()}).store.s3.bucket
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


def test_every_required_variable_is_in_the_env_example(compose: dict) -> None:
    text = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    assert required, "no ${VAR:?...} in compose.yaml"
    assert required <= set(_env_example()), f"missing from deploy/.env.example: {required - set(_env_example())}"


def test_registry_key_reaches_ingest_only_and_from_the_environment(compose: dict) -> None:
    """Ingest opens camera passwords (encrypted in the registry); the key comes from deploy/.env, never a
    key file generated inside a container, and no service that does not open cameras gets it."""
    with_key = {name for name, service in compose["services"].items() if "TUBELINE_SECRETS__KEY" in _env(service)}
    assert with_key == {"worker-ingest"}
    env = _env(compose["services"]["worker-ingest"])
    assert env["TUBELINE_SECRETS__KEY"].startswith("${TUBELINE_REGISTRY_KEY:?")
    config = load_config(environ={k: _substitute(v) for k, v in env.items()})
    assert config.secrets.key is not None and config.secrets.keyring().key_file is None
    example = _env_example()["TUBELINE_REGISTRY_KEY"]
    with pytest.raises(ConfigError):  # the placeholder is not a key: an unedited .env fails at start
        load_config(environ={**{k: _substitute(v) for k, v in env.items()}, "TUBELINE_SECRETS__KEY": example})


# -- least privilege: one MinIO user and policy per worker kind ---------------------------------------------------
def _service_config(compose: dict, kind: str):  # noqa: ANN202 - a TubelineConfig
    return load_config(environ={k: _substitute(v) for k, v in _env(compose["services"][f"worker-{kind}"]).items()})


def test_each_worker_has_its_own_s3_user_and_never_the_root_one(compose: dict) -> None:
    users = {}
    for kind in WORKERS:
        env = _env(compose["services"][f"worker-{kind}"])
        assert env["TUBELINE_STORE__S3__ACCESS_KEY"] == f"${{TUBELINE_S3_{kind.upper()}_ACCESS_KEY:?set in deploy/.env}}"
        assert env["TUBELINE_STORE__S3__SECRET_KEY"] == f"${{TUBELINE_S3_{kind.upper()}_SECRET_KEY:?set in deploy/.env}}"
        assert not any("MINIO_ROOT" in v for v in env.values()), f"worker-{kind} gets the MinIO root credentials"
        assert _service_config(compose, kind).store.s3.create_bucket is False  # the bucket is minio-init's
        users[kind] = env["TUBELINE_STORE__S3__ACCESS_KEY"]
    assert len(set(users.values())) == len(WORKERS)
    example = _env_example()
    assert len({example[f"TUBELINE_S3_{k.upper()}_SECRET_KEY"] for k in WORKERS}) == len(WORKERS)


def test_minio_init_creates_each_user_with_its_own_policy(compose: dict) -> None:
    init = compose["services"]["minio-init"]
    script = " ".join(init["command"])
    env = _env(init)
    assert "./minio/policies:/policies:ro" in init["volumes"]
    for kind in WORKERS:
        k = kind.upper()
        assert f'service_user {kind} "$$S3_{k}_ACCESS_KEY" "$$S3_{k}_SECRET_KEY"' in script
        # the user minio-init creates is the one the worker logs in with
        assert env[f"S3_{k}_ACCESS_KEY"] == _env(compose["services"][f"worker-{kind}"])["TUBELINE_STORE__S3__ACCESS_KEY"]
        assert (DEPLOY / "minio" / "policies" / f"tubeline-{kind}.json").is_file()
    assert "readwrite" not in script and "|| true" not in script  # no blanket policy, no swallowed failure


def test_policies_are_the_access_matrix_of_the_deployed_configuration(compose: dict) -> None:
    """deploy/minio/policies is pipeline.access rendered for the deployed configuration; regenerate with
    `tubeline stack access --minio-policies deploy/minio/policies` after changing the matrix."""
    from pipeline.access import access_matrix, minio_policy

    files = sorted(p.name for p in (DEPLOY / "minio" / "policies").glob("*.json"))
    assert files == sorted(f"tubeline-{kind}.json" for kind in WORKERS)
    for kind in WORKERS:
        config = _service_config(compose, kind)
        expected = minio_policy(access_matrix(config)[kind], config.store.s3.bucket)
        stored = json.loads((DEPLOY / "minio" / "policies" / f"tubeline-{kind}.json").read_text(encoding="utf-8"))
        assert stored == expected, f"deploy/minio/policies/tubeline-{kind}.json is out of date"
    api = json.loads((DEPLOY / "minio" / "policies" / "tubeline-api.json").read_text(encoding="utf-8"))
    writes = next(s for s in api["Statement"] if s["Sid"] == "Write")["Resource"]
    deletes = next(s for s in api["Statement"] if s["Sid"] == "Delete")["Resource"]
    assert "arn:aws:s3:::tubeline/auth/*" in writes and "arn:aws:s3:::tubeline/audit/*" in writes
    assert not any("state/" in r or "recordings/" in r for r in writes + deletes)
    assert not any("audit/" in r for r in deletes)  # audit entries are put, never deleted


def test_prometheus_scrapes_every_worker_service(compose: dict) -> None:
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    names = {n for job in scrape["scrape_configs"] for sd in job.get("dns_sd_configs", []) for n in sd["names"]}
    services = {n for n in compose["services"] if n.startswith("worker-")}
    assert names == services, f"not scraped: {services - names}; unknown: {names - services}"
    assert "prometheus" in compose["services"] and "grafana" in compose["services"]


def test_grafana_dashboard_queries_only_metrics_the_pipeline_exports() -> None:
    import json

    from prometheus_client import REGISTRY

    import pipeline.metrics  # noqa: F401 - registers the families

    exported = {s.name for family in REGISTRY.collect() for s in family.samples} | {
        f.name for f in REGISTRY.collect()}
    exported |= {f"{n}_{suffix}" for n in exported for suffix in ("bucket", "sum", "count", "total")}
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "tubeline-pipeline.json").read_text(encoding="utf-8"))
    used = {name for panel in dashboard["panels"] for t in panel["targets"]
            for name in re.findall(r"\b(tubeline_[a-z_]+)", t["expr"])}
    assert used, "the dashboard has no tubeline query"
    assert used <= exported, f"the dashboard queries metrics nobody exports: {sorted(used - exported)}"


def test_each_spooling_worker_has_a_spool_volume_of_its_own(compose: dict) -> None:
    """Writes MinIO cannot take wait in the worker's spool (docs/reliability.md): on a volume that survives the
    container, one per worker — never shared, the spool folder is locked by its process."""
    from workers.runner.registry import SPOOLED

    volumes = {}
    for kind in SPOOLED:
        service = compose["services"][f"worker-{kind}"]
        assert _env(service)["TUBELINE_SPOOL__DIR"] == "/var/lib/tubeline/spool"
        (mount,) = [v for v in service.get("volumes", []) if v.endswith(":/var/lib/tubeline/spool")]
        volumes[kind] = mount.split(":")[0]
        assert volumes[kind] in compose["volumes"]
    assert len(set(volumes.values())) == len(SPOOLED)


# -- the local override (podman-compose against the local stack) and the images -----------------------------------
@pytest.fixture(scope="module")
def local() -> dict:
    return yaml.safe_load((DEPLOY / "compose.local.yaml").read_text(encoding="utf-8"))


def _with_defaults(value: str) -> str:
    """As compose interpolates with nothing set: ${VAR:-default} gives the default, ${VAR:?...} a sample."""
    value = re.sub(r"\$\{([A-Z0-9_]+):-([^}]*)\}", lambda m: m.group(2), value)
    return _substitute(value)


def _local_config(compose: dict, local: dict, name: str):  # noqa: ANN202 - a TubelineConfig
    merged = {**_env(compose["services"][name]), **_env(local["services"][name])}
    return load_config(environ={k: _with_defaults(v) for k, v in merged.items()})


def test_local_override_runs_every_worker_read_only_on_its_own_health_port(compose: dict, local: dict) -> None:
    services = local["services"]
    assert set(services) == {f"worker-{k}" for k in WORKERS}, "the override covers exactly the worker services"
    ports = set()
    for name, service in services.items():
        assert service["network_mode"] == "host"
        assert "read_only" not in service and "tmpfs" not in service, "compose.yaml's own (lists would merge twice)"
        env = _env(service)
        assert "ACCESS_KEY" not in " ".join(env), f"{name}: the identity stays compose.yaml's own per-service user"
        config = _local_config(compose, local, name)
        assert config.runtime.health_host == "127.0.0.1", f"{name} would listen beyond loopback on the host network"
        ports.add(config.runtime.health_port)
        assert str(config.runtime.health_port) not in " ".join(service["healthcheck"]["test"])  # read from the env
    assert len(ports) == len(WORKERS), "two workers share a health port on the host network"
    assert _local_config(compose, local, "worker-api").api.host == "127.0.0.1"
    assert services["worker-ingest"]["restart"] == "no"  # a finished file camera must not be ingested again


def test_worker_services_run_read_only(compose: dict) -> None:
    for name, service in compose["services"].items():
        if name.startswith("worker-"):
            assert service["read_only"] is True and "/tmp" in service["tmpfs"], name
            writable = {*service["tmpfs"], *(v.split(":")[1] for v in service.get("volumes", []))}
            assert "/app/var" in writable, f"{name}: the caches under /app/var need a writable mount"


@pytest.mark.parametrize("containerfile", ["Containerfile", "Containerfile.gpu"])
def test_images_run_unprivileged_from_a_base_argument_and_record_what_went_in(containerfile: str) -> None:
    text = (DEPLOY / containerfile).read_text(encoding="utf-8")
    assert re.search(r"^ARG BASE=\S+", text, re.M) and "FROM ${BASE}" in text
    assert re.search(r"^USER 10001:10001$", text, re.M), "the image must not run as root"
    for record in ("pip-report.json", "pip-freeze.txt", "dpkg.txt", "models.txt"):
        assert f"/opt/tubeline/sbom/{record}" in text
    assert "tubeline models install" in text and "tubeline models verify" in text
    assert "TUBELINE_RUNTIME__HEALTH_PORT=8081" in text
    for path in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):  # everything copied is in the build context
        assert (DEPLOY.parent / path.rstrip("/")).exists(), path
    assert not (DEPLOY / "Dockerfile").exists(), "deploy/Containerfile replaced the unbuilt Dockerfile"


def test_build_context_holds_only_what_the_images_copy() -> None:
    ignore = (DEPLOY.parent / ".dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    copied = set()
    for name in ("Containerfile", "Containerfile.gpu"):
        text = (DEPLOY / name).read_text(encoding="utf-8")
        for sources in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
            copied |= {s.rstrip("/") for s in sources.split()}
    assert "*" in ignore
    assert all(any(c == a or c.startswith(f"{a}/") for a in allowed) for c in copied), copied - allowed
    assert all(any(c == a or c.startswith(f"{a}/") for c in copied) for a in allowed), allowed - copied

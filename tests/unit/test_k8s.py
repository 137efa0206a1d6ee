"""deploy/k8s: rendered with kustomize, validated offline against the Kubernetes API schemas (strict) and, for
KEDA's ScaledObjects, against the CRD schema vendored in deploy/k8s/schemas/keda; and kept in step with the
worker registry, the configuration tree, the topics and the access matrix (no cluster here)."""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from pipeline.config import load_config
from schemas.topics import all_topics
from workers.runner.registry import WORKERS, worker_class

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("dev", "production", "gpu")
KUBECTL = Path(sys.executable).parent / "kubectl"
INFERENCE = {"detect", "plate", "face"}


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("k8s_generate", K8S / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def _kustomize(overlay: str) -> str:
    out = subprocess.run([str(KUBECTL), "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def render(overlay: str) -> list[dict[str, Any]]:
    """``kubectl kustomize deploy/k8s/overlays/OVERLAY``, parsed (a fresh copy on every call)."""
    return [d for d in yaml.safe_load_all(_kustomize(overlay)) if d]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(request.param)


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def workload(docs: list[dict[str, Any]], worker: str) -> dict[str, Any]:
    return find(docs, "StatefulSet" if worker == "ingest" else "Deployment", f"tubeline-{worker}")


# -- the manifests are what the generator writes, and valid ----------------------------------------------------
def test_generated_base_is_up_to_date() -> None:
    """deploy/k8s/base (and the infra base's copy of the MinIO policies) is deploy/k8s/generate.py's output:
    regenerate after changing a worker, a topic or the access matrix."""
    for path, text in _generator().render().items():
        assert path.is_file(), f"{path.relative_to(REPO)} is missing: run deploy/k8s/generate.py"
        assert path.read_text(encoding="utf-8") == text, f"{path.relative_to(REPO)} is out of date"
    assert sorted(p.name for p in (K8S / "base").glob("*.yaml")) == sorted(
        ["common.yaml", "kustomization.yaml", *(f"{k}.yaml" for k in WORKERS)])
    for kind in WORKERS:  # the same policies MinIO gets in compose
        assert (K8S / "infra/minio/policies" / f"tubeline-{kind}.json").read_bytes() == \
               (REPO / "deploy/minio/policies" / f"tubeline-{kind}.json").read_bytes()


def _strict_crd_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A CRD's openAPIV3Schema as a JSON Schema that refuses unknown fields, as the API server does."""
    schema = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    for key in ("properties",):
        if key in schema:
            schema[key] = {name: _strict_crd_schema(sub) for name, sub in schema[key].items()}
    if isinstance(schema.get("items"), dict):
        schema["items"] = _strict_crd_schema(schema["items"])
    if isinstance(schema.get("additionalProperties"), dict):
        schema["additionalProperties"] = _strict_crd_schema(schema["additionalProperties"])
    return schema


@pytest.fixture(scope="module")
def scaled_object_schema() -> dict[str, Any]:
    crd = yaml.safe_load((K8S / "schemas/keda/keda.sh_scaledobjects.yaml").read_text(encoding="utf-8"))
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    return _strict_crd_schema(version["schema"]["openAPIV3Schema"])


def test_every_object_validates_strictly(rendered: tuple[str, list[dict[str, Any]]],
                                         scaled_object_schema: dict[str, Any]) -> None:
    overlay, docs = rendered
    kinds = set()
    for doc in docs:
        kinds.add(doc["kind"])
        if doc["apiVersion"] == "keda.sh/v1alpha1":
            assert doc["kind"] == "ScaledObject"
            jsonschema.validate(doc, scaled_object_schema)
            continue
        try:
            kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{overlay}: {doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    assert {"Deployment", "StatefulSet", "Service", "Ingress", "NetworkPolicy", "PodDisruptionBudget",
            "ServiceAccount", "ScaledObject", "HorizontalPodAutoscaler", "ConfigMap", "Job", "Namespace"} <= kinds
    assert all(d["metadata"].get("namespace") == ("tubeline-dev" if overlay == "dev" else "tubeline")
               for d in docs if d["kind"] != "Namespace")


def test_the_strict_checks_can_fail(scaled_object_schema: dict[str, Any]) -> None:
    """A misspelt field is refused by both validators (the checks above are not vacuous)."""
    docs = render("production")
    deployment = json.loads(json.dumps(workload(docs, "detect")))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)
    scaled = json.loads(json.dumps(find(docs, "ScaledObject", "tubeline-detect")))
    scaled["spec"]["maxReplicas"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, scaled_object_schema)


# -- in step with the worker registry, the config tree, the topics -------------------------------------------
def _sample_secret(key: str) -> str:
    if key == "TUBELINE_SECRETS__KEY":
        return base64.b64encode(hashlib.sha256(key.encode()).digest()).decode()
    return f"sample-{key.lower()}"


def _container_env(docs: list[dict[str, Any]], worker: str) -> dict[str, str]:
    """The TUBELINE_* environment of a worker's container: its ConfigMap, its literal env, and its Secrets' keys
    (sample values: production's Secrets are created outside the repository)."""
    container = workload(docs, worker)["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for source in container["envFrom"]:
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            env.update(next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name)["data"])
        else:
            name = source["secretRef"]["name"]
            keys = (["TUBELINE_SECRETS__KEY", "TUBELINE_SECRETS__KEY_ID"] if "registry-key" in name
                    else ["TUBELINE_STORE__S3__ACCESS_KEY", "TUBELINE_STORE__S3__SECRET_KEY"])
            env.update({k: _sample_secret(k) for k in keys})
    for item in container.get("env", []):
        env[item["name"]] = item.get("value", "0")  # a downward-API value (the shard ordinal): a number
    return env


def test_every_worker_kind_has_its_workload_identity_and_budget(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, docs = rendered
    names = {d["metadata"]["name"] for d in docs if d["kind"] in ("Deployment", "StatefulSet")}
    assert {n for n in names if n.startswith("tubeline-")} == {f"tubeline-{k}" for k in WORKERS}
    for kind in WORKERS:
        obj = workload(docs, kind)
        pod = obj["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["command"] == ["tubeline", "worker", kind]
        assert pod["serviceAccountName"] == f"tubeline-{kind}" and pod["automountServiceAccountToken"] is False
        find(docs, "ServiceAccount", f"tubeline-{kind}")
        secrets = [s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s]
        assert any(re.fullmatch(rf"tubeline-s3-{kind}(-[a-z0-9]{{10}})?", s) for s in secrets)
        assert any("registry-key" in s for s in secrets) == (kind == "ingest"), "only ingest opens passwords"
        labels = obj["spec"]["selector"]["matchLabels"]
        assert find(docs, "PodDisruptionBudget", f"tubeline-{kind}")["spec"]["selector"]["matchLabels"] == labels
        assert find(docs, "NetworkPolicy", f"tubeline-{kind}")["spec"]["podSelector"]["matchLabels"] == labels
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert {"requests", "limits"} <= set(container["resources"]) and "memory" in container["resources"]["limits"]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/tmp", "/app/var"} <= mounts, "the read-only image writes only there"
        assert (kind in INFERENCE and overlay == "gpu") == ("nvidia.com/gpu" in container["resources"]["limits"])
        assert (kind in INFERENCE and overlay == "gpu") == ("nodeSelector" in pod)


def test_worker_environment_is_a_valid_configuration_and_probes_hit_its_health_port(
        rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    for kind in WORKERS:
        env = _container_env(docs, kind)
        config = load_config(environ=env)  # raises on any unknown key or bad value
        for key in env:
            node: object = config
            for part in key.removeprefix("TUBELINE_").lower().split("__"):
                assert hasattr(node, part), f"{kind}: {key} is not a configuration key"
                node = getattr(node, part)
        assert config.bus.backend == "kafka" and config.store.backend == "s3"
        assert config.store.s3.create_bucket is False
        container = workload(docs, kind)["spec"]["template"]["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["health"] == config.runtime.health_port and config.runtime.health_host == "0.0.0.0"
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
        if kind == "api":
            service = find(docs, "Service", "tubeline-api")
            assert ports["http"] == config.api.port and service["spec"]["ports"][0]["targetPort"] == "http"
            backend = find(docs, "Ingress", "tubeline-api")["spec"]["rules"][0]["http"]["paths"][0]["backend"]
            assert backend["service"]["name"] == "tubeline-api"


def test_each_consumer_group_scales_on_its_lag_within_its_partitions(
        rendered: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, docs = rendered
    partitions = {t.name: t.partitions for t in all_topics()}
    scaled = {d["spec"]["scaleTargetRef"]["name"]: d for d in docs if d["kind"] == "ScaledObject"}
    namespace = "tubeline-dev" if overlay == "dev" else "tubeline"
    for kind in WORKERS:
        cls = worker_class(kind)
        so = scaled.pop(f"tubeline-{kind}", None)
        if kind in ("api", "ingest", "synopsis"):  # no shared group: tails, shards, per-process caches
            assert so is None
            continue
        assert so is not None, f"{kind} is not scaled on its consumer lag"
        lag = next(t for t in so["spec"]["triggers"] if t["type"] == "kafka")["metadata"]
        assert lag["consumerGroup"] == cls.group
        assert lag["bootstrapServers"] == f"kafka.{namespace}.svc:9092"
        assert lag.get("topic", cls.topics[0]) in cls.topics
        assert so["spec"]["maxReplicaCount"] <= max(partitions[t] for t in cls.topics if t in partitions)
        gpu = [t for t in so["spec"]["triggers"] if t["type"] == "prometheus"]
        assert bool(gpu) == (overlay == "gpu" and kind in INFERENCE)
        assert all(f'pod=~"tubeline-{kind}-.*"' in t["metadata"]["query"] for t in gpu)
    assert not scaled, f"ScaledObjects for no worker: {sorted(scaled)}"


def test_network_policies_open_only_the_flows_the_architecture_needs() -> None:
    docs = render("production")
    policies = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "NetworkPolicy"}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    for kind in WORKERS:
        spec = policies[f"tubeline-{kind}"]
        ports = {(p["port"], p["protocol"]) for rule in spec["ingress"] for p in rule.get("ports", [])}
        expected = {"api": {(8080, "TCP")}, "ingest": {(5060, "UDP"), (5060, "TCP"), (30000, "UDP"), (30000, "TCP")}}
        assert ports == expected.get(kind, set()), f"{kind} accepts {ports}"
        egress = {(p["port"], p["protocol"]) for rule in spec["egress"] for p in rule.get("ports", [])}
        assert {(9092, "TCP"), (9000, "TCP")} <= egress
        beyond = {"ingest": {(554, "TCP"), (1024, "UDP")}, "api": {(443, "TCP"), (80, "TCP")}}  # cameras; webhooks
        assert egress - {(9092, "TCP"), (9000, "TCP")} == beyond.get(kind, set()), f"{kind} reaches {egress}"
    assert {p["port"] for p in policies["kafka"]["ingress"][0]["ports"]} == {9092}  # clients: brokers only
    assert {p["port"] for p in policies["minio"]["ingress"][0]["ports"]} == {9000}


def test_production_clusters_agree_with_their_replicas() -> None:
    docs = render("production")
    kafka = find(docs, "StatefulSet", "kafka")
    env = {e["name"]: e.get("value") for e in kafka["spec"]["template"]["spec"]["containers"][0]["env"]}
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert len(voters) == kafka["spec"]["replicas"] == 3
    assert int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]) == 3 and int(env["KAFKA_MIN_INSYNC_REPLICAS"]) == 2
    minio = find(docs, "StatefulSet", "minio")
    args = " ".join(minio["spec"]["template"]["spec"]["containers"][0]["args"])
    assert "{0...3}" in args and minio["spec"]["replicas"] == 4
    config = load_config(environ=_container_env(docs, "ingest"))
    assert config.ingest.shard_count == workload(docs, "ingest")["spec"]["replicas"] == 2
    assert config.bus.kafka.replication_factor == 3
    assert not [d for d in docs if d["kind"] == "Secret"], "production secrets never live in the repository"
    images = {c["image"] for d in docs if d["kind"] in ("Deployment", "StatefulSet")
              for c in d["spec"]["template"]["spec"]["containers"]}
    assert "registry.example.org/tubeline/tubeline:0.1.0" in images and "tubeline" not in images


def _secret_references(docs: list[dict[str, Any]]) -> set[str]:
    names: set[str] = set()
    for d in docs:
        if d["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        pod = d["spec"]["template"]["spec"]
        for c in pod["containers"]:
            names |= {s["secretRef"]["name"] for s in c.get("envFrom", []) if "secretRef" in s}
        names |= {v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
    return names - {"tubeline-api-tls"}


def test_minio_init_creates_every_worker_identity_from_its_secret() -> None:
    """The hand-written infra pieces (the users Job, the policies ConfigMap, dev's Secrets) cover every worker kind:
    a new kind (quality) without its MinIO user would start and be refused by the store."""
    docs = render("dev")
    job = find(docs, "Job", "tubeline-minio-init")["spec"]["template"]["spec"]
    loop = re.search(r"for kind in ([a-z ]+); do", job["containers"][0]["args"][0])
    assert loop is not None and set(loop.group(1).split()) == set(WORKERS)
    mounts = {m["mountPath"] for m in job["containers"][0]["volumeMounts"]}
    assert {f"/secrets/{k}" for k in WORKERS} <= mounts
    policies = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith(
        "tubeline-minio-policies"))
    assert set(policies["data"]) == {f"tubeline-{k}.json" for k in WORKERS}
    secrets = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    missing = _secret_references(docs) - secrets
    assert not missing, f"dev refers to Secrets it does not create: {sorted(missing)}"
    production = _secret_references(render("production"))  # created outside the repository: the documented list
    documented = (K8S / "overlays" / "production" / "kustomization.yaml").read_text(encoding="utf-8")
    assert production == {"tubeline-minio-root", "tubeline-registry-key"} | {f"tubeline-s3-{k}" for k in WORKERS}
    assert all(name in documented for name in ("tubeline-minio-root", "tubeline-registry-key", "tubeline-s3-<kind>"))


def test_each_spooling_worker_spools_to_a_volume_of_its_own(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    """Writes MinIO cannot take wait in the spool (docs/reliability.md): on a writable volume of the pod (the root
    filesystem is read-only), ingest's recordings on a volume claim that outlives a rescheduling."""
    from workers.runner.registry import SPOOLED

    _, docs = rendered
    for kind in WORKERS:
        obj = workload(docs, kind)
        container = obj["spec"]["template"]["spec"]["containers"][0]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        config = load_config(environ=_container_env(docs, kind))
        if kind not in SPOOLED:
            assert "spool" not in mounts
            continue
        assert mounts.get("spool") == str(config.spool.dir), f"{kind} spools to {config.spool.dir}, not a volume"
        if kind == "ingest":
            (claim,) = obj["spec"]["volumeClaimTemplates"]
            assert claim["metadata"]["name"] == "spool"
            size = claim["spec"]["resources"]["requests"]["storage"]
            assert int(size.removesuffix("Gi")) * 1024 > config.spool.max_mb
        else:
            (volume,) = [v for v in obj["spec"]["template"]["spec"]["volumes"] if v["name"] == "spool"]
            assert int(volume["emptyDir"]["sizeLimit"].removesuffix("Mi")) > config.spool.max_mb


def test_catalog_maintenance_runs_hourly_under_the_indexer_identity(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    """``tubeline catalog maintain`` (compaction of closed days, plate index, vacuum) as a CronJob: one run at a
    time, the indexer's store identity (the only one that may write the tables), reaching only MinIO."""
    _, docs = rendered
    job = find(docs, "CronJob", "tubeline-catalog-maintain")
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["tubeline", "catalog", "maintain"]
    assert pod["serviceAccountName"] == "tubeline-index" and pod["automountServiceAccountToken"] is False
    secrets = [s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s]
    assert len(secrets) == 1 and re.fullmatch(r"tubeline-s3-index(-[a-z0-9]{10})?", secrets[0])
    assert container["securityContext"]["readOnlyRootFilesystem"] is True and pod["restartPolicy"] == "Never"
    assert "memory" in container["resources"]["limits"] and "nvidia.com/gpu" not in container["resources"]["limits"]
    labels = job["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    policy = find(docs, "NetworkPolicy", "tubeline-catalog-maintain")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["ingress"] == [] and [p["port"] for r in policy["egress"] for p in r["ports"]] == [9000]
    assert labels["app.kubernetes.io/name"] != workload(docs, "index")["spec"]["selector"]["matchLabels"][
        "app.kubernetes.io/name"]  # not counted by the indexer's budget or policy

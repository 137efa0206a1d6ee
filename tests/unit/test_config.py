"""The configuration tree: strictness, bounds, environment overrides, secrets, located errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import ConfigError, TubelineConfig, dump_config, env_overrides, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tubeline.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_embedded_setup() -> None:
    cfg = load_config(environ={})
    assert cfg.bus.backend == "memory"
    assert cfg.store.backend == "local"
    assert cfg.stack.bind_host == "127.0.0.1"


@pytest.mark.parametrize(
    ("text", "path", "line"),
    [
        ("bus:\n  backend: kafka\n  kafka:\n    session_timeout_ms: 999999\n", "bus.kafka.session_timeout_ms", 4),
        ("bus:\n  bakend: kafka\n", "bus.bakend", 2),
        ("store:\n  backend: ftp\n", "store.backend", 2),
        ("store:\n  s3:\n    access_key: abc\n", "store.s3", 2),
        ("stack:\n  kafka_port: 80\n", "stack.kafka_port", 2),
        ("stack:\n  kafka_port: 19333\n", "stack", 1),
        ("bus:\n  kafka:\n    heartbeat_interval_ms: 5000\n", "bus.kafka", 2),
        ("runtime:\n  log_level: LOUD\n", "runtime.log_level", 2),
    ],
)
def test_errors_point_at_the_offending_key(tmp_path: Path, text: str, path: str, line: int) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), environ={})
    problem = info.value.problems[0]
    assert problem.path == path
    assert problem.line == line
    assert str(problem).startswith(f"{tmp_path / 'tubeline.yaml'}:{line}:")


def test_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "bus:\n  backend: [kafka\n"), environ={})
    assert info.value.problems[0].line is not None


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "bus:\n  backend: memory\n  default_partitions: 2\n")
    cfg = load_config(
        path,
        environ={
            "TUBELINE_BUS__BACKEND": "kafka",
            "TUBELINE_BUS__KAFKA__BOOTSTRAP_SERVERS": "broker-1:9092,broker-2:9092",
            "TUBELINE_STORE__S3__ACCESS_KEY": "0123",
            "TUBELINE_STORE__S3__SECRET_KEY": "true",
        },
    )
    assert cfg.bus.backend == "kafka"
    assert cfg.bus.default_partitions == 2
    assert cfg.bus.kafka.bootstrap_servers == "broker-1:9092,broker-2:9092"
    # Secrets are kept verbatim (not parsed as YAML numbers/booleans).
    assert cfg.store.s3.access_key is not None and cfg.store.s3.access_key.get_secret_value() == "0123"
    assert cfg.store.s3.secret_key is not None and cfg.store.s3.secret_key.get_secret_value() == "true"


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={"TUBELINE_BUS__DEFAULT_PARTITIONS": "0"})
    assert info.value.problems[0].from_env == "TUBELINE_BUS__DEFAULT_PARTITIONS"
    assert "TUBELINE_BUS__DEFAULT_PARTITIONS" in str(info.value)


def test_unrelated_environment_is_ignored() -> None:
    overrides, _ = env_overrides({"PATH": "/bin", "TUBELINE_CONFIG": "x.yaml", "TUBELINE_": "1"})
    assert overrides == {}


def test_secrets_are_never_dumped() -> None:
    cfg = TubelineConfig.model_validate(
        {"store": {"s3": {"access_key": "AKIA-VISIBLE", "secret_key": "s3cr3t-value"}},
         "bus": {"kafka": {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "u",
                           "sasl_password": "kafka-pass"}}}
    )
    text = dump_config(cfg) + repr(cfg) + str(cfg)
    for secret in ("AKIA-VISIBLE", "s3cr3t-value", "kafka-pass"):
        assert secret not in text


def test_every_field_is_titled_and_described() -> None:
    def walk(schema: dict, defs: dict, where: str) -> None:
        for name, prop in schema.get("properties", {}).items():
            assert prop.get("title"), f"{where}.{name} has no title"
            assert prop.get("description"), f"{where}.{name} has no description"
        for sub in defs.values():
            for name, prop in sub.get("properties", {}).items():
                assert prop.get("title") and prop.get("description"), f"{sub.get('title')}.{name}"

    schema = TubelineConfig.model_json_schema()
    walk(schema, schema.get("$defs", {}), "root")


def test_config_validate_command(tmp_path: Path) -> None:
    good = write(tmp_path, "bus:\n  backend: kafka\n")
    ok = subprocess.run([sys.executable, "-m", "workers.cli", "config", "validate", "--no-env", str(good)],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "ok" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("bus:\n  backend: kafka\n  kafka:\n    colour: red\n")
    result = subprocess.run([sys.executable, "-m", "workers.cli", "config", "validate", "--no-env", str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"{bad}:4:5: bus.kafka.colour: Extra inputs are not permitted" in result.stderr


def test_with_overrides_keeps_secrets_and_validates() -> None:
    from pipeline.config import config_data, with_overrides

    base = TubelineConfig.model_validate({"store": {"s3": {"access_key": "ak", "secret_key": "sk"}}})
    cfg = with_overrides(base, {"bus.topic_prefix": "t1", "detect.max_batch": 4})
    assert cfg.bus.topic_prefix == "t1" and cfg.detect.max_batch == 4
    assert cfg.store.s3.secret_key is not None and cfg.store.s3.secret_key.get_secret_value() == "sk"
    assert config_data(cfg)["store"]["s3"]["secret_key"] != "sk"  # masked unless revealed
    assert config_data(cfg, reveal_secrets=True)["store"]["s3"]["secret_key"] == "sk"
    with pytest.raises(ConfigError) as info:
        with_overrides(base, {"detect.max_batch": 0})
    assert info.value.problems[0].path == "detect.max_batch"

"""Secrets at rest: AES-256-GCM envelopes, keyrings from configuration and key files, sealed values."""

from __future__ import annotations

import base64
import logging
import os
import stat
from pathlib import Path

import pytest

from pipeline.config import ConfigError, dump_config, load_config
from pipeline.config.secrets import SecretsConfig
from pipeline.sealing import (
    ENVELOPE_PREFIX,
    Envelope,
    Keyring,
    KeyUnavailable,
    SealBroken,
    SealedSecret,
    SealingError,
    SecretUnavailable,
    decode_key,
    is_sealed,
)

SECRET = "Zx9@very-secret"


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def ring(**keys: bytes) -> Keyring:
    return Keyring(keys, next(iter(keys)))


def test_seal_open_round_trip_and_the_envelope_shape() -> None:
    keyring = ring(k1=os.urandom(32))
    sealed = keyring.seal(SECRET, "camera/a/password", what="camera a")
    assert sealed.startswith(f"{ENVELOPE_PREFIX}v1:k1:") and is_sealed(sealed)
    assert SECRET not in sealed and SECRET.encode() not in base64.b64decode(sealed.split(":")[3])
    assert keyring.open(sealed, "camera/a/password", what="camera a") == SECRET
    assert keyring.seal(SECRET, "camera/a/password", what="camera a") != sealed  # fresh nonce every time


def _flip(sealed: str, index: int) -> str:
    head, body = sealed.rsplit(":", 1)
    blob = bytearray(base64.b64decode(body))
    blob[index] ^= 0x01
    return f"{head}:{base64.b64encode(bytes(blob)).decode()}"


@pytest.mark.parametrize("index", [0, 11, 12, -17, -1], ids=["nonce", "nonce-end", "ciphertext", "last-byte", "tag"])
def test_any_altered_byte_is_refused(index: int) -> None:
    keyring = ring(k1=os.urandom(32))
    sealed = keyring.seal(SECRET, "camera/a/password", what="camera a")
    with pytest.raises(SealBroken, match="camera a: cannot decrypt with registry key 'k1'"):
        keyring.open(_flip(sealed, index), "camera/a/password", what="camera a")


@pytest.mark.parametrize(
    ("mangle", "error"),
    [
        (lambda s: s.replace(":k1:", ":k2:"), SealBroken),  # relabelled to another key ID the ring has
        (lambda s: s.replace(":v1:", ":v9:"), SealBroken),
        (lambda s: s.rsplit(":", 1)[0] + ":@@@", SealBroken),
        (lambda s: s.rsplit(":", 1)[0] + ":AAAA", SealBroken),  # truncated
        (lambda s: s.replace(":k1:", ":K 1:"), SealBroken),
    ],
)
def test_mangled_envelopes_are_refused(mangle, error) -> None:  # noqa: ANN001
    keyring = Keyring({"k1": os.urandom(32), "k2": os.urandom(32)}, "k1")
    sealed = keyring.seal(SECRET, "ctx", what="camera a")
    with pytest.raises(error):
        keyring.open(mangle(sealed), "ctx", what="camera a")


def test_context_binds_the_value_to_its_owner() -> None:
    keyring = ring(k1=os.urandom(32))
    sealed = keyring.seal(SECRET, "camera/a/password", what="camera a")
    with pytest.raises(SealBroken, match="copied from another record"):
        keyring.open(sealed, "camera/b/password", what="camera b")


def test_wrong_key_and_missing_key_errors_name_owner_and_key_id_never_secrets() -> None:
    right, wrong = os.urandom(32), os.urandom(32)
    sealed = ring(k1=right).seal(SECRET, "ctx", what="camera a")
    with pytest.raises(SealBroken) as broken:
        ring(k1=wrong).open(sealed, "ctx", what="camera a")
    with pytest.raises(KeyUnavailable) as missing:
        ring(k7=right).open(sealed, "ctx", what="camera a")
    assert "camera a" in str(missing.value) and "'k1'" in str(missing.value) and "k7" in str(missing.value)
    for exc in (broken.value, missing.value):
        text = str(exc) + repr(exc)
        assert SECRET not in text and b64(right) not in text and b64(wrong) not in text
        assert sealed.split(":")[3] not in text
        assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)  # no chained trace


def test_keyring_repr_shows_ids_not_keys() -> None:
    key = os.urandom(32)
    text = repr(Keyring({"k1": key}, "k1"))
    assert "k1" in text and b64(key) not in text and repr(key) not in text


def test_sealed_secret_is_masked_compares_by_envelope_and_refuses_to_be_read() -> None:
    sealed_text = ring(k1=os.urandom(32)).seal(SECRET, "ctx", what="camera a")
    sealed = SealedSecret(sealed_text, context="ctx", what="camera a")
    assert str(sealed) == "**********" and sealed_text not in repr(sealed)
    assert sealed == SealedSecret(sealed_text, context="ctx", what="camera a")
    assert sealed != SealedSecret(sealed_text + "x", context="ctx", what="camera a")
    from pydantic import SecretStr

    assert SecretStr(sealed_text) != sealed and sealed != SecretStr(sealed_text)
    with pytest.raises(SecretUnavailable, match="camera a: .*registry key 'k1'.*TUBELINE_SECRETS__KEY"):
        sealed.get_secret_value()


# --- configuration ----------------------------------------------------------------------------------


def test_keys_from_configuration_current_and_old() -> None:
    old, new = os.urandom(32), os.urandom(32)
    cfg = load_config(environ={
        "TUBELINE_SECRETS__KEY": b64(new),
        "TUBELINE_SECRETS__KEY_ID": "k2",
        "TUBELINE_SECRETS__OLD_KEYS__K1": b64(old),
    })
    keyring = cfg.secrets.keyring()
    assert keyring.current_id == "k2" and keyring.key_ids == ["k1", "k2"] and keyring.key_file is None
    from_old = ring(k1=old).seal(SECRET, "ctx", what="x")
    assert keyring.open(from_old, "ctx", what="x") == SECRET
    assert keyring.seal(SECRET, "ctx", what="x").startswith("enc:v1:k2:")
    shown = dump_config(cfg) + repr(cfg) + str(cfg.secrets)
    assert b64(new) not in shown and b64(old) not in shown


@pytest.mark.parametrize(
    "environ",
    [
        {"TUBELINE_SECRETS__KEY": "TOPSECRET-but-short"},
        {"TUBELINE_SECRETS__KEY": base64.b64encode(b"TOPSECRET-16-byt").decode()},
        {"TUBELINE_SECRETS__OLD_KEYS__K1": "TOPSECRET-but-short"},
        {"TUBELINE_SECRETS__KEY_ID": "Has:Colon"},
    ],
)
def test_bad_keys_are_config_errors_that_do_not_echo_the_value(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ=environ)
    assert "secrets" in str(info.value) and "TOPSECRET" not in str(info.value)
    assert "VE9QU0VDUkVU" not in str(info.value)  # base64 of TOPSECRET


def test_validation_error_text_never_quotes_a_key() -> None:
    from pydantic import ValidationError

    from pipeline.config import TubelineConfig

    with pytest.raises(ValidationError) as info:
        TubelineConfig.model_validate({"secrets": {"key": "TOPSECRET-but-short"}})
    assert "TOPSECRET" not in str(info.value)
    with pytest.raises(ValidationError) as info:
        SecretsConfig.model_validate({"key": "TOPSECRET-but-short"})
    assert "TOPSECRET" not in str(info.value)


def test_current_key_id_cannot_also_be_an_old_key() -> None:
    with pytest.raises(ValueError, match="also in secrets.old_keys"):
        SecretsConfig(key=b64(os.urandom(32)), key_id="k1", old_keys={"k1": b64(os.urandom(32))})


@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_decode_key_accepts_standard_and_url_safe_base64(encode) -> None:  # noqa: ANN001
    key = bytes(range(200, 232))  # has bytes that encode to '+' '/' or '-' '_'
    assert decode_key(encode(key).decode()) == key
    assert decode_key(encode(key[:16]).decode()) is None and decode_key("not base64!") is None


# --- key file ---------------------------------------------------------------------------------------


def test_key_file_is_generated_on_first_seal_with_mode_0600_and_a_log_line(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    path = tmp_path / "var" / "secrets" / "registry.key"
    keyring = SecretsConfig(key_file=path).keyring()
    assert keyring.current_id is None and not path.exists()  # reading alone creates nothing
    with caplog.at_level(logging.WARNING, logger="pipeline.sealing"):
        sealed = keyring.seal(SECRET, "ctx", what="camera a")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert any("generated a new registry key" in r.getMessage() and str(path) in r.getMessage()
               for r in caplog.records)
    key_line = next(line for line in path.read_text().splitlines() if not line.startswith("#"))
    assert all(key_line.split()[1] not in r.getMessage() for r in caplog.records)
    again = SecretsConfig(key_file=path).keyring()  # another process: same key, no new file
    assert again.open(sealed, "ctx", what="camera a") == SECRET
    assert again.ensure_current() == "k1" and path.read_text().count("k1 ") == 1


def test_without_create_a_missing_key_file_is_a_clear_error(tmp_path: Path) -> None:
    keyring = SecretsConfig(key_file=tmp_path / "none.key", create_key_file=False).keyring()
    with pytest.raises(KeyUnavailable, match="camera a: no registry key.*none.key"):
        keyring.seal(SECRET, "ctx", what="camera a")
    assert not (tmp_path / "none.key").exists()


def test_rotation_puts_a_new_key_first_and_running_keyrings_follow(tmp_path: Path) -> None:
    path = tmp_path / "registry.key"
    writer = SecretsConfig(key_file=path).keyring()
    reader = SecretsConfig(key_file=path).keyring()  # e.g. the ingest worker, already running
    old = writer.seal(SECRET, "ctx", what="a")
    assert reader.open(old, "ctx", what="a") == SECRET
    assert writer.rotate() == "k2"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    new = writer.seal(SECRET, "ctx", what="a")
    assert new.startswith("enc:v1:k2:")
    assert reader.open(new, "ctx", what="a") == SECRET  # picked up the changed file
    assert reader.open(old, "ctx", what="a") == SECRET  # old key kept
    assert reader.current_id == "k2" and reader.key_ids == ["k1", "k2"]


def test_rotation_of_a_configured_key_is_refused_with_instructions() -> None:
    keyring = SecretsConfig(key=b64(os.urandom(32))).keyring()
    with pytest.raises(SealingError, match="secrets.old_keys"):
        keyring.rotate()


@pytest.mark.parametrize("text", ["k1 short\n", "k1\n", "K1 " + "A" * 44 + "\n", "k1 {k}\nk1 {k}\n"])
def test_malformed_key_files_are_refused_without_quoting_them(tmp_path: Path, text: str) -> None:
    path = tmp_path / "registry.key"
    path.write_text(text.replace("{k}", b64(os.urandom(32))))
    path.chmod(0o600)
    with pytest.raises(SealingError) as info:
        SecretsConfig(key_file=path).keyring().seal(SECRET, "ctx", what="a")
    assert f"{path}:" in str(info.value) and "short" not in str(info.value)


def test_a_key_file_readable_by_others_is_warned_about(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    path = tmp_path / "registry.key"
    path.write_text(f"k1 {b64(os.urandom(32))}\n")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="pipeline.sealing"):
        assert SecretsConfig(key_file=path).keyring().current_id == "k1"
    assert any("readable by others" in r.getMessage() for r in caplog.records)


def test_envelope_parse_round_trip() -> None:
    env = Envelope("v1", "k3", os.urandom(40))
    assert Envelope.parse(str(env), what="x") == env

"""Configuration of the keys that encrypt secrets at rest (camera passwords in the registry).

A key is 32 random bytes written in base64 (``openssl rand -base64 32``). The current key comes
from ``secrets.key`` (deployments: ``TUBELINE_SECRETS__KEY``) or, when that is unset, from
``secrets.key_file``, which the embedded setup generates on first use. Retired keys stay in
``secrets.old_keys`` (or further down the key file) so records sealed with them still open until
``tubeline cameras rekey`` has moved every record to the current key. See :mod:`pipeline.sealing`.

Validation messages name the field, never its value, and this section hides inputs in errors.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from pipeline.config.base import Section
from pipeline.sealing import KEY_BYTES, Keyring, decode_key, require_key

KEY_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
_KEY_ID_RE = re.compile(KEY_ID_PATTERN)


class SecretsConfig(Section):
    """Keys for secrets at rest: the current one and the retired ones that still decrypt."""

    model_config = ConfigDict(hide_input_in_errors=True)

    key: SecretStr | None = Field(
        None,
        title="Key",
        description="Current key: 32 random bytes in base64 (openssl rand -base64 32). Unset = use key_file.",
    )
    key_id: str = Field(
        "k1",
        title="Key ID",
        description="ID of 'key', written into every value it encrypts (lower case, digits, '-', '_').",
        pattern=KEY_ID_PATTERN,
    )
    old_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        title="Old keys",
        description="Retired keys by key ID: they still decrypt, never encrypt. Drop one once rekey has run.",
        max_length=100,
    )
    key_file: Path = Field(
        Path("var/secrets/registry.key"),
        title="Key file",
        description="Used when 'key' is unset: lines '<key id> <base64 key>', current key first (mode 0600).",
    )
    create_key_file: bool = Field(
        True,
        title="Create key file",
        description="Generate key_file with a random key on first use when it is missing (embedded setup).",
    )

    @field_validator("key")
    @classmethod
    def _key_is_32_bytes(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and decode_key(value.get_secret_value()) is None:
            msg = f"must be {KEY_BYTES} bytes in base64 (value not shown)"
            raise ValueError(msg)
        return value

    @field_validator("old_keys")
    @classmethod
    def _old_keys_are_32_bytes(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for key_id, key in value.items():
            if decode_key(key.get_secret_value()) is None:
                msg = f"{key_id}: must be {KEY_BYTES} bytes in base64 (value not shown)"
                raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _key_ids_distinct(self) -> SecretsConfig:
        for key_id in self.old_keys:
            if not _KEY_ID_RE.match(key_id):
                msg = f"secrets.old_keys: {key_id!r} is not a key ID (lower case, digits, '-', '_')"
                raise ValueError(msg)
        if self.key is not None and self.key_id in self.old_keys:
            msg = f"secrets.key_id {self.key_id!r} is also in secrets.old_keys"
            raise ValueError(msg)
        return self

    def keyring(self) -> Keyring:
        """The keyring of these settings: the configured keys, or else the (generated) key file."""
        old = {kid: require_key(value.get_secret_value(), f"secrets.old_keys.{kid}")
               for kid, value in self.old_keys.items()}
        if self.key is not None:
            current = require_key(self.key.get_secret_value(), "secrets.key")
            return Keyring({**old, self.key_id: current}, self.key_id)
        return Keyring(old, None, key_file=self.key_file, create=self.create_key_file)

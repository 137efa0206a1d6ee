"""The rules document in the object store: zones, lines and rules that admins edit while workers run.

Layout::

    config/rules.json                    the rules in force: {version, updated_at, updated_by, rules}
    config/rules-history/{version}.json  every version ever saved (the same document), never rewritten

Until the first save, the configuration file's ``rules`` section is in force; the first save (from the admin
UI or the API) copies it into the store, and from then on the document is the truth: the rules worker polls it
(``RulesDocument.load``) and swaps its rules without a restart, the API draws overlays from it. Every saved
version is validated by the same strict model as the configuration (:class:`pipeline.config.rules.RulesConfig`),
so a document that would not load is never written.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipeline.config import TubelineConfig
from pipeline.config.rules import RulesConfig
from pipeline.store.base import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)

DOC_KEY = "config/rules.json"
HISTORY_PREFIX = "config/rules-history"
MAX_DOC_BYTES = 8 << 20


@dataclass(frozen=True)
class RulesVersion:
    version: int
    updated_at: str
    updated_by: str
    rules: RulesConfig


class VersionConflict(ValueError):
    """The document changed since the editor read it."""


class RulesDocument:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def load(self) -> RulesVersion | None:
        """The saved document, or None before the first save. Raises ValueError when it is unreadable."""
        try:
            raw = self.store.get(DOC_KEY)
        except ObjectNotFound:
            return None
        if len(raw) > MAX_DOC_BYTES:
            msg = f"{DOC_KEY} is larger than {MAX_DOC_BYTES} bytes"
            raise ValueError(msg)
        doc = json.loads(raw)
        return RulesVersion(int(doc["version"]), str(doc["updated_at"]), str(doc["updated_by"]),
                            RulesConfig.model_validate(doc["rules"]))

    def effective(self, config: TubelineConfig) -> RulesConfig:
        """The rules in force: the document's, else the configuration's ``rules`` section."""
        try:
            saved = self.load()
        except (ValueError, KeyError) as exc:
            log.warning("rules document unreadable, using the configuration's rules: %s", exc)
            saved = None
        if saved is not None:
            return saved.rules
        return config.rules

    def save(self, rules: RulesConfig | dict[str, Any], *, user: str, expect_version: int | None) -> RulesVersion:
        """Validate and store a new version. ``expect_version`` (the version the editor started from; 0 before
        the first save) guards against overwriting someone else's change: VersionConflict when it moved."""
        model = rules if isinstance(rules, RulesConfig) else RulesConfig.model_validate(rules)
        current = self.load()
        have = current.version if current else 0
        if expect_version is not None and expect_version != have:
            msg = f"the rules changed since you opened them (version {have}, you edited {expect_version}); reload"
            raise VersionConflict(msg)
        version = RulesVersion(have + 1, datetime.now(UTC).isoformat(), user, model)
        body = json.dumps({"version": version.version, "updated_at": version.updated_at, "updated_by": user,
                           "rules": model.model_dump(mode="json", exclude_defaults=False)}, indent=1).encode()
        self.store.put(f"{HISTORY_PREFIX}/{version.version:08d}.json", body, content_type="application/json")
        self.store.put(DOC_KEY, body, content_type="application/json")
        log.info("rules document version %d saved by %s", version.version, user)
        return version

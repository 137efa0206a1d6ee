"""The plate worker's hotlists: every list from files and the store merged into one match index.

The list format, file parsing and the store repository are shared domain in :mod:`pipeline.hotlists` (the API
edits lists through it too). :class:`HotlistBook` re-reads its sources every ``hotlists.refresh_s`` and rebuilds
the match index only when a file's size/mtime or an object's etag changed; a source that fails to load keeps its
last good version. On equal names the store wins over files. Expired entries never match.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from pipeline.config.enrich import HotlistsConfig
from pipeline.hotlists import Hotlist, HotlistEntry, HotlistError, HotlistRepository, load_file
from pipeline.lookalikes import LookAlikes
from pipeline.store.base import ObjectNotFound, ObjectStore
from workers.plate.matching import Candidate, Match, PlateIndex

log = logging.getLogger(__name__)

__all__ = ["HotlistBook"]


# -- the merged book ---------------------------------------------------------------------------------
class HotlistBook:
    """Every hotlist from files and the store, with a match index; ``refresh()`` reloads what changed."""

    def __init__(self, config: HotlistsConfig, store: ObjectStore | None = None,
                 extra: Iterable[Hotlist] = ()) -> None:
        self.config = config
        self.repository = HotlistRepository(store, config.store_prefix) if store is not None else None
        self.table = (LookAlikes.shipped(config.confusions, config.confusion_cost) if config.measured_costs
                      else LookAlikes(config.confusions, config.confusion_cost))
        self.extra = tuple(extra)
        self.lists: dict[str, Hotlist] = {}
        self.index = PlateIndex([], self.table, config.max_cost)
        self._files: dict[Path, tuple[tuple[float, int], list[Hotlist]]] = {}
        self._stored: tuple[tuple[tuple[str, str, int], ...], list[Hotlist]] = ((), [])
        self._next_refresh = 0.0

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read changed sources when due (or ``force``); True when the index was rebuilt."""
        now = time.monotonic()
        if not force and now < self._next_refresh:
            return False
        self._next_refresh = now + self.config.refresh_s
        changed = self._refresh_files() | self._refresh_store()
        if changed or force:
            self._rebuild()
        return changed

    def _refresh_files(self) -> bool:
        changed = False
        for path in self.config.files:
            try:
                stat = Path(path).stat()
                mark = (stat.st_mtime, stat.st_size)
            except OSError as exc:
                log.warning("hotlists: cannot read %s (%s); keeping its last loaded version", path, exc)
                continue
            if path in self._files and self._files[path][0] == mark:
                continue
            try:
                self._files[path] = (mark, load_file(path))
                changed = True
            except HotlistError as exc:
                log.warning("hotlists: %s; keeping the last loaded version", exc)
        return changed

    def _refresh_store(self) -> bool:
        if self.repository is None:
            return False
        try:
            mark = self.repository.fingerprint()
        except Exception as exc:  # the store may be briefly unreachable; matching goes on with what we have
            log.warning("hotlists: cannot list the store (%s); keeping the loaded lists", exc)
            return False
        if mark == self._stored[0]:
            return False
        loaded = []
        for name in self.repository.names():
            try:
                loaded.append(self.repository.get(name))
            except (HotlistError, ObjectNotFound) as exc:
                log.warning("hotlists: skipping %s: %s", name, exc)
        self._stored = (mark, loaded)
        return True

    def _rebuild(self) -> None:
        lists: dict[str, Hotlist] = {h.name: h for h in self.extra}
        for _, loaded in self._files.values():
            for hotlist in loaded:
                if hotlist.name in lists:
                    log.warning("hotlists: list %r is defined twice in files; the last one wins", hotlist.name)
                lists[hotlist.name] = hotlist
        for hotlist in self._stored[1]:
            lists[hotlist.name] = hotlist  # the store (managed by CLI/API) wins over files
        now = datetime.now(UTC)
        candidates = [Candidate(h.name, e.plate, e) for h in lists.values() for e in h.entries if not e.expired(now)]
        self.lists = lists
        self.index = PlateIndex(candidates, self.table, self.config.max_cost)
        log.info("hotlists: %d list(s), %d plate(s)", len(lists), len(candidates))

    def match(self, plate: str) -> list[tuple[Hotlist, HotlistEntry, Match]]:
        """The best entry of every list that ``plate`` matches, cheapest first."""
        out = []
        now = datetime.now(UTC)
        for found in self.index.match(plate):
            hotlist = self.lists[found.candidate.list_name]
            entry = found.candidate.payload
            assert isinstance(entry, HotlistEntry)
            if not entry.expired(now):
                out.append((hotlist, entry, found))
        return out


"""The API's side of video synopses: requests, status, stored indexes and the video file.

Requests go to the same queue the synopsis worker polls (:func:`pipeline.synopsis.queue.queue_synopsis`),
so a deployment scales synopsis builds with ``tubeline worker synopsis`` replicas while the API stays
responsive. With ``api.build_synopses`` (the embedded ``tubeline up``) the process that serves the API also
runs that worker's request loop in a background thread — a companion the runner adds
(:mod:`workers.runner.companions`); the API package itself never builds.

A synopsis's ID is derived from what it shows (camera, window, filters, length), so two users asking for
the same synopsis share one build; access is decided per request by the camera scope, never by who asked.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path

from pipeline.config import TubelineConfig
from pipeline.config.synopsis import SynopsisConfig
from pipeline.store.base import ObjectNotFound, ObjectStore
from pipeline.synopsis.index import SynopsisIndex, load_synopsis_index
from pipeline.synopsis.queue import queue_synopsis, synopsis_status
from pipeline.synopsis.request import SynopsisKeys, SynopsisRequest, SynopsisStatus
from workers.api import cache

log = logging.getLogger(__name__)

_ID_CHARS = frozenset("0123456789abcdef")
ACTIVE = frozenset({"queued", "running", "done"})


def valid_id(synopsis_id: str) -> bool:
    return len(synopsis_id) == 32 and set(synopsis_id) <= _ID_CHARS


class SynopsisDesk:
    """Submits, lists and reads synopses in the store; caches indexes and videos for serving."""

    def __init__(self, store: ObjectStore, settings: SynopsisConfig, cache_dir: Path, *,
                 index_cache: int = 16,
                 cache_max_bytes: int | None = None) -> None:
        self.store = store
        self.settings = settings
        self.cache_dir = cache_dir
        self.cache_max_bytes = cache_max_bytes
        self._indexes: OrderedDict[tuple[str, str], SynopsisIndex] = OrderedDict()
        self._index_cache = index_cache
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: TubelineConfig, store: ObjectStore, cache_dir: Path, *,
                    cache_max_bytes: int | None = None) -> SynopsisDesk:
        return cls(store, config.synopsis, cache_dir, cache_max_bytes=cache_max_bytes)

    def keys(self, camera_id: str, synopsis_id: str) -> SynopsisKeys:
        return SynopsisKeys.of(camera_id, synopsis_id, self.settings.prefix, self.settings.request_prefix)

    # -- requests and status -------------------------------------------------------------------------
    def existing(self, request: SynopsisRequest) -> SynopsisStatus | None:
        """The status of the same synopsis when it is already queued, running or built (with its index)."""
        synopsis_id = request.synopsis_id()
        current = self.status(request.camera_id, synopsis_id)
        if current is not None and current.state in ACTIVE:
            if current.state != "done" or self.store.exists(self.keys(request.camera_id, synopsis_id).index):
                return current
        return None

    def pending(self, camera_id: str, synopsis_id: str) -> bool:
        """True while that synopsis is queued or being built."""
        status = self.status(camera_id, synopsis_id)
        return status is not None and status.state in ("queued", "running")

    def submit(self, request: SynopsisRequest) -> SynopsisStatus:
        """Queue ``request`` unless the same synopsis is already queued, running or built (then that status).

        A synopsis that came out empty or failed is queued again (the tracks may have arrived since)."""
        return self.existing(request) or queue_synopsis(self.store, request, self.settings)

    def status(self, camera_id: str, synopsis_id: str) -> SynopsisStatus | None:
        if not valid_id(synopsis_id):
            return None
        try:
            return synopsis_status(self.store, camera_id, synopsis_id, self.settings)
        except ValueError:
            log.warning("unreadable synopsis status %s/%s", camera_id, synopsis_id)
            return None

    def list(self, cameras: list[str] | None, limit: int) -> list[SynopsisStatus]:
        """The newest ``limit`` synopses of ``cameras`` (None: every camera), newest first."""
        prefixes = [f"{self.settings.prefix}/"] if cameras is None else [f"{self.settings.prefix}/{c}/" for c in cameras]
        infos = [info for prefix in prefixes for info in self.store.list(prefix) if info.key.endswith(".status.json")]
        infos.sort(key=lambda i: (i.last_modified is not None, i.last_modified or 0, i.key), reverse=True)
        out: list[SynopsisStatus] = []
        for info in infos:
            if len(out) >= limit:
                break
            try:
                status = SynopsisStatus.from_json(self.store.get(info.key))
            except (ObjectNotFound, ValueError):
                continue
            if cameras is None or status.camera_id in cameras:
                out.append(status)
        out.sort(key=lambda s: s.updated_at, reverse=True)
        return out

    # -- outputs -------------------------------------------------------------------------------------
    def index(self, camera_id: str, synopsis_id: str) -> SynopsisIndex | None:
        """The stored index (cached; a rebuild writes a new ``created_at``, which the etag follows)."""
        key = self.keys(camera_id, synopsis_id).index
        try:
            etag = self.store.stat(key).etag
        except ObjectNotFound:
            return None
        with self._lock:
            cached = self._indexes.get((key, etag))
            if cached is not None:
                self._indexes.move_to_end((key, etag))
                return cached
        index = load_synopsis_index(self.store, key)
        if index.camera_id != camera_id or index.synopsis_id != synopsis_id:
            log.error("synopsis index %s names %s/%s; refusing it", key, index.camera_id, index.synopsis_id)
            return None
        with self._lock:
            self._indexes[(key, etag)] = index
            while len(self._indexes) > self._index_cache:
                self._indexes.popitem(last=False)
        return index

    def video_file(self, camera_id: str, synopsis_id: str) -> Path:
        """The MP4 as a local file for range requests (downloaded once per stored version)."""
        key = self.keys(camera_id, synopsis_id).video
        etag = "".join(ch for ch in self.store.stat(key).etag if ch.isalnum())[:24] or "0"
        path = self.cache_dir / "synopsis" / camera_id / f"{synopsis_id}-{etag}.mp4"
        return cache.fetch(self.store, key, path, root=self.cache_dir, max_bytes=self.cache_max_bytes)

"""Synopsis requests and statuses in the object store: how a client queues a build and reads its state.

A client (the API, ``tubeline synopsis --submit``) writes ``{request_prefix}/{id}.json`` and a ``queued``
status; the synopsis worker builds it and rewrites the status (``running`` → ``done``/``empty``/``failed``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.config.synopsis import SynopsisConfig
from pipeline.store.base import ObjectNotFound, ObjectStore
from pipeline.synopsis.request import BuildState, SynopsisKeys, SynopsisRequest, SynopsisStatus


def keys_of(settings: SynopsisConfig, camera_id: str, synopsis_id: str) -> SynopsisKeys:
    return SynopsisKeys.of(camera_id, synopsis_id, settings.prefix, settings.request_prefix)


def write_status(store: ObjectStore, settings: SynopsisConfig, request: SynopsisRequest, state: BuildState,
                 *, worker: str = "", error: str = "", phase: str = "", progress: float | None = None) -> SynopsisStatus:
    status = SynopsisStatus(synopsis_id=request.synopsis_id(), camera_id=request.camera_id, state=state,
                            updated_at=datetime.now(UTC), worker=worker, error=error[:4000], phase=phase,
                            progress=None if progress is None else round(min(1.0, max(0.0, progress)), 3),
                            request=request)
    store.put(keys_of(settings, request.camera_id, status.synopsis_id).status, status.to_json(),
              content_type="application/json")
    return status


def queue_synopsis(store: ObjectStore, request: SynopsisRequest,
                   settings: SynopsisConfig | None = None) -> SynopsisStatus:
    """Queue ``request`` for the synopsis worker; returns the ``queued`` status written."""
    settings = settings or SynopsisConfig()
    keys = keys_of(settings, request.camera_id, request.synopsis_id())
    store.put(keys.request, request.to_json(), content_type="application/json")
    return write_status(store, settings, request, "queued")


def submit_synopsis(store: ObjectStore, request: SynopsisRequest, settings: SynopsisConfig | None = None) -> str:
    """Queue ``request`` for the synopsis worker; returns its stable ID (the same request gives the same ID)."""
    return queue_synopsis(store, request, settings).synopsis_id


def synopsis_status(store: ObjectStore, camera_id: str, synopsis_id: str,
                    settings: SynopsisConfig | None = None) -> SynopsisStatus | None:
    """The build status of a synopsis, or None when it was never requested."""
    settings = settings or SynopsisConfig()
    try:
        return SynopsisStatus.from_json(store.get(keys_of(settings, camera_id, synopsis_id).status))
    except ObjectNotFound:
        return None

"""Everything one API process shares between requests, built once from the configuration."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar

from pipeline.bus.base import Bus
from pipeline.cases.links import CaseLinks
from pipeline.cases.records import CaseRegister
from pipeline.cases.signing import EvidenceKeys
from pipeline.cases.workspace import Workspace
from pipeline.config import TubelineConfig
from pipeline.config.api import ApiConfig
from pipeline.health.service import HealthService
from pipeline.live.hub import LiveHub
from pipeline.live.topic import LiveTopicFollower
from pipeline.search.protocol import Search
from pipeline.search.service import SearchService
from pipeline.store.base import ObjectStore
from workers.api.alerts import AlertHub
from workers.api.anonymous import AnonymousRefusals
from workers.api.audit import AuditLog
from workers.api.clips import ClipExporter
from workers.api.desk import AlertDesk
from workers.api.devices import DeviceDesk
from workers.api.evidence import AlertSnapshots
from workers.api.faces import FaceQueries, zoo_analyzer_factory
from workers.api.limits import Quotas
from workers.api.notify import WebhookNotifier
from workers.api.overlays import OverlayHub
from workers.api.scope import CameraDirectory
from workers.api.sessions import MediaSigner, SessionStore
from workers.api.synopses import SynopsisDesk
from workers.api.throttle import LoginThrottle
from workers.api.users import UserStore

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


class Companion(Protocol):
    """Background work that lives and dies with one API process (e.g. an in-process synopsis builder)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def _scoped(method: Callable[P, R], nothing: R) -> Callable[P, R]:
    """``method``, answering ``nothing`` without calling it when ``cameras`` is an empty scope."""

    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        cameras = kwargs.get("cameras")
        if cameras is not None and not cameras:
            return nothing
        return method(*args, **kwargs)

    return call


class ScopedSearch:
    """The query layer behind one more guard: an empty camera scope returns nothing without a query.

    Each call has the signature of :class:`~pipeline.search.protocol.Search`'s (this class is one).
    (The service is safe to call from several threads, so calls are not serialised here.)
    """

    def __init__(self, service: Search) -> None:
        self.refresh = service.refresh
        self.plates = _scoped(service.plates, [])
        self.plate_reads = _scoped(service.plate_reads, [])
        self.vehicles = _scoped(service.vehicles, [])
        self.persons = _scoped(service.persons, [])
        self.tracks = _scoped(service.tracks, [])
        self.faces = _scoped(service.faces, [])
        self.plate_trajectory = _scoped(service.plate_trajectory, [])
        self.face_trajectory = _scoped(service.face_trajectory, [])
        self.sighting = _scoped(service.sighting, None)
        self.alerts = _scoped(service.alerts, [])
        self.camera_status = _scoped(service.camera_status, [])
        self.face_embeddings = _scoped(service.face_embeddings, {})


@dataclass
class ApiContext:
    config: TubelineConfig
    api: ApiConfig
    store: ObjectStore
    search: Search
    users: UserStore
    sessions: SessionStore
    audit: AuditLog
    media: MediaSigner
    directory: CameraDirectory
    alerts: AlertHub
    clips: ClipExporter
    faces: FaceQueries
    throttle: LoginThrottle
    quotas: Quotas
    case_re: re.Pattern[str]
    synopses: SynopsisDesk
    health: HealthService
    """Camera health, KPIs and reports over the search service's catalog cache."""
    cases: CaseRegister
    workspace: Workspace
    links: CaseLinks
    evidence_keys: EvidenceKeys
    anonymous: AnonymousRefusals = field(default_factory=AnonymousRefusals)
    recordings_prefix: str = "recordings"
    desk: AlertDesk | None = None
    live: LiveHub = field(default_factory=LiveHub)
    snapshots: AlertSnapshots | None = None
    live_follower: LiveTopicFollower | None = None
    notifier: WebhookNotifier | None = None
    overlays: OverlayHub = field(default_factory=lambda: OverlayHub(None))
    companions: list[Companion] = field(default_factory=list)
    devices: DeviceDesk | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _refresher: threading.Thread | None = None

    def start(self) -> None:
        """Background work: follow alerts, refresh the search catalog, sweep expired sessions, and the
        companions (an in-process synopsis builder with ``api.build_synopses``)."""
        self.alerts.start()
        self.overlays.start()
        if self.live_follower is not None:
            self.live_follower.start()
        if self.notifier is not None:
            self.notifier.start()
        for companion in self.companions:
            companion.start()
        if self._refresher is None:
            self._refresher = threading.Thread(target=self._refresh_loop, name="api-refresh", daemon=True)
            self._refresher.start()

    def _refresh_loop(self) -> None:
        sweeps = 0
        while not self._stop.wait(self.api.refresh_s):
            try:
                self.search.refresh()
            except Exception:
                log.warning("search catalog refresh failed", exc_info=True)
            sweeps += 1
            if sweeps * self.api.refresh_s >= 3600:
                sweeps = 0
                try:
                    self.sessions.sweep()
                    self.throttle.sweep()
                except Exception:
                    log.warning("session or login-throttle sweep failed", exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        self.alerts.stop()
        if self.devices is not None:
            self.devices.close()
        self.overlays.stop()
        if self.live_follower is not None:
            self.live_follower.stop()
        if self.notifier is not None:
            self.notifier.stop()
        for companion in self.companions:
            companion.stop()
        if self._refresher is not None:
            self._refresher.join(timeout=10)
            self._refresher = None
        try:
            self.audit.close()
        except Exception:
            log.warning("could not write the audit chain's closing entry", exc_info=True)


def build_context(
    config: TubelineConfig,
    *,
    store: ObjectStore,
    search: Search | None = None,
    bus: Bus | None = None,
    face_analyzer_factory: Callable[[], Any] | None = None,
    audit_writer: str | None = None,
    api: ApiConfig | None = None,
    companions: Collection[Companion] = (),
    live: LiveHub | None = None,
) -> ApiContext:
    """Wire the API's parts. ``search`` defaults to the real :class:`pipeline.search.service.SearchService`;
    ``api`` overrides the configuration's ``api`` section; ``companions`` start and stop with the context;
    ``live`` is the live fan-out ingest feeds (the embedded run shares its hub; default: a hub of its own)."""
    api = api or config.api
    if search is None:
        search = SearchService(store, config)
        try:
            search.refresh()
        except Exception:
            log.warning("initial search catalog refresh failed", exc_info=True)
    recordings_prefix = config.ingest.recordings.prefix
    # Without a hub shared in process (tubeline up), the API follows the live topic into a hub of its own.
    follower = None
    if live is None:
        live = LiveHub()
        follower = LiveTopicFollower(bus, live) if bus is not None else None
    snapshots = AlertSnapshots(store, live)
    alerts = AlertHub(bus, enrich=snapshots)
    # share the search service's catalog cache (a stand-in for the query layer has none)
    health = HealthService(store, config, catalog=search.catalog if isinstance(search, SearchService) else None)
    return ApiContext(
        config=config,
        api=api,
        store=store,
        search=ScopedSearch(search),
        users=UserStore(store),
        sessions=SessionStore(store, api.session_ttl_s),
        audit=AuditLog(store, writer_id=audit_writer, anchor_every=api.audit_anchor_every),
        media=MediaSigner(store, api.media_url_ttl_s),
        directory=CameraDirectory(store, config.cameras.registry_prefix, config.cameras.static),
        alerts=alerts,
        desk=AlertDesk(store, alerts.publish_update),
        clips=ClipExporter(store, Path(api.cache_dir) / "exports", recordings_prefix=recordings_prefix,
                           cache_root=Path(api.cache_dir), cache_max_bytes=api.cache_max_mb * 1_000_000),
        faces=FaceQueries(face_analyzer_factory or zoo_analyzer_factory(config.models), api.face_min_quality,
                          api.max_image_pixels),
        throttle=LoginThrottle(store, max_per_pair=api.login_max_failures,
                               max_per_name=api.login_max_failures_per_name, window_s=api.login_lockout_s),
        quotas=Quotas(store, api),
        case_re=re.compile(api.case_pattern),
        synopses=SynopsisDesk.from_config(config, store, Path(api.cache_dir),
                                          cache_max_bytes=api.cache_max_mb * 1_000_000),
        cases=CaseRegister(store, config.cases.prefix, api.case_pattern),
        workspace=Workspace(store, config.cases.prefix),
        links=CaseLinks(store, config.cases.prefix),
        evidence_keys=EvidenceKeys(config.cases.evidence_key_file, create=config.cases.create_key_file),
        recordings_prefix=recordings_prefix,
        live=live,
        snapshots=snapshots,
        live_follower=follower,
        notifier=WebhookNotifier(config.notify, bus, store) if bus is not None and config.notify.webhooks else None,
        overlays=OverlayHub(bus),
        health=health,
        companions=list(companions),
        devices=DeviceDesk(bus),
    )

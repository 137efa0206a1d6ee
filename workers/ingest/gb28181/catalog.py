"""Device catalogs into the camera registry: paged Catalog queries (2016 9.5.3, Annex N) and catalog change
notifications (NOTIFY of a catalog subscription, 9.11).

A query's pages (same SN) are merged, items deduplicated by channel ID, until ``SumNum`` (or the timeout);
unsolicited pages are collected the same way. Video channels (not business groups 215, virtual organisations
216, servers 200 or ``Parental=1`` nodes) are upserted into the registry with ``kind: gb28181``; operator-set
fields survive. A change notification applies its items at once — ADD/UPDATE/ON/OFF upsert the channel, DEL
disables it (the record, with its history, stays) — and the caller then queries the full catalog again.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.config.ingest import CameraSpec
from workers.ingest.gb28181 import manscdp
from workers.ingest.gb28181.session import Signalling

log = logging.getLogger(__name__)


@dataclass
class CatalogRun:
    device_id: str
    sn: str
    started: float
    sum_num: int | None = None
    items: dict[str, manscdp.CatalogItem] = field(default_factory=dict)
    pages: int = 0
    duplicates: int = 0
    done: threading.Event = field(default_factory=threading.Event)


class CatalogCollector:
    def __init__(self, signalling: Signalling, *, registry: Any, counters: dict[str, int],
                 on_channels: Callable[[list[CameraSpec]], None] | None, next_sn: Callable[[], int],
                 on_catalogued: Callable[[str], None]) -> None:
        self.signalling = signalling
        self.registry = registry
        self.counters = counters
        self.on_channels = on_channels
        self._next_sn = next_sn
        self._on_catalogued = on_catalogued
        self._runs: dict[tuple[str, str], CatalogRun] = {}
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gb-registry")

    def close(self) -> None:
        self._writer.shutdown(wait=True, cancel_futures=False)

    # -- queries ------------------------------------------------------------------------------------------
    def refresh(self, device_id: str) -> None:
        """Query the device's catalog in the background (at most one query per device at a time)."""
        with self._lock:
            if device_id in self._pending:
                return
            self._pending.add(device_id)
        threading.Thread(target=self._safe_query, args=(device_id,), name=f"gb-catalog-{device_id}",
                         daemon=True).start()

    def _safe_query(self, device_id: str) -> None:
        try:
            self.query(device_id)
        except Exception as exc:
            log.warning("Catalog query to %s failed: %s", device_id, exc)
        finally:
            with self._lock:
                self._pending.discard(device_id)

    def query(self, device_id: str, timeout: float | None = None) -> list[manscdp.CatalogItem]:
        """Ask a registered device for its catalog and wait for all pages (or the timeout)."""
        sig = self.signalling
        dev = sig.devices.get(device_id)
        if dev is None:
            msg = f"device {device_id} is not registered"
            raise LookupError(msg)
        sn = str(self._next_sn())
        self.counters["catalog_queries"] += 1
        run = CatalogRun(device_id, sn, time.monotonic())
        with self._lock:
            self._runs[(device_id, sn)] = run
        req = sig.new_request("MESSAGE", f"sip:{device_id}@{dev.peer.host}:{dev.peer.port}", dev.peer,
                              to=f"<sip:{device_id}@{sig.config.domain}>",
                              body=manscdp.catalog_query(int(sn), device_id), content_type="Application/MANSCDP+xml")
        assert sig.transport is not None
        resp = sig.transport.request(req, dev.peer, timeout=min(32.0, sig.config.catalog_timeout_s))
        if resp.status is None or resp.status >= 300:
            msg = f"device {device_id} answered the Catalog query with {resp.status} {resp.reason}"
            raise RuntimeError(msg)
        run.done.wait(timeout or sig.config.catalog_timeout_s)
        return list(run.items.values())

    def page(self, device_id: str, doc: manscdp.Document) -> None:
        try:
            page = manscdp.catalog_page(doc)
        except manscdp.ManscdpError as exc:
            log.warning("bad Catalog page from %s: %s", device_id, exc)
            return
        with self._lock:
            run = self._runs.get((device_id, page.sn))
            if run is None:  # unsolicited (or late) catalog: collect it too
                run = self._runs[(device_id, page.sn)] = CatalogRun(device_id, page.sn, time.monotonic())
            if run.done.is_set():
                run.duplicates += len(page.items)
                self.counters["catalog_duplicates"] += len(page.items)
                return
            run.sum_num = page.sum_num
            run.pages += 1
            for item in page.items:
                if item.channel_id in run.items:  # a retransmitted or repeated page: keep the first copy
                    run.duplicates += 1
                    self.counters["catalog_duplicates"] += 1
                    continue
                run.items[item.channel_id] = item
            complete = len(run.items) >= run.sum_num
        if complete:
            self._finish(run)

    def check(self) -> None:
        """Finish runs that timed out, forget old ones (housekeeping)."""
        now = time.monotonic()
        with self._lock:
            runs = list(self._runs.items())
        for key, run in runs:
            if not run.done.is_set() and now - run.started > self.signalling.config.catalog_timeout_s:
                log.warning("Catalog of %s incomplete after %.0f s: %d of %s items", run.device_id,
                            now - run.started, len(run.items), run.sum_num)
                self._finish(run)
            elif run.done.is_set() and now - run.started > 300:
                with self._lock:
                    self._runs.pop(key, None)

    def _finish(self, run: CatalogRun) -> None:
        if run.done.is_set():
            return
        self._on_catalogued(run.device_id)
        enable = self.signalling.config.auto_enable_channels
        channels = [camera_from(item, run.device_id, enable) for item in run.items.values() if item.is_camera]
        self.counters["catalog_items"] += len(run.items)
        log.info("Catalog of %s: %d items (%d channels) in %d pages, %d duplicates", run.device_id,
                 len(run.items), len(channels), run.pages, run.duplicates)
        future = self._writer.submit(self._store, channels, [])
        future.add_done_callback(lambda _f: run.done.set())

    # -- change notifications -------------------------------------------------------------------------------
    def changes(self, device_id: str, doc: manscdp.Document) -> list[manscdp.CatalogChange]:
        """Apply a catalog NOTIFY's items (registry writes happen in the background, in order)."""
        changes = manscdp.catalog_changes(doc)
        enable = self.signalling.config.auto_enable_channels
        upsert = [camera_from(c.item, device_id, enable) for c in changes
                  if c.event != "DEL" and c.item.is_camera]
        removed = [c.item.channel_id for c in changes if c.event == "DEL"]
        self.counters["catalog_notifications"] += 1
        log.info("catalog change from %s: %s", device_id, ", ".join(f"{c.item.channel_id} {c.event}" for c in changes))
        self._writer.submit(self._store, upsert, removed)
        return changes

    def _store(self, channels: list[CameraSpec], removed: list[str]) -> None:
        if self.registry is not None:
            for cam in channels:
                try:
                    self.registry.upsert(cam)
                except Exception as exc:
                    log.warning("could not store GB channel %s in the registry: %s", cam.id, exc)
            for channel_id in removed:
                self._disable(channel_id)
        if self.on_channels is not None:
            self.on_channels(channels)

    def _disable(self, channel_id: str) -> None:
        try:
            cam = self.registry.get(channel_id)
        except Exception as exc:  # not there (never catalogued), or unreadable
            log.info("catalog DEL of %s: nothing to disable (%s)", channel_id, exc)
            return
        if cam.enabled or "gb28181-deleted" not in cam.tags:
            tags = cam.tags if "gb28181-deleted" in cam.tags else [*cam.tags, "gb28181-deleted"][:50]
            self.registry.put(cam.model_copy(update={"enabled": False, "tags": tags}))
            log.info("catalog DEL: channel %s disabled", channel_id)


def camera_from(item: manscdp.CatalogItem, device_id: str, enable: bool) -> CameraSpec:
    return CameraSpec(
        id=item.channel_id, kind="gb28181", gb_device_id=device_id, name=item.name[:200],
        device_type="ipc" if item.type_code == "132" else "camera", latitude=item.latitude,
        longitude=item.longitude, admin_unit=item.civil_code[:100], enabled=enable and item.online,
        tags=["gb28181"],
    )

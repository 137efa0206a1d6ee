"""Glass-to-glass latency of the live view, measured in the browser (prints a table; not a test).

    .venv/bin/python benchmarks/live/glass_to_glass.py [--seconds 20] [--kafka] [--size 1280x720] [--fps 25]

The source is the project's GStreamer RTSP peer with ``--clock``: every picture carries the wall-clock time it
was made, burned in as 48 black/white blocks. Tubeline ingests it as an RTSP camera (TCP), and Debian's
Chromium (headless, Playwright) watches it in the web UI's single-camera view (fMP4 over WebSocket into MSE).
For every picture the browser presents (``requestVideoFrameCallback``), the page draws it on a canvas, reads the
blocks back and compares them with the browser's clock at the picture's expected display time. Same machine,
same clock: the difference is glass to glass (encode, RTSP, ingest demux, fan-out, remux, WebSocket, MSE,
decode, display).

Rows: ``in-process`` (the embedded deployment: ingest and API share the live hub) and, with ``--kafka``, the
distributed path through ``tubeline.live.v1`` on the local Kafka-protocol broker (Tansu, S3 engine). Also the
reference in the same run: the source picture's age when FFmpeg (PyAV) itself decodes the RTSP stream directly
(no Tubeline at all), so the table shows what Tubeline adds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pipeline.bus import open_bus  # noqa: E402
from pipeline.bus.memory import MemoryBus  # noqa: E402
from pipeline.config import TubelineConfig, with_overrides  # noqa: E402
from pipeline.config.ingest import CameraSpec  # noqa: E402
from pipeline.live.hub import LiveHub  # noqa: E402
from pipeline.store.local import LocalStore  # noqa: E402
from tests.peers.rtsp import GstRtspServer  # noqa: E402
from workers.api.serve import start_api  # noqa: E402
from workers.api.users import Role, Scope, UserStore  # noqa: E402
from workers.ingest.worker import IngestWorker  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "glass to glass bench"
SAMPLER = """
([seconds]) => new Promise((resolve) => {
  const video = document.querySelector('.tile video');
  const canvas = document.createElement('canvas');
  const out = [];
  const until = performance.now() + seconds * 1000;
  const onFrame = (now, meta) => {
    const w = video.videoWidth, h = video.videoHeight;
    if (w && h) {
      canvas.width = w; canvas.height = h;
      const g = canvas.getContext('2d', { willReadFrequently: true });
      g.drawImage(video, 0, 0, w, h);
      const px = g.getImageData(0, 0, 24 * 16, 32).data;
      let ms = 0;
      for (let b = 0; b < 48; b++) {
        const x = (b % 24) * 16 + 8, y = Math.floor(b / 24) * 16 + 8;
        ms = ms * 2 + (px[(y * 24 * 16 + x) * 4] > 128 ? 1 : 0);
      }
      out.push(performance.timeOrigin + meta.expectedDisplayTime - ms);
    }
    if (performance.now() < until) video.requestVideoFrameCallback(onFrame); else resolve(out);
  };
  video.requestVideoFrameCallback(onFrame);
})
"""


def reference(url: str, seconds: float) -> list[float]:
    """Picture age when FFmpeg decodes the RTSP stream itself (what any client pays before Tubeline)."""
    import av

    ages: list[float] = []
    with av.open(url, options={"rtsp_transport": "tcp"}) as c:
        until = time.monotonic() + seconds
        for frame in c.decode(video=0):
            img = frame.to_ndarray(format="gray")
            ms = 0
            for b in range(48):
                ms = ms * 2 + (1 if img[(b // 24) * 16 + 8, (b % 24) * 16 + 8] > 128 else 0)
            ages.append(time.time() * 1000 - ms)
            if time.monotonic() > until:
                break
    return ages[len(ages) // 4:]  # after the start-up burst


def watch(url_base: str, seconds: float) -> list[float]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url_base)
        page.wait_for_selector("#login-view:not([hidden])")
        page.fill("#login-user", "bench")
        page.fill("#login-pass", PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_selector("#app-view:not([hidden])")
        page.click("#tabs [data-tab=live]")
        try:
            page.wait_for_function("() => Number(document.querySelector(\".tile[data-camera='clock']\")?.dataset"
                                   ".frames || 0) > 25", timeout=60_000)
        except Exception:
            print(page.evaluate("() => [...document.querySelectorAll('.tile')].map(t => t.outerHTML.slice(0, 300))"))
            raise
        page.dblclick(".tile[data-camera='clock']")
        page.wait_for_function("() => document.querySelector('#live-grid.n1 .tile video')?.readyState >= 2",
                               timeout=30_000)
        time.sleep(3)  # past the first group of pictures
        samples = page.evaluate(SAMPLER, [seconds])
        browser.close()
    return samples


def run(kafka: bool, seconds: float, server: GstRtspServer, tmp: Path) -> list[float]:
    stack = None
    if kafka:
        from tests.conftest import start_private_stack

        stack = start_private_stack(tmp / "stack")
        config = with_overrides(stack.client_config(), {"bus.topic_prefix": "g2g", "api.port": 0})
    else:
        config = with_overrides(TubelineConfig(), {"api.port": 0})
    config = with_overrides(config, {"api.cache_dir": str(tmp / "cache"), "ingest.recordings.enabled": False})
    store = LocalStore(tmp / ("store-k" if kafka else "store"))
    if UserStore(store).get("bench") is None:
        UserStore(store).add("bench", Role.OPERATOR, PASSWORD, Scope(all_cameras=True))
    camera = CameraSpec(id="clock", name="Clock", kind="rtsp", url=server.url("clock"), transport="tcp")
    bus = open_bus(config) if kafka else MemoryBus()
    hub = None if kafka else LiveHub()
    ingest = IngestWorker(config, bus=bus, store=store, cameras=[camera], live=hub)
    thread = threading.Thread(target=ingest.run, daemon=True)
    thread.start()
    api = start_api(config, store=store, bus=bus, bootstrap=False, live=hub)
    try:
        return watch(api.url, seconds)
    finally:
        api.stop()
        ingest.stop_event.set()
        thread.join(20)
        bus.close()
        if stack is not None:
            stack.down()


def row(name: str, values: list[float]) -> str:
    if not values:
        return f"| {name} | no samples | | | |"
    v = sorted(values)
    return (f"| {name} | {len(v)} | {statistics.median(v):.0f} | {v[int(len(v) * 0.95) - 1]:.0f} | "
            f"{v[-1]:.0f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--kafka", action="store_true", help="also measure the path through the live topic")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", type=int, default=25)
    args = parser.parse_args()
    with GstRtspServer(size=args.size, fps=args.fps, clock=True) as server, \
            tempfile.TemporaryDirectory(prefix="tubeline-g2g-") as tmp:
        ref = reference(server.url("clock"), args.seconds / 2)
        rows = [row("FFmpeg decoding the RTSP stream directly (reference)", ref)]
        rows.append(row("Tubeline in-process (tubeline up): RTSP → ingest → hub → fMP4/WebSocket → MSE",
                        run(False, args.seconds, server, Path(tmp))))
        if args.kafka:
            rows.append(row("Tubeline distributed: … → tubeline.live.v1 (Tansu) → API → fMP4/WebSocket → MSE",
                            run(True, args.seconds, server, Path(tmp))))
    print(f"\nGlass to glass, {args.size} H.264 at {args.fps} fps, {args.seconds:.0f} s per row (ms)\n")
    print("| path | pictures | median | p95 | max |")
    print("|---|---|---|---|---|")
    for line in rows:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A real RTSP server for tests: Debian's gst-rtsp-server driven through python3-gi.

Run with the system interpreter (the venv has no ``gi``)::

    /usr/bin/python3 tests/peers/gst_rtsp_server.py --port 8554 [--user U --password P --auth digest]

Mounts ``/h264`` (x264enc) and ``/h265`` (x265enc), live ``videotestsrc`` at ``--size``/``--fps``
with a keyframe every second, over TCP (interleaved) and UDP; with ``--clock`` also ``/clock``: H.264 whose
pictures carry the wall-clock time they were made, as 48 black/white blocks (one bit each, most significant
first, milliseconds since the epoch) along the top (``clock_bits`` reads them back) — for glass-to-glass
latency measurements. Everything binds 127.0.0.1: the RTSP
listener and, through a unicast address pool, the server's RTP/RTCP UDP sockets. Prints ``READY
<port>`` on stdout once it accepts connections and runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

ENCODERS = {
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bitrate={kbps} "
    "! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=1",
    "h265": "video/x-raw,format=I420 ! x265enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} "
    "bitrate={kbps} ! rtph265pay name=pay0 pt=96 config-interval=1",
}


def launch_line(codec: str, size: str, fps: int, kbps: int) -> str:
    width, height = size.split("x")
    src = (f"videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},"
           f"framerate={fps}/1 ! videoconvert")
    return f"( {src} ! {ENCODERS[codec].format(fps=fps, kbps=kbps)} )"


CLOCK_BITS, CLOCK_BLOCK = 48, 16


def clock_picture(width: int, height: int, now_ms: int) -> bytes:
    """An I420 picture: mid-grey, with ``now_ms`` as 48 black/white blocks in rows of 24 at the top left."""
    y = bytearray(b"\x80" * (width * height))
    per_row = 24
    for bit in range(CLOCK_BITS):
        value = 235 if (now_ms >> (CLOCK_BITS - 1 - bit)) & 1 else 16
        bx, by = (bit % per_row) * CLOCK_BLOCK, (bit // per_row) * CLOCK_BLOCK
        for row in range(by, by + CLOCK_BLOCK):
            y[row * width + bx: row * width + bx + CLOCK_BLOCK] = bytes([value]) * CLOCK_BLOCK
    moving = (now_ms // 40) % max(1, width - 40)  # something that moves, so the encoder sends changes
    for row in range(height - 40, height):
        y[row * width + moving: row * width + moving + 40] = b"\xeb" * 40
    return bytes(y) + b"\x80" * (width * height // 2)


def add_clock_mount(mounts, pool, size: str, fps: int, kbps: int) -> None:  # noqa: ANN001 - GstRtspServer objects
    import time

    width, height = (int(v) for v in size.split("x"))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f"( appsrc name=clock is-live=true format=time do-timestamp=true "
                       f"caps=video/x-raw,format=I420,width={width},height={height},framerate={fps}/1 "
                       f"! {ENCODERS['h264'].format(fps=fps, kbps=kbps)} )")
    factory.set_shared(True)
    factory.set_address_pool(pool)
    factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP)

    def configure(_factory, media) -> None:  # noqa: ANN001
        src = media.get_element().get_child_by_name("clock")

        def push() -> bool:
            data = clock_picture(width, height, int(time.time() * 1000))
            return src.emit("push-buffer", Gst.Buffer.new_wrapped(data)) == Gst.FlowReturn.OK

        GLib.timeout_add(max(1, 1000 // fps), push)

    factory.connect("media-configure", configure)
    mounts.add_factory("/clock", factory)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--kbps", type=int, default=600)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--auth", choices=["basic", "digest"], default="digest")
    parser.add_argument("--udp-ports", default="42000-42999", help="RTP/RTCP port range for UDP clients")
    parser.add_argument("--clock", action="store_true", help="also mount /clock (the wall clock burned in)")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    pool = GstRtspServer.RTSPAddressPool()
    low, high = (int(p) for p in args.udp_ports.split("-"))
    pool.add_range("127.0.0.1", "127.0.0.1", low, high, 0)
    mounts = server.get_mount_points()
    for codec in ENCODERS:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch_line(codec, args.size, args.fps, args.kbps))
        factory.set_shared(True)
        factory.set_address_pool(pool)
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP)
        if args.user:
            factory.add_role_from_structure(Gst.Structure.from_string(
                "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true")[0])
        mounts.add_factory(f"/{codec}", factory)
    if args.clock:
        add_clock_mount(mounts, pool, args.size, args.fps, args.kbps)
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        if args.auth == "digest":
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
            auth.add_digest(args.user, args.password or "", token)
        else:
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password or ""), token)
        server.set_auth(auth)
    if server.attach(None) == 0:
        print(f"FAILED to listen on 127.0.0.1:{args.port}", flush=True)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY {args.port}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

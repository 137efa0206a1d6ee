"""Fuzz tests of the GB/T 28181 media parsers: RTP packets, RFC 4571 framing, reordering, frame assembly, PS.

Properties: ``parse_rtp`` returns or raises :class:`RtpError`; the framer and the PS demuxer never raise,
always terminate and keep their buffers under their limits on any input; the reorderer releases each
sequence number at most once and in order; a valid PS stream cut at any points demuxes to the same access
units as in one piece; damaged PS never raises out of the receiver's path.
"""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.strategies import chunked, mutated
from workers.ingest.gb28181.ps import MAX_BUFFER, AuAssembler, PsDemuxer, is_keyframe, sniff_codec
from workers.ingest.gb28181.psmux import ps_pack, rtp_packets
from workers.ingest.gb28181.rtp import (
    MAX_RTP,
    FrameAssembler,
    Reorderer,
    Rfc4571Framer,
    RtpError,
    build_rtp,
    parse_rtp,
)

H264_AU = b"\x00\x00\x00\x01\x67\x42\x00\x1e" + b"\x00\x00\x00\x01\x68\xce" + b"\x00\x00\x01\x65" + bytes(range(256)) * 4
H265_AU = (b"\x00\x00\x00\x01\x40\x01\x0c" + b"\x00\x00\x00\x01\x42\x01\x01" + b"\x00\x00\x00\x01\x44\x01"
           + b"\x00\x00\x01\x26\x01" + bytes(range(200)) * 3)
PS_CORPUS = [
    ps_pack(H264_AU, 3600, "h264", True) + ps_pack(H264_AU[14:], 7200, "h264", False),
    ps_pack(H265_AU, 3600, "hevc", True, length0=True) + ps_pack(H265_AU, 7200, "hevc", False, length0=True),
    ps_pack(H264_AU, 3600, "h264", True, with_psm=False),
    # MPEG-1 pack + MPEG-1 PES with a PTS (what ffmpeg's -f mpeg writes)
    b"\x00\x00\x01\xba" + bytes([0x21, 0, 1, 0, 1, 0x80, 0, 1])
    + b"\x00\x00\x01\xe2" + struct.pack("!H", 5 + len(H264_AU)) + bytes([0x21, 0, 1, 0, 1]) + H264_AU,
]
RTP_CORPUS = [p for data in PS_CORPUS[:2] for p in rtp_packets(data, seq=65530, timestamp=3600, ssrc=200001234)[:3]]
RTP_CORPUS.append(bytes([0xB1, 0x60, 0, 5, 0, 0, 0, 9, 0, 0, 0, 77, 0, 0, 0, 1, 0xBE, 0xDE, 0, 1, 0, 0, 0, 0])
                  + b"PAY\x00\x00\x03")


def demux(chunks: list[bytes]) -> tuple[list, PsDemuxer]:
    d, a, aus = PsDemuxer(), AuAssembler(), []
    for chunk in chunks:
        for pes in d.feed(chunk):
            aus += a.push(pes, d.stream_types)
        assert len(d._buf) <= MAX_BUFFER  # noqa: SLF001 - the bound is the property
    for pes in d.flush():
        aus += a.push(pes, d.stream_types)
    return aus + a.flush(d.stream_types), d


# -- RTP ------------------------------------------------------------------------------------------------------
@given(st.one_of(mutated(RTP_CORPUS), st.binary(max_size=200)))
def test_parse_rtp_raises_only_rtp_error(data: bytes) -> None:
    try:
        packet = parse_rtp(data)
    except RtpError:
        return
    assert len(packet.payload) <= len(data) - 12
    assert 0 <= packet.seq <= 0xFFFF and 0 <= packet.payload_type <= 127


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF), st.binary(max_size=1400),
       st.booleans(), st.integers(0, 127))
def test_rtp_round_trip(seq: int, ts: int, ssrc: int, payload: bytes, marker: bool, pt: int) -> None:
    packet = parse_rtp(build_rtp(seq=seq, timestamp=ts, ssrc=ssrc, payload=payload, marker=marker, payload_type=pt))
    assert (packet.seq, packet.timestamp, packet.ssrc, packet.payload, packet.marker, packet.payload_type) == (
        seq, ts, ssrc, payload, marker, pt)


@given(st.one_of(mutated([b"".join(struct.pack("!H", len(p)) + p for p in RTP_CORPUS)]), st.binary(max_size=3000)),
       st.lists(st.integers(0, 10_000), max_size=10))
def test_rfc4571_framer_never_raises_and_stays_bounded(data: bytes, cuts: list[int]) -> None:
    framer = Rfc4571Framer()
    for chunk in chunked(data, cuts):
        for packet in framer.feed(chunk):
            assert 12 <= len(packet) <= 0xFFFF
        assert len(framer._buf) <= MAX_RTP + 1  # noqa: SLF001


@given(st.lists(st.binary(min_size=12, max_size=300), min_size=1, max_size=20),
       st.lists(st.integers(0, 10_000), max_size=10))
def test_rfc4571_framer_reassembles_valid_streams(payloads: list[bytes], cuts: list[int]) -> None:
    packets = [build_rtp(seq=i, timestamp=0, ssrc=1, payload=p, marker=False) for i, p in enumerate(payloads)]
    stream = b"".join(struct.pack("!H", len(p)) + p for p in packets)
    framer = Rfc4571Framer()
    out: list[bytes] = []
    for chunk in chunked(stream, cuts):
        out += framer.feed(chunk)
    assert out == packets and framer.garbage_bytes == 0


@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(0, 3), st.booleans()), max_size=200),
       st.integers(1, 64))
def test_reorderer_releases_each_packet_once_in_order(events: list[tuple[int, int, bool]], window: int) -> None:
    r = Reorderer(window=window, max_delay_s=0.3)
    fa = FrameAssembler()
    now = 0.0
    released: list[int] = []
    for seq, dt, marker in events:
        now += dt * 0.1
        packet = parse_rtp(build_rtp(seq=seq, timestamp=seq // 4, ssrc=1, payload=b"x", marker=marker))
        for p, gap in r.push(packet, now):
            released.append(p.seq)
            fa.push(p, gap)
        assert len(r._held) <= window  # noqa: SLF001
    for p, gap in r.flush(now + 10):
        released.append(p.seq)
        fa.push(p, gap)
    assert not r._held  # noqa: SLF001
    if not r.stats.resyncs:  # always forward (modulo 2^16), except where the sender's numbering restarted
        steps = [(b - a) & 0xFFFF for a, b in zip(released, released[1:], strict=False)]
        assert all(0 < s <= 0x8000 for s in steps), released
    assert r.stats.received == len(events) and len(released) + r.stats.late + r.stats.duplicates == len(events)


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(1, 300), st.integers(1, 64))
def test_reorderer_follows_a_restarted_sequence(first: int, restart: int, after: int, window: int) -> None:
    """A sender whose numbering jumps anywhere (restart) loses at most RESYNC_AFTER packets, never ~32k."""
    r = Reorderer(window=window, max_delay_s=0.3)
    before = [(first + i) & 0xFFFF for i in range(50)]
    again = [(restart + i) & 0xFFFF for i in range(after + Reorderer.RESYNC_AFTER)]
    released = []
    for n, seq in enumerate(before + again):
        released += [p.seq for p, _ in r.push(parse_rtp(build_rtp(seq=seq, timestamp=0, ssrc=1, payload=b"",
                                                                   marker=False)), n * 0.01)]
    released += [p.seq for p, _ in r.flush(1e9)]
    assert released[:50] == before
    assert len(set(again) - set(released)) <= Reorderer.RESYNC_AFTER and released[-1] == again[-1]


# -- PS -------------------------------------------------------------------------------------------------------
@given(st.one_of(mutated(PS_CORPUS, max_ops=12), st.binary(max_size=4000)),
       st.lists(st.integers(0, 100_000), max_size=10))
def test_ps_demuxer_never_raises_on_any_input(data: bytes, cuts: list[int]) -> None:
    aus, d = demux(chunked(data, cuts))
    for au in aus:
        codec = sniff_codec(au.data) or "h264"
        is_keyframe(au.data, codec)
        assert au.pts is None or 0 <= au.pts < 1 << 33
    assert d.stats.errors >= 0


@given(st.sampled_from(PS_CORPUS), st.lists(st.integers(0, 100_000), max_size=12))
def test_ps_any_chunking_gives_the_same_access_units(data: bytes, cuts: list[int]) -> None:
    whole, _ = demux([data])
    pieces, _ = demux(chunked(data, cuts))
    assert [(a.pts, a.data) for a in pieces] == [(a.pts, a.data) for a in whole]
    assert whole and whole[0].data in (H264_AU, H265_AU)

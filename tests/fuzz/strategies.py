"""Strategies shared by the fuzz tests: mutations of valid inputs (a small mutation fuzzer in Hypothesis).

Purely random bytes rarely get past the first check of a parser; mutating a corpus of valid messages
(flip, insert, delete, duplicate and truncate bytes, splice two inputs) reaches the deep branches while
Hypothesis still shrinks a failure to a minimal input.
"""

from __future__ import annotations

from hypothesis import strategies as st

_OPS = st.sampled_from(["flip", "set", "insert", "delete", "dup", "truncate", "digit"])
_INTERESTING = [0x00, 0x01, 0x0A, 0x0D, 0x20, 0x22, 0x24, 0x3A, 0x3B, 0x3C, 0x3E, 0x40, 0x7F, 0x80, 0xBA, 0xBB,
                0xBC, 0xE0, 0xFF, 0xB2, 0xD9]  # controls, SIP/XML punctuation, PS start codes, '²' and '٣' bytes


def mutate(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for op, pos, value in ops:
        i = pos % (len(buf) + 1)
        if op == "flip" and buf:
            buf[i % len(buf)] ^= 1 << (value % 8)
        elif op == "set" and buf:
            buf[i % len(buf)] = _INTERESTING[value % len(_INTERESTING)]
        elif op == "insert":
            buf[i:i] = bytes([value % 256]) * (1 + value % 3)
        elif op == "delete":
            del buf[i:i + 1 + value % 8]
        elif op == "dup":
            buf[i:i] = buf[i:i + 1 + value % 64]
        elif op == "truncate":
            del buf[i:]
        elif op == "digit":  # non-ASCII digits that str.isdigit() accepts and int() may refuse
            buf[i:i] = ["²".encode(), "٣".encode(), "１".encode()][value % 3]
    return bytes(buf)


def mutated(corpus: list[bytes], *, max_ops: int = 8) -> st.SearchStrategy[bytes]:
    """One corpus entry (or a splice of two), mutated by up to ``max_ops`` random edits."""
    ops = st.lists(st.tuples(_OPS, st.integers(0, 1 << 16), st.integers(0, 255)), max_size=max_ops)
    base = st.one_of(
        st.sampled_from(corpus),
        st.tuples(st.sampled_from(corpus), st.sampled_from(corpus), st.integers(0, 4096)).map(
            lambda t: t[0][: t[2] % (len(t[0]) + 1)] + t[1][t[2] % (len(t[1]) + 1):]),
    )
    return st.tuples(base, ops).map(lambda t: mutate(*t))


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` split at the given positions (modulo its length), in order."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]

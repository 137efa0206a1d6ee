"""Plate grammars: which strings are valid plates, per region, written as compact templates.

A template is a sequence of position classes. Upper-case class codes stand for character sets; anything
in square brackets is a literal set (``[警学挂]``). Codes:

====  ==============================================================
P     Chinese province abbreviations (31)
L     Chinese plate letters: A–Z without I and O
X     Chinese plate alphanumerics: digits + L
E     Chinese new-energy class letters: A B C D E F G H J K
D     digit 0–9
A     Latin letter A–Z
N     Latin alphanumeric A–Z 0–9
====  ==============================================================

Regions bundle templates: ``cn`` covers the 7-character blue/yellow plates, 8-character new-energy plates,
the 警/学/挂/港/澳/领 suffix plates and embassy (使) plates; ``ar`` Argentina (cars ABC123, AB123CD; motorcycles 123ABC, A123BCD); ``br`` Brazil
(ABC1234, ABC1D23); ``eu`` and ``generic`` accept 4–8 alphanumerics. Users add regions in configuration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from schemas.plates import normalise_plate

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
DIGITS = "0123456789"
LATIN = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
CN_LETTERS = LATIN.replace("I", "").replace("O", "")
CLASS_CODES: dict[str, str] = {
    "P": PROVINCES,
    "L": CN_LETTERS,
    "X": DIGITS + CN_LETTERS,
    "E": "ABCDEFGHJK",
    "D": DIGITS,
    "A": LATIN,
    "N": LATIN + DIGITS,
}

REGIONS: dict[str, tuple[str, ...]] = {
    "cn": (
        "PLXXXXX",  # ordinary blue / yellow / black plates, also two-row yellow plates
        "PLEXDDDD",  # small new-energy (green) plates
        "PLDDDDDE",  # large new-energy plates
        "PLXXXX[警学挂港澳领]",  # police, coach, trailer, Hong Kong / Macau, consulate
        "DDDDDD[使]",  # embassy
        "[使]DDDDDD",  # old embassy format
    ),
    "ar": ("AAADDD", "AADDDAA", "DDDAAA", "ADDDAAA"),  # cars 1995 / Mercosur 2016; motorcycles old / Mercosur
    "br": ("AAADDDD", "AAADADD"),
    "eu": ("NNNN", "NNNNN", "NNNNNN", "NNNNNNN", "NNNNNNNN"),
    "generic": ("NNNN", "NNNNN", "NNNNNN", "NNNNNNN", "NNNNNNNN"),
}


class GrammarError(ValueError):
    """A plate template or region name is invalid."""


@dataclass(frozen=True)
class Pattern:
    """One template expanded to the allowed character set of each position."""

    region: str
    template: str
    positions: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.positions)

    def matches(self, text: str) -> bool:
        return len(text) == len(self.positions) and all(
            ch in allowed for ch, allowed in zip(text, self.positions, strict=True)
        )


def parse_template(template: str, region: str = "") -> Pattern:
    """Expand ``template`` (see the module docstring) into per-position character sets."""
    positions: list[str] = []
    i = 0
    while i < len(template):
        ch = template[i]
        if ch == "[":
            end = template.find("]", i + 1)
            if end <= i + 1:
                msg = f"template {template!r}: unclosed or empty [...] at {i}"
                raise GrammarError(msg)
            positions.append("".join(dict.fromkeys(template[i + 1 : end])))
            i = end + 1
            continue
        if ch not in CLASS_CODES:
            msg = f"template {template!r}: unknown class code {ch!r} (put literals in [...])"
            raise GrammarError(msg)
        positions.append(CLASS_CODES[ch])
        i += 1
    if not positions:
        msg = "empty plate template"
        raise GrammarError(msg)
    return Pattern(region=region, template=template, positions=tuple(positions))


class PlateGrammar:
    """The templates of the selected regions (built-in or given in configuration)."""

    def __init__(
        self, regions: Sequence[str] = ("cn",), custom: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        table = {**REGIONS, **{k: tuple(v) for k, v in (custom or {}).items()}}
        unknown = [r for r in regions if r not in table]
        if unknown:
            msg = f"unknown plate region(s) {unknown}; known: {sorted(table)}"
            raise GrammarError(msg)
        self.regions = tuple(regions)
        seen: set[tuple[str, ...]] = set()
        patterns: list[Pattern] = []
        for region in self.regions:
            for template in table[region]:
                pattern = parse_template(template, region)
                if pattern.positions not in seen:
                    seen.add(pattern.positions)
                    patterns.append(pattern)
        self.patterns = tuple(patterns)
        self.alphabet = "".join(sorted({ch for p in self.patterns for pos in p.positions for ch in pos}))

    def match(self, text: str) -> Pattern | None:
        """The first pattern ``text`` satisfies, or None."""
        for pattern in self.patterns:
            if pattern.matches(text):
                return pattern
        return None


def clean_read(text: str) -> str:
    """An OCR read as plate text: :func:`schemas.plates.normalise_plate`, then the ASCII punctuation no plate
    has dropped too (OCR noise: a bolt read as ``'``); anything else stays for the grammar to judge."""
    return "".join(ch for ch in normalise_plate(text) if not ch.isascii() or ch.isalnum())


SEPARATORS = " ·•.-:：_—–・‧,，、。"

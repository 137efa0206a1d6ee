"""Video quality diagnosis of one camera: measurements in, fault episodes with start and end out.

:class:`CameraDiagnoser` is fed sampled frames in time order (:meth:`CameraDiagnoser.observe`). For each
sample it computes a severity per fault in [0, 1] (0.5 = exactly at the configured thresholds; see
:mod:`pipeline.config.quality`), lets the more basic faults hide the ones they cause (no signal hides
everything; a dark, bright or foggy picture hides blur, noise, cast, stripes, occlusion, scene change and
freeze (a near-black picture does not change either); stripes
hide the blur they fake), and runs a hysteresis per fault: a fault *starts* when its severity stayed at
or above ``on`` for ``on_s`` seconds (its start is the first of those samples) and *ends* when it stayed
below ``on × off_ratio`` for ``off_s`` seconds (its end is the first of those samples). A scene change is
an instant: the moment the view stopped matching the reference, confirmed ``on_s`` later; then everything
learned about the camera is forgotten and learned again.

Baseline: per hour of the day the diagnoser keeps an exponential average of the measurements of clean
samples (no fault active or rising; once learned, every severity below its release level), a reference picture and how often each block is flat. Once an
hour's baseline has ``baseline_samples`` samples (or a neighbouring hour's has), a fault needs both its
absolute and its relative threshold: a street that is dark every night is not "too dark" at night. Until
then only the stricter hard thresholds count, and samples are learned unless they cross those.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from pipeline.config.quality import FAULTS, Fault, QualityConfig, Thresholds
from pipeline.quality.measure import GRID, Measures, block_ncc, measure

FLAT_STD = 3.0
"""A block whose grey levels vary less than this is flat (no texture at all)."""
TEXTURED_STD = 6.0
DIM_MEAN = 0.3
"""Below this mean luma the low-contrast threshold scales down with the brightness."""
GLOBAL_FAULTS: tuple[Fault, ...] = ("dark", "bright", "low_contrast")
HIDDEN_BY_GLOBAL: tuple[Fault, ...] = ("blur", "noise", "colour_cast", "stripes", "occlusion", "scene_change", "freeze")
SHIFTS = (-3, 0, 3)
"""Pixel shifts (of the 160-wide picture) the scene-change match tries: wind shake and vibration are not a move."""


def _ratio_high(x: float, threshold: float) -> float:
    """Severity of a higher-is-worse measurement: 0.5 at the threshold, 1 at twice it."""
    return float(np.clip(0.5 * x / max(threshold, 1e-9), 0.0, 1.0))


def _ratio_low(x: float, threshold: float) -> float:
    """Severity of a lower-is-worse measurement: 0.5 at the threshold, 1 at half of it."""
    return float(np.clip(0.5 * threshold / max(x, 1e-9), 0.0, 1.0))


@dataclass
class Baseline:
    """What a camera normally looks like at one hour of the day."""

    samples: int = 0
    mean: float = 0.0
    contrast: float = 0.0
    blur: float = 0.0
    noise: float = 0.0
    cast: float = 0.0
    chroma: float = 0.0
    stripes: float = 0.0
    reference: np.ndarray | None = None
    flat: np.ndarray | None = None  # how often each block is flat, 0..1

    def learn(self, m: Measures, alpha: float) -> None:
        self.samples += 1
        w = max(alpha, 1.0 / self.samples)  # a plain average until 1/alpha samples, then exponential
        for name in ("mean", "contrast", "blur", "noise", "cast", "chroma", "stripes"):
            setattr(self, name, (1 - w) * getattr(self, name) + w * getattr(m, name))
        flat = (m.block_std < FLAT_STD).astype(np.float32)
        self.reference = m.small.copy() if self.reference is None else (1 - w) * self.reference + w * m.small
        self.flat = flat if self.flat is None else (1 - w) * self.flat + w * flat


@dataclass(frozen=True)
class Sample:
    """One diagnosed frame: its time, measurements and per-fault severities (after masking)."""

    t: float
    measures: Measures
    severity: dict[Fault, float]


@dataclass(frozen=True)
class Transition:
    """A fault episode started, ended, or (scene change) happened."""

    kind: str  # "start", "end" or "instant"
    fault: Fault
    start_s: float
    end_s: float | None
    score: float


@dataclass
class _Track:
    """Hysteresis state of one fault."""

    active: bool = False
    run_start: float | None = None
    quiet_start: float | None = None
    started: float = 0.0
    peak: float = 0.0


@dataclass
class CameraDiagnoser:
    """Diagnosis state of one camera; see the module docstring."""

    settings: QualityConfig = field(default_factory=QualityConfig)
    baselines: dict[int, Baseline] = field(default_factory=dict)
    previous: Measures | None = None
    tracks: dict[Fault, _Track] = field(default_factory=lambda: {f: _Track() for f in FAULTS})
    last_t: float | None = None

    @property
    def thresholds(self) -> Thresholds:
        return self.settings.thresholds

    # -- baseline ----------------------------------------------------------------------------------
    def baseline(self, hour: int) -> Baseline | None:
        """The learned baseline for ``hour`` (or a neighbouring hour's), None while still learning."""
        need = self.settings.baseline_samples
        for h in (hour, (hour - 1) % 24, (hour + 1) % 24):
            b = self.baselines.get(h)
            if b is not None and b.samples >= need:
                return b
        return None

    def forget(self) -> None:
        """The camera moved: what it normally looks like has to be learned again."""
        self.baselines.clear()

    # -- severities --------------------------------------------------------------------------------
    def severities(self, m: Measures, base: Baseline | None) -> dict[Fault, float]:
        th = self.thresholds
        hard = 1.0 if base is not None else th.hard
        sev: dict[Fault, float] = {}
        sev["no_signal"] = _ratio_high(m.uniform, th.uniform) if m.uniform >= 0.5 else 0.0
        sev["dark"] = _ratio_low(m.mean, th.dark_mean / hard)
        sev["bright"] = _ratio_high(m.mean, min(0.999, th.bright_mean * hard ** 0.25))
        # A dim picture has a small spread of grey levels without being washed out: the contrast it needs
        # shrinks with its brightness (a street at night is dark, not foggy).
        sev["low_contrast"] = _ratio_low(m.contrast, th.contrast * min(1.0, m.mean / DIM_MEAN) / hard)
        sev["blur"] = _ratio_high(m.blur, min(0.999, th.blur * hard ** 0.5))
        sev["noise"] = _ratio_high(m.noise, th.noise * hard)
        sev["colour_cast"] = max(_ratio_high(m.cast, th.cast * hard), _ratio_high(m.chroma, th.chroma * hard))
        sev["stripes"] = _ratio_high(m.stripes, th.stripes * hard ** 0.5)
        sev["freeze"] = self._freeze(m)
        sev["occlusion"] = 0.0
        sev["scene_change"] = 0.0
        if base is not None:
            self._relative(sev, m, base)
        return sev

    def _freeze(self, m: Measures) -> float:
        if self.previous is None:
            return 0.0
        diff = np.abs(m.small - self.previous.small)
        th = self.thresholds
        return min(_ratio_low(float(diff.mean()), th.freeze_diff), _ratio_low(float((diff > 3).mean()), th.freeze_changed))

    def _relative(self, sev: dict[Fault, float], m: Measures, b: Baseline) -> None:
        th = self.thresholds
        sev["dark"] = min(sev["dark"], _ratio_low(m.mean, th.dark_rel * b.mean))
        sev["bright"] = min(sev["bright"], _ratio_high(m.mean, min(0.999, th.bright_rel * b.mean)))
        sev["low_contrast"] = min(sev["low_contrast"], _ratio_low(m.contrast, th.contrast_rel * b.contrast))
        sev["blur"] = min(sev["blur"], _ratio_high(m.blur, b.blur + th.blur_rel))
        sev["noise"] = min(sev["noise"], _ratio_high(m.noise, th.noise_rel * max(b.noise, 0.5)))
        sev["colour_cast"] = min(sev["colour_cast"], max(_ratio_high(m.cast, b.cast + th.cast_rel),
                                                         _ratio_high(m.chroma, b.chroma + th.chroma_rel)))
        sev["stripes"] = min(sev["stripes"], _ratio_high(m.stripes, b.stripes + th.stripes_rel))
        assert b.flat is not None and b.reference is not None
        flat_now = m.block_std < FLAT_STD
        usually_textured = b.flat < 0.2
        if usually_textured.any():
            newly_flat = float((flat_now & usually_textured).sum()) / float(usually_textured.size)
            sev["occlusion"] = _ratio_high(newly_flat, th.occlusion)
        ref_blocks = _block_std(b.reference) >= TEXTURED_STD
        live = ref_blocks & ~flat_now
        if live.sum() >= max(4, ref_blocks.sum() // 3):
            mismatch = float(((block_ncc(m.small, b.reference) < 0.5) & live).sum()) / float(live.sum())
            if mismatch >= 0.5 * th.scene_change:  # only then is it worth trying the shifted matches
                mismatch = float(((_best_ncc(m.small, b.reference) < 0.5) & live).sum()) / float(live.sum())
            sev["scene_change"] = _ratio_high(mismatch, th.scene_change)

    def mask(self, sev: dict[Fault, float]) -> dict[Fault, float]:
        """Hide the faults that a more basic fault causes (see the module docstring)."""
        on = self.thresholds.on
        out = dict(sev)
        if sev["no_signal"] >= on["no_signal"]:
            return {f: (v if f == "no_signal" else 0.0) for f, v in out.items()}
        if any(sev[f] >= on[f] for f in GLOBAL_FAULTS):
            for f in HIDDEN_BY_GLOBAL:
                out[f] = 0.0
            if sev["dark"] >= on["dark"] or sev["bright"] >= on["bright"]:
                out["low_contrast"] = 0.0
        if sev["stripes"] >= on["stripes"]:
            out["blur"] = 0.0
        if out["occlusion"] >= on["occlusion"]:
            out["scene_change"] = 0.0
        return out

    # -- the loop ----------------------------------------------------------------------------------
    def observe(self, t: float, hour: int, frame: np.ndarray) -> tuple[Sample, list[Transition]]:
        """Diagnose one frame taken at ``t`` seconds (any monotonic clock) in ``hour`` (0-23) of the day."""
        return self.observe_measures(t, hour, measure(frame))

    def observe_measures(self, t: float, hour: int, m: Measures) -> tuple[Sample, list[Transition]]:
        base = self.baseline(hour)
        sev = self.mask(self.severities(m, base))
        self.previous = m
        self.last_t = t
        transitions = self._hysteresis(t, sev)
        if any(tr.fault == "scene_change" for tr in transitions):
            self.forget()
        elif self._clean(sev, base):
            self.baselines.setdefault(hour, Baseline()).learn(m, self.settings.baseline_alpha)
        return Sample(t, m, sev), transitions

    def _clean(self, sev: dict[Fault, float], base: Baseline | None) -> bool:
        """Learn from samples free of faults (none active or rising); once the hour has a baseline, only from
        samples clearly so (every severity below its release level), so a creeping fault is not learned."""
        on = self.thresholds.on
        if any(tr.active or tr.run_start is not None for tr in self.tracks.values()):
            return False
        margin = self.settings.off_ratio if base is not None else 1.0
        return all(v < on[f] * margin for f, v in sev.items())

    def _hysteresis(self, t: float, sev: dict[Fault, float]) -> list[Transition]:
        out: list[Transition] = []
        s = self.settings
        for fault, value in sev.items():
            track = self.tracks[fault]
            on = s.thresholds.on[fault]
            rise = s.freeze_on_s if fault == "freeze" else s.on_s
            if not track.active:
                if value < on:
                    track.run_start, track.peak = None, 0.0
                    continue
                if track.run_start is None:
                    track.run_start = t
                track.peak = max(track.peak, value)
                if t - track.run_start >= rise:
                    if fault == "scene_change":
                        out.append(Transition("instant", fault, track.run_start, track.run_start, track.peak))
                        self.tracks[fault] = _Track()
                        continue
                    track.active, track.started, track.quiet_start = True, track.run_start, None
                    out.append(Transition("start", fault, track.started, None, track.peak))
                continue
            if value >= on * s.off_ratio:
                track.quiet_start = None
                track.peak = max(track.peak, value)
                continue
            if track.quiet_start is None:
                track.quiet_start = t
            if t - track.quiet_start >= s.off_s:
                out.append(Transition("end", fault, track.started, track.quiet_start, track.peak))
                self.tracks[fault] = _Track()
        return out

    def open_faults(self) -> list[tuple[Fault, float, float]]:
        """(fault, start, peak score) of every fault now active."""
        return [(f, tr.started, tr.peak) for f, tr in self.tracks.items() if tr.active]

    def finish(self, t_end: float) -> list[Transition]:
        """End every active fault at ``t_end`` (the end of a file)."""
        out = [Transition("end", f, tr.started, t_end, tr.peak) for f, tr in self.tracks.items() if tr.active]
        self.tracks = {f: _Track() for f in FAULTS}
        return out


def _best_ncc(small: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per block, the best ZNCC with the reference over small shifts of the picture."""
    best = None
    for dy in SHIFTS:
        for dx in SHIFTS:
            shifted = np.roll(small, (dy, dx), axis=(0, 1))
            ncc = block_ncc(shifted, reference)
            best = ncc if best is None else np.maximum(best, ncc)
    assert best is not None
    return best


def _block_std(small: np.ndarray) -> np.ndarray:
    cols, rows = GRID
    h, w = small.shape
    bh, bw = h // rows, w // cols
    return small[: bh * rows, : bw * cols].reshape(rows, bh, cols, bw).std(axis=(1, 3))


@dataclass(frozen=True)
class FaultSegment:
    """One fault episode of a file: the ``tubeline quality check`` output line."""

    start_s: float
    end_s: float
    fault: Fault
    score: float

    def as_json(self) -> dict[str, object]:
        return {"start_s": round(self.start_s, 2), "end_s": round(self.end_s, 2), "fault": self.fault,
                "score": round(self.score, 3)}


def segments(transitions: Iterable[Transition]) -> list[FaultSegment]:
    """Closed episodes (and scene-change instants) from a stream of transitions, in start order."""
    out = [FaultSegment(tr.start_s, tr.end_s if tr.end_s is not None else tr.start_s, tr.fault, tr.score)
           for tr in transitions if tr.kind in ("end", "instant")]
    return sorted(out, key=lambda s: (s.start_s, s.fault))

"""Arrangement: one synopsis start per group, minimising activity loss + collision + chronology violations.

The energy (``docs/design/synopsis.md``)::

    E = w_a · Σ_{left-out groups} activity  +  w_c · Σ_{group pairs} overlap  +  w_t · #reversed tube pairs
      + w_v · Σ_{sped-up groups} (activity at the fitting speed − activity at the chosen speed)

Overlap is evaluated on a coarse space-time grid: time at ``opt_fps`` (starts are multiples of one
grid step), space in ``grid_cols`` × rows cells. Every group is rasterised once into unique
(slot, cell, coverage) triples; an occupancy array holds the summed coverage of all placed groups, so
the collision of a group at any start is one gather. Activity is Σ box area / frame area over the
grid's time slots, in the same units. ``w_t = chronology_cost_s · opt_fps · mean box area``: a reversed
pair costs as much as ``chronology_cost_s`` seconds of two average objects overlapping completely.

Speed: each group has a ladder of speeds (``build_tubes``' fitting speed × 1, √2, 2, … ``max_speedup``; further,
up to ``max_still_speedup``, while none of its objects would move faster on screen than ``still_motion`` box
heights per second — parked vehicles, people waiting), each rasterised once. Playing a group faster shortens it (the product's time-lapse: whole, once, exact time
mapping), which takes object area off the screen: ``w_v = speed_cost`` prices that area against the overlap it
saves, so a group is sped up only where more than about ``speed_cost`` of it would be overlapped — a quiet
synopsis stays at real time, a dense one is played faster where it is dense.

Optimiser: greedy placement in original order (each group at its cheapest (speed, start) given those already
placed; ties to the slowest speed, then to its proportional position), refined by simulated annealing (local
and global start moves, speed moves that keep the group's middle in place, Metropolis acceptance, geometric cooling from the median |ΔE| of random proposals to 1/1000 of it;
the best state is kept). Deterministic for a given seed.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from pipeline.config.synopsis import ArrangeConfig
from workers.synopsis.tubes import Group, Tube, motion_rate, speed_variant

log = logging.getLogger(__name__)


_SPEED_MOVES = 0.25
"""Share of annealing moves that change a group's speed (when it has more than one)."""


@dataclass
class Arrangement:
    """Synopsis start (output frame) of each group, -1 when left out, with the energy it reached.

    ``tubes`` and ``groups`` are as shown: at the speed the optimiser chose for each group (``speeds`` holds the
    factor over the fitting speed of :func:`workers.synopsis.tubes.build_tubes`)."""

    starts: np.ndarray
    energy: float
    collision: float
    chronology: int
    activity_loss: float
    greedy_energy: float
    steps: int
    accepted: int
    tubes: list[Tube] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    speeds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    speed_loss: float = 0.0

    def shown(self, tube: Tube) -> Tube:
        """``tube`` as shown (its sped-up variant when its group was sped up)."""
        return self.tubes[tube.index] if self.tubes else tube

    def tube_start(self, tube: Tube) -> int:
        """First synopsis frame of ``tube``, or -1 when its group is left out."""
        start = int(self.starts[tube.group])
        return -1 if start < 0 else start + self.shown(tube).offset


@dataclass
class _Raster:
    slots: np.ndarray
    cells: np.ndarray
    cover: np.ndarray
    activity: float
    max_base: int
    frames: int
    offsets: np.ndarray
    """Synopsis frames from the group's start to each member's start (members in group order)."""


def _coverage_1d(lo: np.ndarray, hi: np.ndarray, size: float, count: int, span: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell indices ``(n, span)`` and the fraction of each cell covered by [lo, hi) (0 beyond the box)."""
    first = np.clip(np.floor(lo / size).astype(np.int64), 0, count - 1)
    index = first[:, None] + np.arange(span)[None, :]
    cell_lo = index * size
    overlap = np.minimum(hi[:, None], cell_lo + size) - np.maximum(lo[:, None], cell_lo)
    cover = np.clip(overlap / size, 0.0, 1.0)
    cover[index >= count] = 0.0
    return np.minimum(index, count - 1), cover


def speed_factors(max_speedup: float) -> list[float]:
    """The speed ladder over a group's fitting speed: 1, √2, 2, … up to ``max_speedup`` (its last rung)."""
    if max_speedup <= 1.0:
        return [1.0]
    rungs = max(1, math.ceil(2.0 * math.log2(max_speedup) - 1e-9))
    return [max_speedup ** (k / rungs) for k in range(rungs + 1)]


class _Problem:
    """The grid, the rasterised groups (one raster per speed) and the tube-level chronology arrays."""

    def __init__(self, tubes: list[Tube], groups: list[Group], *, fps: float, size: tuple[int, int],
                 length_frames: int, settings: ArrangeConfig) -> None:
        width, height = size
        self.settings = settings
        self.step = max(1, round(fps / settings.opt_fps))
        self.n_slots = max(1, math.ceil(length_frames / self.step))
        self.cols = settings.grid_cols
        self.rows = max(1, round(self.cols * height / width))
        self.cell_w, self.cell_h = width / self.cols, height / self.rows
        self.cell_frac = 1.0 / (self.cols * self.rows)
        self.frame_area = float(width * height)
        self.length_frames = length_frames
        self.groups = groups
        factors = speed_factors(max(settings.max_speedup, settings.max_still_speedup))
        self.variants: list[list[tuple[Group, list[Tube]]]] = []
        for g in groups:
            ladder = [(g, [tubes[i] for i in g.tubes])]
            motion = max(motion_rate(tubes[i].path) for i in g.tubes)
            for factor in factors[1:]:
                if factor > settings.max_speedup + 1e-9 and g.speed * factor * motion > settings.still_motion:
                    break
                faster = speed_variant(g, tubes, factor, fps=fps, size=size, length_frames=length_frames)
                if faster[0].frames < ladder[-1][0].frames:  # a rung that changes nothing is skipped
                    ladder.append(faster)
            self.variants.append(ladder)
        self.factors = [[v[0].speed / g.speed for v in ladder] for g, ladder in zip(groups, self.variants, strict=True)]
        self.rasters = [[self._rasterise(group, members) for group, members in ladder] for ladder in self.variants]
        self.loss = [[max(0.0, r[0].activity - x.activity) for x in r] for r in self.rasters]
        self.occ = np.zeros((self.n_slots + 1, self.cols * self.rows), dtype=np.float64)
        self.orig = np.array([t.path.start_s for t in tubes], dtype=np.float64)
        self.members = [np.array(g.tubes, dtype=np.int64) for g in groups]
        self.syn = np.full(len(tubes), -1, dtype=np.int64)
        areas = np.concatenate([t.areas() for t in tubes]) if tubes else np.zeros(1)
        mean_area = float(areas.mean()) / self.frame_area if len(areas) else 0.0
        self.w_c = settings.collision_weight
        self.w_t = settings.chronology_cost_s * (fps / self.step) * mean_area
        self.w_a = settings.activity_weight
        self.w_v = settings.speed_cost

    def _rasterise(self, group: Group, members: list[Tube]) -> _Raster:
        keys: list[np.ndarray] = []
        covers: list[np.ndarray] = []
        activity = 0.0
        for tube in members:
            frame = tube.offset + np.arange(tube.frames)
            pick = frame % self.step == 0
            if not pick.any():
                pick[0] = True
            boxes, slots = tube.boxes[pick], frame[pick] // self.step
            span_x = int(np.ceil((boxes[:, 2] - boxes[:, 0]).max() / self.cell_w)) + 1
            span_y = int(np.ceil((boxes[:, 3] - boxes[:, 1]).max() / self.cell_h)) + 1
            cx, wx = _coverage_1d(boxes[:, 0], boxes[:, 2], self.cell_w, self.cols, span_x)
            cy, wy = _coverage_1d(boxes[:, 1], boxes[:, 3], self.cell_h, self.rows, span_y)
            cell = cy[:, :, None] * self.cols + cx[:, None, :]
            cover = wy[:, :, None] * wx[:, None, :]
            slot = np.broadcast_to(slots[:, None, None], cell.shape)
            keep = cover > 0
            keys.append(slot[keep] * (self.cols * self.rows) + cell[keep])
            covers.append(cover[keep])
            activity += float(((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sum()) / self.frame_area
        unique, inverse = np.unique(np.concatenate(keys), return_inverse=True)
        cover = np.bincount(inverse, weights=np.concatenate(covers))
        ncell = self.cols * self.rows
        max_base = max(0, (self.length_frames - group.frames) // self.step)
        offsets = np.array([t.offset for t in members], dtype=np.int64)
        return _Raster(unique // ncell, unique % ncell, cover, activity, max_base, group.frames, offsets)

    # -- occupancy ----------------------------------------------------------------------------------
    def place(self, g: int, base: int, opt: int) -> None:
        if base < 0:
            return
        r = self.rasters[g][opt]
        self.occ[r.slots + base, r.cells] += r.cover
        self.syn[self.members[g]] = base * self.step + r.offsets

    def lift(self, g: int, base: int, opt: int) -> None:
        if base < 0:
            return
        r = self.rasters[g][opt]
        self.occ[r.slots + base, r.cells] -= r.cover
        self.syn[self.members[g]] = -1

    # -- costs (group g lifted) ---------------------------------------------------------------------
    def collision(self, g: int, base: int, opt: int) -> float:
        r = self.rasters[g][opt]
        return float(np.dot(r.cover, self.occ[r.slots + base, r.cells])) * self.cell_frac

    def reversed_pairs(self, g: int, base: int, opt: int) -> int:
        members = self.members[g]
        placed = self.syn >= 0
        if not placed.any():
            return 0
        o_other, s_other = self.orig[placed], self.syn[placed]
        o_mine = self.orig[members][:, None]
        s_mine = (base * self.step + self.rasters[g][opt].offsets)[:, None]
        later = (o_other[None, :] > o_mine) & (s_other[None, :] < s_mine)
        earlier = (o_other[None, :] < o_mine) & (s_other[None, :] > s_mine)
        return int(later.sum() + earlier.sum())

    def cost(self, g: int, base: int, opt: int) -> float:
        if base < 0:
            return self.w_a * self.rasters[g][0].activity
        return (self.w_c * self.collision(g, base, opt) + self.w_t * self.reversed_pairs(g, base, opt)
                + self.w_v * self.loss[g][opt])

    def costs_for(self, g: int, opt: int, bases: np.ndarray) -> np.ndarray:
        """Cost of group ``g`` (lifted) at speed ``opt`` and each of ``bases``, vectorised (greedy pass)."""
        r = self.rasters[g][opt]
        gathered = self.occ[r.slots[:, None] + bases[None, :], r.cells[:, None]]
        cost = self.w_c * (r.cover @ gathered) * self.cell_frac + self.w_v * self.loss[g][opt]
        placed = self.syn >= 0
        if self.w_t > 0 and placed.any():
            o_other, s_other = self.orig[placed], self.syn[placed]
            for i, offset in zip(self.members[g], r.offsets, strict=True):
                x = bases * self.step + offset
                later = np.sort(s_other[o_other > self.orig[i]])
                earlier = np.sort(s_other[o_other < self.orig[i]])
                count = np.searchsorted(later, x, "left") + len(earlier) - np.searchsorted(earlier, x, "right")
                cost = cost + self.w_t * count
        return cost


def _greedy(problem: _Problem, order: list[int], position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each group at its cheapest (speed, start); ties to the slowest speed, then to ``position`` (0..1) of its range."""
    settings = problem.settings
    bases = np.full(len(problem.groups), -1, dtype=np.int64)
    opts = np.zeros(len(problem.groups), dtype=np.int64)
    for g in order:
        options = []
        for opt, r in enumerate(problem.rasters[g]):
            candidates = np.arange(r.max_base + 1)
            if len(candidates) > settings.max_candidates:
                candidates = np.unique(np.linspace(0, r.max_base, settings.max_candidates).round().astype(np.int64))
            cost = problem.costs_for(g, opt, candidates)
            options.append((float(cost.min()), candidates, cost))
        best = min(o[0] for o in options)
        if settings.drop_objects and best > problem.w_a * problem.rasters[g][0].activity:
            continue
        opt = next(k for k, o in enumerate(options) if o[0] <= best + 1e-12 * (1.0 + abs(best)))
        _, candidates, cost = options[opt]
        own = float(cost.min())
        tied = candidates[cost <= own + 1e-12 * (1.0 + abs(own))]
        choice = int(tied[np.argmin(np.abs(tied - position[g] * problem.rasters[g][opt].max_base))])
        bases[g], opts[g] = choice, opt
        problem.place(g, choice, opt)
    return bases, opts


def _propose(rng: np.random.Generator, problem: _Problem, g: int, old: int, opt: int,
             radius: int) -> tuple[int, int]:
    """A new (start, speed) for group ``g``: a speed step keeping its middle, a local or global shift, or a drop."""
    ladder = problem.rasters[g]
    if len(ladder) > 1 and old >= 0 and rng.random() < _SPEED_MOVES:
        new_opt = min(len(ladder) - 1, max(0, opt + (1 if rng.random() < 0.5 else -1)))
        middle = old * problem.step + 0.5 * ladder[opt].frames
        new = round((middle - 0.5 * ladder[new_opt].frames) / problem.step)
        return min(ladder[new_opt].max_base, max(0, new)), new_opt
    max_base = ladder[opt].max_base
    roll = rng.random()
    if problem.settings.drop_objects and roll < 0.1:
        return (-1 if old >= 0 else int(rng.integers(0, max_base + 1))), opt
    if old >= 0 and roll < 0.55:
        shift = int(rng.integers(-radius, radius + 1))
        return min(max_base, max(0, old + shift)), opt
    return int(rng.integers(0, max_base + 1)), opt


def _temperature(problem: _Problem, bases: np.ndarray, opts: np.ndarray, rng: np.random.Generator,
                 radius: int) -> float:
    samples = []
    for _ in range(min(200, 20 * len(bases))):
        g = int(rng.integers(len(bases)))
        old, opt = int(bases[g]), int(opts[g])
        new, new_opt = _propose(rng, problem, g, old, opt, radius)
        if (new, new_opt) == (old, opt):
            continue
        problem.lift(g, old, opt)
        samples.append(abs(problem.cost(g, new, new_opt) - problem.cost(g, old, opt)))
        problem.place(g, old, opt)
    nonzero = [s for s in samples if s > 0]
    return float(np.median(nonzero)) if nonzero else 1e-12


def _anneal(problem: _Problem, bases: np.ndarray, opts: np.ndarray,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int, int]:
    settings = problem.settings
    n_steps = min(settings.max_anneal_steps, settings.anneal_steps_per_group * len(bases))
    movable = [g for g in range(len(bases))
               if problem.rasters[g][0].max_base > 0 or len(problem.rasters[g]) > 1 or settings.drop_objects]
    if n_steps == 0 or not movable:
        return bases, opts, 0, 0
    radius = max(1, round(2.0 * settings.opt_fps))
    t0 = _temperature(problem, bases, opts, rng, radius)
    energy = best_energy = 0.0
    best, best_opts = bases.copy(), opts.copy()
    accepted = 0
    for step in range(n_steps):
        temperature = t0 * (1e-3 ** (step / n_steps))
        g = movable[int(rng.integers(len(movable)))]
        old, opt = int(bases[g]), int(opts[g])
        new, new_opt = _propose(rng, problem, g, old, opt, radius)
        if (new, new_opt) == (old, opt):
            continue
        problem.lift(g, old, opt)
        delta = problem.cost(g, new, new_opt) - problem.cost(g, old, opt)
        if delta <= 0 or rng.random() < math.exp(-delta / temperature):
            bases[g], opts[g] = new, new_opt
            energy += delta
            accepted += 1
        problem.place(g, int(bases[g]), int(opts[g]))
        if energy < best_energy - 1e-12:
            best_energy = energy
            best, best_opts = bases.copy(), opts.copy()
    return best, best_opts, n_steps, accepted


def _energy(problem: _Problem, bases: np.ndarray, opts: np.ndarray) -> tuple[float, float, int, float, float]:
    """(energy, collision, reversed pairs, activity loss, speed loss) of a full state, from scratch."""
    problem.occ[:] = 0.0
    problem.syn[:] = -1
    for g, (base, opt) in enumerate(zip(bases, opts, strict=True)):
        problem.place(g, int(base), int(opt))
    collision = activity_loss = speed_loss = 0.0
    for g, (base, opt) in enumerate(zip(bases, opts, strict=True)):
        if base < 0:
            activity_loss += problem.rasters[g][0].activity
            continue
        r = problem.rasters[g][int(opt)]
        own = float(np.dot(r.cover, r.cover)) * problem.cell_frac
        collision += 0.5 * (problem.collision(g, int(base), int(opt)) - own)
        speed_loss += problem.loss[g][int(opt)]
    placed = problem.syn >= 0
    o, s = problem.orig[placed], problem.syn[placed]
    reversed_pairs = 0
    for start in range(0, len(o), 1024):
        block_o, block_s = o[start:start + 1024, None], s[start:start + 1024, None]
        reversed_pairs += int(((o[None, :] > block_o) & (s[None, :] < block_s)).sum())
    energy = (problem.w_c * collision + problem.w_t * reversed_pairs + problem.w_a * activity_loss
              + problem.w_v * speed_loss)
    return energy, collision, reversed_pairs, activity_loss, speed_loss


def arrange(
    tubes: list[Tube], groups: list[Group], *, fps: float, size: tuple[int, int], length_frames: int,
    settings: ArrangeConfig, window: tuple[float, float],
) -> Arrangement:
    """Greedy placement refined by simulated annealing; returns each group's start in output frames and its speed."""
    if not groups:
        return Arrangement(np.zeros(0, dtype=np.int64), 0.0, 0.0, 0, 0.0, 0.0, 0, 0, list(tubes), [])
    problem = _Problem(tubes, groups, fps=fps, size=size, length_frames=length_frames, settings=settings)
    span = max(window[1] - window[0], 1e-9)
    position = np.array([(g.original_start - window[0]) / span for g in groups])
    order = sorted(range(len(groups)), key=lambda i: (groups[i].original_start, i))
    bases, opts = _greedy(problem, order, position)
    greedy_energy = _energy(problem, bases, opts)[0]
    rng = np.random.default_rng(settings.seed)
    bases, opts, steps, accepted = _anneal(problem, bases, opts, rng)
    energy, collision, reversed_pairs, activity_loss, speed_loss = _energy(problem, bases, opts)
    log.info("arrangement: %d group(s), energy %.4f after greedy, %.4f after %d annealing steps (%d accepted), "
             "%d sped up", len(groups), greedy_energy, energy, steps, accepted, int((opts > 0).sum()))
    starts = np.where(bases >= 0, bases * problem.step, -1)
    shown_groups = [problem.variants[g][int(o)][0] for g, o in enumerate(opts)]
    shown: list[Tube | None] = [None] * len(tubes)
    for g, o in enumerate(opts):
        for tube in problem.variants[g][int(o)][1]:
            shown[tube.index] = tube
    speeds = np.array([problem.factors[g][int(o)] for g, o in enumerate(opts)])
    return Arrangement(starts, energy, collision, reversed_pairs, activity_loss, greedy_energy, steps, accepted,
                       [t for t in shown if t is not None], shown_groups, speeds, speed_loss)

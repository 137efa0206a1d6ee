"""Arrangement: one synopsis start per group, minimising activity loss + collision + chronology violations.

The energy (``docs/design/synopsis.md``)::

    E = w_a · Σ_{left-out groups} activity  +  w_c · Σ_{group pairs} overlap  +  w_t · #reversed tube pairs

Overlap is evaluated on a coarse space-time grid: time at ``opt_fps`` (starts are multiples of one
grid step), space in ``grid_cols`` × rows cells. Every group is rasterised once into unique
(slot, cell, coverage) triples; an occupancy array holds the summed coverage of all placed groups, so
the collision of a group at any start is one gather. Activity is Σ box area / frame area over the
grid's time slots, in the same units. ``w_t = chronology_cost_s · opt_fps · mean box area``: a reversed
pair costs as much as ``chronology_cost_s`` seconds of two average objects overlapping completely.

Optimiser: greedy placement in original order (each group at its cheapest start given those already
placed; ties to its proportional position), refined by simulated annealing (local and global moves,
Metropolis acceptance, geometric cooling from the median |ΔE| of random proposals to 1/1000 of it;
the best state is kept). Deterministic for a given seed.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from pipeline.config.synopsis import ArrangeConfig
from workers.synopsis.tubes import Group, Tube

log = logging.getLogger(__name__)


@dataclass
class Arrangement:
    """Synopsis start (output frame) of each group, -1 when left out, with the energy it reached."""

    starts: np.ndarray
    energy: float
    collision: float
    chronology: int
    activity_loss: float
    greedy_energy: float
    steps: int
    accepted: int

    def tube_start(self, tube: Tube) -> int:
        """First synopsis frame of ``tube``, or -1 when its group is left out."""
        start = int(self.starts[tube.group])
        return -1 if start < 0 else start + tube.offset


@dataclass
class _Raster:
    slots: np.ndarray
    cells: np.ndarray
    cover: np.ndarray
    activity: float
    max_base: int


def _coverage_1d(lo: np.ndarray, hi: np.ndarray, size: float, count: int, span: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell indices ``(n, span)`` and the fraction of each cell covered by [lo, hi) (0 beyond the box)."""
    first = np.clip(np.floor(lo / size).astype(np.int64), 0, count - 1)
    index = first[:, None] + np.arange(span)[None, :]
    cell_lo = index * size
    overlap = np.minimum(hi[:, None], cell_lo + size) - np.maximum(lo[:, None], cell_lo)
    cover = np.clip(overlap / size, 0.0, 1.0)
    cover[index >= count] = 0.0
    return np.minimum(index, count - 1), cover


class _Problem:
    """The grid, the rasterised groups and the tube-level chronology arrays."""

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
        self.rasters = [self._rasterise(g, tubes) for g in groups]
        self.occ = np.zeros((self.n_slots + 1, self.cols * self.rows), dtype=np.float64)
        self.orig = np.array([t.path.start_s for t in tubes], dtype=np.float64)
        self.tube_group = np.array([t.group for t in tubes], dtype=np.int64)
        self.tube_offset = np.array([t.offset for t in tubes], dtype=np.int64)
        self.members = [np.array(g.tubes, dtype=np.int64) for g in groups]
        self.syn = np.full(len(tubes), -1, dtype=np.int64)
        areas = np.concatenate([t.areas() for t in tubes]) if tubes else np.zeros(1)
        mean_area = float(areas.mean()) / self.frame_area if len(areas) else 0.0
        self.w_c = settings.collision_weight
        self.w_t = settings.chronology_cost_s * (fps / self.step) * mean_area
        self.w_a = settings.activity_weight

    def _rasterise(self, group: Group, tubes: list[Tube]) -> _Raster:
        keys: list[np.ndarray] = []
        covers: list[np.ndarray] = []
        activity = 0.0
        for i in group.tubes:
            tube = tubes[i]
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
        return _Raster(unique // ncell, unique % ncell, cover, activity, max_base)

    # -- occupancy ----------------------------------------------------------------------------------
    def place(self, g: int, base: int) -> None:
        if base < 0:
            return
        r = self.rasters[g]
        self.occ[r.slots + base, r.cells] += r.cover
        self.syn[self.members[g]] = base * self.step + self.tube_offset[self.members[g]]

    def lift(self, g: int, base: int) -> None:
        if base < 0:
            return
        r = self.rasters[g]
        self.occ[r.slots + base, r.cells] -= r.cover
        self.syn[self.members[g]] = -1

    # -- costs (group g lifted) ---------------------------------------------------------------------
    def collision(self, g: int, base: int) -> float:
        r = self.rasters[g]
        return float(np.dot(r.cover, self.occ[r.slots + base, r.cells])) * self.cell_frac

    def reversed_pairs(self, g: int, base: int) -> int:
        members = self.members[g]
        placed = self.syn >= 0
        if not placed.any():
            return 0
        o_other, s_other = self.orig[placed], self.syn[placed]
        o_mine = self.orig[members][:, None]
        s_mine = (base * self.step + self.tube_offset[members])[:, None]
        later = (o_other[None, :] > o_mine) & (s_other[None, :] < s_mine)
        earlier = (o_other[None, :] < o_mine) & (s_other[None, :] > s_mine)
        return int(later.sum() + earlier.sum())

    def cost(self, g: int, base: int) -> float:
        if base < 0:
            return self.w_a * self.rasters[g].activity
        return self.w_c * self.collision(g, base) + self.w_t * self.reversed_pairs(g, base)

    def costs_for(self, g: int, bases: np.ndarray) -> np.ndarray:
        """Cost of group ``g`` (lifted) at each of ``bases``, vectorised (greedy pass)."""
        r = self.rasters[g]
        gathered = self.occ[r.slots[:, None] + bases[None, :], r.cells[:, None]]
        cost = self.w_c * (r.cover @ gathered) * self.cell_frac
        placed = self.syn >= 0
        if self.w_t > 0 and placed.any():
            o_other, s_other = self.orig[placed], self.syn[placed]
            for i in self.members[g]:
                x = bases * self.step + self.tube_offset[i]
                later = np.sort(s_other[o_other > self.orig[i]])
                earlier = np.sort(s_other[o_other < self.orig[i]])
                count = np.searchsorted(later, x, "left") + len(earlier) - np.searchsorted(earlier, x, "right")
                cost = cost + self.w_t * count
        return cost


def _greedy(problem: _Problem, order: list[int], proportional: np.ndarray) -> np.ndarray:
    settings = problem.settings
    bases = np.full(len(problem.groups), -1, dtype=np.int64)
    for g in order:
        r = problem.rasters[g]
        candidates = np.arange(r.max_base + 1)
        if len(candidates) > settings.max_candidates:
            candidates = np.unique(np.linspace(0, r.max_base, settings.max_candidates).round().astype(np.int64))
        cost = problem.costs_for(g, candidates)
        best = float(cost.min())
        if settings.drop_objects and best > problem.w_a * r.activity:
            continue
        tied = candidates[cost <= best + 1e-12 * (1.0 + abs(best))]
        choice = int(tied[np.argmin(np.abs(tied - proportional[g]))])
        bases[g] = choice
        problem.place(g, choice)
    return bases


def _propose(rng: np.random.Generator, old: int, max_base: int, radius: int, drop: bool) -> int:
    roll = rng.random()
    if drop and roll < 0.1:
        return -1 if old >= 0 else int(rng.integers(0, max_base + 1))
    if old >= 0 and roll < 0.55:
        shift = int(rng.integers(-radius, radius + 1))
        return min(max_base, max(0, old + shift))
    return int(rng.integers(0, max_base + 1))


def _delta(problem: _Problem, g: int, old: int, new: int) -> float:
    """ΔE of moving group ``g`` from ``old`` to ``new``; the group must be lifted."""
    return problem.cost(g, new) - problem.cost(g, old)


def _temperature(problem: _Problem, bases: np.ndarray, rng: np.random.Generator, radius: int) -> float:
    samples = []
    for _ in range(min(200, 20 * len(bases))):
        g = int(rng.integers(len(bases)))
        old = int(bases[g])
        new = _propose(rng, old, problem.rasters[g].max_base, radius, problem.settings.drop_objects)
        if new == old:
            continue
        problem.lift(g, old)
        samples.append(abs(_delta(problem, g, old, new)))
        problem.place(g, old)
    nonzero = [s for s in samples if s > 0]
    return float(np.median(nonzero)) if nonzero else 1e-12


def _anneal(problem: _Problem, bases: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
    settings = problem.settings
    n_steps = min(settings.max_anneal_steps, settings.anneal_steps_per_group * len(bases))
    movable = [g for g in range(len(bases)) if problem.rasters[g].max_base > 0 or settings.drop_objects]
    if n_steps == 0 or not movable:
        return bases, 0, 0
    radius = max(1, round(2.0 * settings.opt_fps))
    t0 = _temperature(problem, bases, rng, radius)
    energy = best_energy = 0.0
    best = bases.copy()
    accepted = 0
    for step in range(n_steps):
        temperature = t0 * (1e-3 ** (step / n_steps))
        g = movable[int(rng.integers(len(movable)))]
        old = int(bases[g])
        new = _propose(rng, old, problem.rasters[g].max_base, radius, settings.drop_objects)
        if new == old:
            continue
        problem.lift(g, old)
        delta = _delta(problem, g, old, new)
        if delta <= 0 or rng.random() < math.exp(-delta / temperature):
            bases[g] = new
            energy += delta
            accepted += 1
        problem.place(g, int(bases[g]))
        if energy < best_energy - 1e-12:
            best_energy = energy
            best = bases.copy()
    return best, n_steps, accepted


def _energy(problem: _Problem, bases: np.ndarray) -> tuple[float, float, int, float]:
    """(energy, collision, reversed pairs, activity loss) of a full state, from scratch."""
    problem.occ[:] = 0.0
    problem.syn[:] = -1
    for g, base in enumerate(bases):
        problem.place(g, int(base))
    collision = activity_loss = 0.0
    for g, base in enumerate(bases):
        if base < 0:
            activity_loss += problem.rasters[g].activity
            continue
        r = problem.rasters[g]
        own = float(np.dot(r.cover, r.cover)) * problem.cell_frac
        collision += 0.5 * (problem.collision(g, int(base)) - own)
    placed = problem.syn >= 0
    o, s = problem.orig[placed], problem.syn[placed]
    reversed_pairs = 0
    for start in range(0, len(o), 1024):
        block_o, block_s = o[start:start + 1024, None], s[start:start + 1024, None]
        reversed_pairs += int(((o[None, :] > block_o) & (s[None, :] < block_s)).sum())
    energy = problem.w_c * collision + problem.w_t * reversed_pairs + problem.w_a * activity_loss
    return energy, collision, reversed_pairs, activity_loss


def arrange(
    tubes: list[Tube], groups: list[Group], *, fps: float, size: tuple[int, int], length_frames: int,
    settings: ArrangeConfig, window: tuple[float, float],
) -> Arrangement:
    """Greedy placement refined by simulated annealing; returns each group's start in output frames."""
    if not groups:
        return Arrangement(np.zeros(0, dtype=np.int64), 0.0, 0.0, 0, 0.0, 0.0, 0, 0)
    problem = _Problem(tubes, groups, fps=fps, size=size, length_frames=length_frames, settings=settings)
    span = max(window[1] - window[0], 1e-9)
    proportional = np.array([
        (g.original_start - window[0]) / span * problem.rasters[i].max_base for i, g in enumerate(groups)
    ])
    order = sorted(range(len(groups)), key=lambda i: (groups[i].original_start, i))
    bases = _greedy(problem, order, proportional)
    greedy_energy = _energy(problem, bases)[0]
    rng = np.random.default_rng(settings.seed)
    bases, steps, accepted = _anneal(problem, bases, rng)
    energy, collision, reversed_pairs, activity_loss = _energy(problem, bases)
    log.info("arrangement: %d group(s), energy %.4f after greedy, %.4f after %d annealing steps (%d accepted)",
             len(groups), greedy_energy, energy, steps, accepted)
    starts = np.where(bases >= 0, bases * problem.step, -1)
    return Arrangement(starts, energy, collision, reversed_pairs, activity_loss, greedy_energy, steps, accepted)

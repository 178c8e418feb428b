"""Verification of counterfactual candidates *as they will be executed* (a positive is what a policy imitates).

The scorer verifies a trajectory through NAVSIM's tracker, whose lag smooths corners; a policy that imitates the
stored poses, or re-plans with them, drives something else. A candidate is **verified safe** only if every check
below passes (each is stored per pair, ``docs/safety_labels.md``):

(a) ``scorer``: its tracked rollout (:func:`rewards.tracking.simulate_candidates`, 41 states at 0.1 s) scores
    NC = TTC = 1 and, with a map, DAC = DDC = 1; with ``require_no_contact`` also no contact at all (being hit
    from behind included). Map-less scenes check NC, TTC and contact only.
(b) ``raw_poses``: its 8 poses interpolated at 0.1 s (:func:`rewards.tracking.interpolate_candidates`, the
    trajectory a policy imitates, without the tracker) overlap no agent box.
(c) ``closed_loop``: followed in the closed loop (:func:`envs.sim.simulation.follow_trajectories`: re-planning every
    ``replan_interval`` with its remainder, the env's tracker carrying the steering) the ego collides with no agent
    and keeps every corner in the drivable area (the replay env's two terminations; off-road only with a map).
(d) ``clearance``: each realisation named in ``clearance_over`` keeps at least ``clearance_margin`` [m] (box to
    box) from every agent over the horizon (states 1..40; the present state is shared by all candidates and not
    judged). By default that is all three (``("tracked", "raw_poses", "closed_loop")``): the margin holds for what
    the scorer simulates, for the poses a policy imitates and for the closed loop that executes them (with the
    tracked rollout alone, 13 of 221 positives of a held-out bank seed passed 2-16 cm from an agent as executed).
(e) ``no_oncoming``: neither its tracked rollout nor its raw poses put the ego box centre into a lane of the
    opposite direction without also being in a lane of its own direction (a lateral evasion goes to a same-direction lane or the
    shoulder, never into oncoming traffic); map-less scenes cannot check it (True).

Checks (b), (c) and (e) are independent of each other: each looks at another realisation of the candidate or at
another property, so a candidate can fail one alone (tested). With the default ``clearance_over`` an overlap of
the raw poses or a closed-loop collision also fails (d) (a gap of 0 m is below the margin); with
``clearance_over=("tracked",)`` (the margin on the scorer's rollout only) (d) is independent of (b) and (c) too.

Frames: candidates are ego-frame at the decision time; everything computed here is world frame.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.scenes.scene import Scene, SceneMap
from envs.sim.simulation import follow_trajectories
from rewards.config import PDMConfig
from rewards.geometry import rear_axle_to_center, vehicle_corners, wrap_angle
from rewards.map_index import map_index_for
from rewards.tracking import interpolate_candidates, simulate_candidates
from rewards.clearance import min_gaps
from rewards.types import ScoringProblem

CHECKS = ("scorer", "raw_poses", "closed_loop", "clearance", "no_oncoming")
"""Names of the checks, in the order of the module docstring."""


@dataclass(frozen=True)
class VerifyConfig:
    """Execution checks of a candidate (see the module docstring); every field is a documented knob."""

    clearance_margin: float = 0.5
    """(d) smallest box-to-box gap to any agent over each realisation of ``clearance_over`` [m]."""
    replan_interval: float = 0.5
    """(c) re-planning interval of the closed-loop following [s] (the replay env's default)."""
    require_no_contact: bool = True
    """(a) also reject any contact (e.g. being hit from behind), not only at-fault ones."""
    report_radius: float = 1.0
    """Gaps beyond ``clearance_margin + report_radius`` [m] are not resolved (reported as ``inf``)."""
    clearance_over: tuple[str, ...] = ("tracked", "raw_poses", "closed_loop")
    """(d) realisations the margin applies to (default: all three): ``"tracked"`` (the scorer's rollout),
    ``"raw_poses"`` (the 8 poses interpolated at 0.1 s), ``"closed_loop"`` (the closed-loop following); a non-empty
    subset. ``("tracked",)`` is the older, weaker rule."""

    def __post_init__(self) -> None:
        for name in ("clearance_margin", "report_radius"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"VerifyConfig.{name}: expected a finite value >= 0 [m], got {value!r}")
        unknown = set(self.clearance_over) - {"tracked", "raw_poses", "closed_loop"}
        if not self.clearance_over or unknown:
            raise ValueError(f"VerifyConfig.clearance_over: expected a non-empty subset of ('tracked', 'raw_poses', "
                             f"'closed_loop'), got {self.clearance_over!r}")
        if not (math.isfinite(self.replan_interval) and self.replan_interval > 0):
            raise ValueError(f"VerifyConfig.replan_interval: expected > 0 [s], got {self.replan_interval!r}")


@dataclass(frozen=True)
class Verification:
    """Per-candidate outcome of :func:`verify_candidates`; every array is ``(G,)``.

    Attributes:
        scorer, raw_poses, closed_loop, clearance, no_oncoming: bool, the checks (a)-(e).
        clearance_m: smallest gap of the tracked rollout to any agent box [m] (``inf``: none within reach).
        raw_clearance_m: the same for the interpolated poses [m] (0: overlap).
        closed_loop_clearance_m: the same for the closed-loop following [m] (0: collision).
        closed_loop_offroad: the closed-loop following left the drivable area.
        margin: the clearance margin used [m].
    """

    scorer: np.ndarray
    raw_poses: np.ndarray
    closed_loop: np.ndarray
    clearance: np.ndarray
    no_oncoming: np.ndarray
    clearance_m: np.ndarray
    raw_clearance_m: np.ndarray
    closed_loop_clearance_m: np.ndarray
    closed_loop_offroad: np.ndarray
    margin: float

    @property
    def safe(self) -> np.ndarray:
        """``(G,)`` bool: every check passes."""
        return self.scorer & self.raw_poses & self.closed_loop & self.clearance & self.no_oncoming

    def record(self, i: int) -> dict[str, Any]:
        """Candidate ``i``'s results as plain values (what an anchor pair stores): ``{check: bool, ...,
        "clearance_m", "raw_clearance_m", "closed_loop_clearance_m": float [m], "clearance_margin_m": float [m]}``."""
        out: dict[str, Any] = {name: bool(getattr(self, name)[i]) for name in CHECKS}
        for name in ("clearance_m", "raw_clearance_m", "closed_loop_clearance_m"):
            out[name] = float(getattr(self, name)[i])
        out["clearance_margin_m"] = float(self.margin)
        return out

    def failure_counts(self, mask: np.ndarray | None = None) -> dict[str, int]:
        """``{check: number of candidates (in ``mask``) failing it}``."""
        m = np.ones(len(self.scorer), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        return {name: int((~getattr(self, name) & m).sum()) for name in CHECKS}


# ------------------------------------------------------------------------------------------------------ geometry
_LANE_TREES: "weakref.WeakKeyDictionary[SceneMap, list]" = weakref.WeakKeyDictionary()


def _lane_trees(scene_map: SceneMap) -> list:
    """Per lane: a KD-tree over its centreline vertices and the driving direction at each vertex [rad] (cached)."""
    trees = _LANE_TREES.get(scene_map)
    if trees is None:
        from scipy.spatial import cKDTree

        trees = []
        for lane in scene_map.lanes:
            cl = lane.centerline
            seg = np.diff(cl, axis=0)
            heading = np.arctan2(seg[:, 1], seg[:, 0])
            trees.append((cKDTree(cl), np.concatenate([heading, heading[-1:]])))
        _LANE_TREES[scene_map] = trees
    return trees


def oncoming_mask(scene_map: SceneMap, problem: ScoringProblem, rear_axle_poses: np.ndarray) -> np.ndarray:
    """Which ego poses put the box centre into oncoming traffic.

    A pose is *oncoming* when its box centre lies strictly inside at least one lane polygon whose driving
    direction (at the nearest centreline vertex) differs from the ego heading by more than 90 deg, and inside no
    lane whose direction is within 90 deg (inside a junction, the ego's own connector overlaps crossing ones).
    Shoulders, parking strips and other drivable non-lane areas are never oncoming.

    Args:
        scene_map: the scene's map (lanes with centrelines in driving order).
        problem: the scoring problem of the same scene (its map geometry's polygon index).
        rear_axle_poses: ``(..., 3)`` world-frame rear-axle poses [m, m, rad].

    Returns:
        ``(...)`` bool.
    """
    poses = np.asarray(rear_axle_poses, dtype=np.float64)
    centers = rear_axle_to_center(poses, problem.ego.params).reshape(-1, 3)
    index = map_index_for(problem.map)
    point, lane = np.nonzero(index.contains(centers[:, :2])[:, index.lane_columns])  # (point, lane) inside pairs
    against = np.zeros(len(centers), dtype=bool)
    along = np.zeros(len(centers), dtype=bool)
    trees = _lane_trees(scene_map)
    order = np.argsort(lane, kind="stable")
    point, lane = point[order], lane[order]
    bounds = np.flatnonzero(np.diff(lane)) + 1
    for pts, ln in zip(np.split(point, bounds), np.split(lane, bounds)):
        if not len(pts):
            continue
        tree, heading = trees[int(ln[0])]
        _, vertex = tree.query(centers[pts, :2])
        opposite = np.abs(wrap_angle(heading[vertex] - centers[pts, 2])) > 0.5 * np.pi
        against[pts[opposite]] = True
        along[pts[~opposite]] = True
    return (against & ~along).reshape(poses.shape[:-1])


# --------------------------------------------------------------------------------------------------- verification
def scorer_check(arrays: dict[str, np.ndarray], has_map: bool, require_no_contact: bool = True) -> np.ndarray:
    """(a) ``(G,)`` bool from the scorer's arrays: NC == TTC == 1, with a map DAC == DDC == 1, optionally no
    contact at all."""
    ok = (arrays["nc"] == 1.0) & (arrays["ttc"] == 1.0)
    if has_map:
        ok &= (arrays["dac"] == 1.0) & (arrays["ddc"] == 1.0)
    if require_no_contact and "collision" in arrays:
        ok &= ~arrays["collision"].astype(bool)
    return ok


def verify_candidates(
    scene: Scene,
    problem: ScoringProblem,
    trajectories: np.ndarray,
    arrays: dict[str, np.ndarray],
    pdm: PDMConfig = PDMConfig(),
    config: VerifyConfig = VerifyConfig(),
) -> Verification:
    """Run checks (a)-(e) on every candidate of a group.

    Args:
        scene: the scene (its map's lane directions for (e)).
        problem: the scoring problem at the decision frame (agents' boxes over the window, map, ego state).
        trajectories: ``(G, num_poses, 3)`` ego-frame candidates [m, m, rad].
        arrays: the scorer's per-candidate arrays of the same group (:func:`counterfactual.search.result_arrays`).
        pdm: scorer configuration (sampling, tracking).
        config: the checks' knobs.

    Returns:
        :class:`Verification`.
    """
    trajs = np.asarray(trajectories, dtype=np.float64)
    has_map = problem.map is not None
    steps = np.arange(1, pdm.num_sim_steps)
    reach = config.clearance_margin + config.report_radius

    scorer = scorer_check(arrays, has_map, config.require_no_contact)
    tracked = simulate_candidates(problem.ego, trajs, pdm)[:, 1:, :3]  # (G, T - 1, 3)
    clearance_m = min_gaps(tracked, problem, steps, reach)
    raw = interpolate_candidates(problem.ego, trajs, pdm)[:, 1:]
    raw_clearance_m = min_gaps(raw, problem, steps, reach)
    replan = int(round(config.replan_interval / pdm.sim_dt))
    followed = follow_trajectories(problem.ego, trajs, pdm, replan)[0][:, 1:, :3]
    closed_clearance_m = min_gaps(followed, problem, steps, reach)
    if has_map:
        index = map_index_for(problem.map)
        corners = vehicle_corners(followed, problem.ego.params)  # (G, T - 1, 4, 2)
        drivable = index.contains(corners.reshape(-1, 2))[:, index.drivable_columns].any(axis=-1)
        offroad = ~drivable.reshape(corners.shape[:-1]).all(axis=-1).all(axis=-1)
    else:
        offroad = np.zeros(len(trajs), dtype=bool)
    if has_map and scene.map is not None:
        both = np.concatenate([tracked, raw], axis=1)  # where it drives and what a policy would imitate
        no_oncoming = ~oncoming_mask(scene.map, problem, both).any(axis=-1)
    else:
        no_oncoming = np.ones(len(trajs), dtype=bool)
    gaps = {"tracked": clearance_m, "raw_poses": raw_clearance_m, "closed_loop": closed_clearance_m}
    judged = np.minimum.reduce([gaps[name] for name in config.clearance_over])
    return Verification(
        scorer=scorer,
        raw_poses=raw_clearance_m > 0.0,
        closed_loop=(closed_clearance_m > 0.0) & ~offroad,
        clearance=judged >= config.clearance_margin,
        no_oncoming=no_oncoming,
        clearance_m=clearance_m,
        raw_clearance_m=raw_clearance_m,
        closed_loop_clearance_m=closed_clearance_m,
        closed_loop_offroad=offroad,
        margin=float(config.clearance_margin),
    )

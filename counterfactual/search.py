"""Counterfactual candidates from one decision state, and the choice of the verified-safe positive.

Generation (:func:`generate_candidates`) works in the ego frame at the decision time and needs only the negative
(the driven trajectory, ``(8, 3)``) and the ego speed: every family re-times and/or laterally shifts the negative's
*path* (origin, then its 8 poses, extended straight along its last heading), so the alternatives keep the original
intent (the same turn, the same lane) unless they deliberately leave it:

* ``log``: the negative itself (index 0; scored in the same group, never chosen as the positive);
* ``brake``: constant deceleration ``a`` [m/s^2] from the current speed to a stop;
* ``brake_hold``: decelerate at ``a`` to ``fraction * v0``, then hold that speed;
* ``speed_scale``: the negative's own speed profile scaled by ``k``, ramped in over ``speed_ramp`` s;
* ``accelerate``: constant acceleration ``a`` [m/s^2] from the current speed;
* ``lateral``: the negative's timing with a smooth (quintic) lateral offset ``d`` [m] (left > 0) reached after
  ``duration`` s;
* ``lateral_brake``: lateral offset combined with a constant deceleration;
* ``reference``: the PDM-Closed-like reference planner's trajectory (added by the caller).

Choice (:func:`choose_positive`): candidates are *verified safe* when every check of :mod:`counterfactual.verify`
passes (the scorer's NC = TTC = DAC = DDC = 1 and no contact; no overlap of the raw poses; no collision when
followed in the closed loop; a clearance margin to every agent; never into an oncoming lane). Among them the
**least intervention that keeps progress** wins: candidates that keep the lane (every pose within
``keep_lane_tolerance`` of the negative's path, 0.25 m: braking, yielding, re-timing) come before any lateral
evasion (every lateral family, 0.5 m shifts included);
within that tier the highest PDMS (map-less: :func:`rewards.pdm.map_free_score` with EP along the negative's path) wins, scores within ``score_tolerance``
of the best count as tied, and the tie goes to the smallest mean L2 distance to the negative (closest to the
original intent). A lateral evasion is chosen only when no keep-lane candidate is safe.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from counterfactual.labels import lateral_offsets, project_onto_path
from counterfactual.verify import scorer_check
from rewards.config import PDMConfig

if TYPE_CHECKING:  # pragma: no cover
    from counterfactual.verify import Verification

RESULT_FIELDS = (
    "nc",
    "dac",
    "ddc",
    "ttc",
    "ep",
    "comfort",
    "pdms",
    "progress",
    "collision",
    "at_fault_collision",
    "collision_time",
    "colliding_agent_id",
)
"""Per-candidate arrays copied from a scorer result into a record's score dict (those the result has)."""


@dataclass(frozen=True)
class SearchConfig:
    """Candidate families and the positive's selection rule (every field is a documented knob)."""

    brake_decels: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
    """Constant decelerations to a stop [m/s^2]."""
    brake_hold: tuple[tuple[float, float], ...] = ((2.0, 0.6), (3.0, 0.3), (4.0, 0.5), (6.0, 0.2))
    """(deceleration [m/s^2], held fraction of the current speed) pairs."""
    speed_scales: tuple[float, ...] = (0.25, 0.5, 0.75, 1.25, 1.5)
    """Scales of the negative's speed profile."""
    speed_ramp: float = 1.0
    """Time over which a speed scale is ramped in [s]."""
    accelerations: tuple[float, ...] = (1.0, 2.0)
    """Constant accelerations [m/s^2]."""
    lateral_offsets: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5)
    """Magnitudes of lateral offsets [m]; both signs are generated."""
    lateral_durations: tuple[float, ...] = (1.5, 3.0)
    """Times to reach the full lateral offset [s] (quintic shape)."""
    combo_decels: tuple[float, ...] = (2.0, 4.0)
    """Decelerations combined with each lateral offset (at the first lateral duration) [m/s^2]."""
    require_no_contact: bool = True
    """Also reject positives with any contact (e.g. being hit from behind), not only at-fault ones."""
    score_tolerance: float = 0.02
    """Scores within this of the best are tied; ties go to the smallest deviation from the negative."""
    keep_lane_tolerance: float = 0.25
    """A candidate whose poses all stay within this of the negative's path [m] keeps the lane (preferred over any
    lateral evasion). 0.25 m: half the smallest lateral offset (0.5 m), so the re-timed families (offset ~0) keep
    the lane and every lateral family, 0.5 m shifts included, is a lateral evasion (must be below
    ``min(lateral_offsets)``, checked). Equal to ``LabelConfig.swerve_threshold`` so that the keep-lane tier is
    exactly the positives whose action has no lateral part (checked by ``MinerConfig``)."""

    def __post_init__(self) -> None:
        for name in ("brake_decels", "accelerations", "lateral_offsets", "lateral_durations", "combo_decels"):
            if any(not (v > 0 and math.isfinite(v)) for v in getattr(self, name)):
                raise ValueError(f"SearchConfig.{name}: values must be positive, got {getattr(self, name)}")
        if any(k <= 0 for k in self.speed_scales):
            raise ValueError(f"SearchConfig.speed_scales: values must be positive, got {self.speed_scales}")
        if not self.keep_lane_tolerance > 0:
            raise ValueError(f"SearchConfig.keep_lane_tolerance: must be > 0 [m], got {self.keep_lane_tolerance!r}")
        if self.lateral_offsets and not self.keep_lane_tolerance < min(self.lateral_offsets):
            raise ValueError(f"SearchConfig.keep_lane_tolerance ({self.keep_lane_tolerance} m) must be below the "
                             f"smallest lateral offset ({min(self.lateral_offsets)} m), or that lateral family would "
                             f"count as keeping the lane")
        if any(a <= 0 or not 0 <= f < 1 for a, f in self.brake_hold):
            raise ValueError(f"SearchConfig.brake_hold: need decel > 0 and 0 <= fraction < 1, got {self.brake_hold}")


@dataclass(frozen=True)
class CandidateSpec:
    """How one candidate was generated (fields that do not apply are 0 / 1).

    Attributes:
        family: see the module docstring.
        decel: deceleration [m/s^2] (negative values: acceleration).
        hold_fraction: fraction of the current speed held after braking (``brake_hold``).
        speed_scale: scale of the negative's speed profile.
        lateral_offset: final lateral offset [m], left > 0.
        lateral_duration: time to reach it [s].
    """

    family: str
    decel: float = 0.0
    hold_fraction: float = 0.0
    speed_scale: float = 1.0
    lateral_offset: float = 0.0
    lateral_duration: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields."""
        return asdict(self)


@dataclass(frozen=True)
class CandidateSet:
    """A group of candidates: ``trajectories (G, num_poses, 3)`` ego frame, one :class:`CandidateSpec` each."""

    trajectories: np.ndarray
    specs: tuple[CandidateSpec, ...]

    def __post_init__(self) -> None:
        if len(self.trajectories) != len(self.specs):
            raise ValueError(f"CandidateSet: {len(self.trajectories)} trajectories but {len(self.specs)} specs")

    def __len__(self) -> int:
        return len(self.specs)


# ------------------------------------------------------------------------------------------------ path + profiles
@dataclass(frozen=True)
class _Path:
    s: np.ndarray  # (K,) arc length [m]
    xy: np.ndarray  # (K, 2)
    yaw: np.ndarray  # (K,) unwrapped [rad]

    def at(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points ``(..., 2)`` and headings ``(...)`` at arc lengths ``s`` (clipped at 0)."""
        s = np.maximum(np.asarray(s, dtype=np.float64), 0.0)
        x = np.interp(s, self.s, self.xy[:, 0])
        y = np.interp(s, self.s, self.xy[:, 1])
        return np.stack([x, y], axis=-1), np.interp(s, self.s, self.yaw)


def negative_path(negative: np.ndarray, extension: float = 1000.0) -> tuple[_Path, np.ndarray]:
    """Path of the negative and its arc length at each pose.

    Args:
        negative: ``(P, 3)`` ego-frame poses.
        extension: straight extension past the last pose along its heading [m].

    Returns:
        ``(path, s_poses (P,))``: the path (origin + poses, repeated points merged, extended) and the arc length
        [m] of each pose of the negative along it.
    """
    neg = np.asarray(negative, dtype=np.float64)
    pts = np.concatenate([np.zeros((1, 2)), neg[:, :2]], axis=0)
    yaws = np.unwrap(np.concatenate([[0.0], neg[:, 2]]))
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    s_all = np.concatenate([[0.0], np.cumsum(seg)])
    keep = np.concatenate([[True], seg > 1e-6])
    s_k, xy_k, yaw_k = s_all[keep], pts[keep], yaws[keep]
    if not keep[-1]:  # the last pose repeats: its heading wins for the extension
        yaw_k = yaw_k.copy()
        yaw_k[-1] = yaws[-1]
    end = xy_k[-1] + extension * np.array([math.cos(yaw_k[-1]), math.sin(yaw_k[-1])])
    path = _Path(
        s=np.concatenate([s_k, [s_k[-1] + extension]]),
        xy=np.concatenate([xy_k, end[None]], axis=0),
        yaw=np.concatenate([yaw_k, [yaw_k[-1]]]),
    )
    return path, s_all[1:]


def _brake_profile(v0: float, decel: float, times: np.ndarray, hold_speed: float = 0.0) -> np.ndarray:
    """Arc length [m] at ``times`` decelerating at ``decel`` from ``v0`` down to ``hold_speed``, then constant."""
    v0 = max(v0, 0.0)
    hold = min(max(hold_speed, 0.0), v0)
    t_b = (v0 - hold) / decel
    tb = np.minimum(times, t_b)
    return v0 * tb - 0.5 * decel * tb**2 + hold * np.maximum(times - t_b, 0.0)


def _quintic(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u**3 * (10 - 15 * u + 6 * u**2)


def _compose(path: _Path, s: np.ndarray, d: np.ndarray, fine_times: np.ndarray, pose_idx: np.ndarray) -> np.ndarray:
    """Poses ``(P, 3)`` from arc length ``s (F,)`` and lateral offset ``d (F,)`` on the fine grid."""
    base, yaw = path.at(s)
    normal = np.stack([-np.sin(yaw), np.cos(yaw)], axis=-1)
    xy = base + d[:, None] * normal
    ds, dd = np.gradient(s, fine_times), np.gradient(d, fine_times)
    moving = np.hypot(ds, dd) > 1e-3
    heading = np.where(moving, yaw + np.arctan2(dd, np.where(moving, np.maximum(ds, 1e-9), 1.0)), yaw)
    # while stopped, keep the heading of the last motion (the path heading before any motion)
    last = np.maximum.accumulate(np.where(moving, np.arange(len(moving)), -1))
    heading = np.where(moving | (last < 0), heading, heading[np.maximum(last, 0)])
    out = np.concatenate([xy, heading[:, None]], axis=1)[pose_idx]
    out[:, 2] = (out[:, 2] + np.pi) % (2 * np.pi) - np.pi
    return out


def generate_candidates(
    negative: np.ndarray,
    speed: float,
    config: PDMConfig = PDMConfig(),
    search: SearchConfig = SearchConfig(),
    extra: Sequence[tuple[np.ndarray, CandidateSpec]] = (),
) -> CandidateSet:
    """All counterfactual candidates of one decision state (index 0 is the negative itself).

    Args:
        negative: ``(num_poses, 3)`` driven trajectory, ego frame [m, m, rad].
        speed: current ego speed along its heading [m/s].
        config: trajectory sampling (``num_poses``, ``pose_interval``, ``sim_dt``).
        search: families and their parameters.
        extra: further ``(trajectory (num_poses, 3), spec)`` pairs (e.g. the reference planner's), appended.

    Returns:
        :class:`CandidateSet` of ``G`` candidates ``(G, num_poses, 3)``.
    """
    neg = np.asarray(negative, dtype=np.float64)
    if neg.shape != (config.num_poses, 3) or not np.all(np.isfinite(neg)):
        raise ValueError(f"negative: expected finite ({config.num_poses}, 3) poses, got shape {neg.shape}")
    if not math.isfinite(speed):
        raise ValueError(f"speed: must be finite, got {speed!r}")
    v0 = max(float(speed), 0.0)
    step = int(round(config.pose_interval / config.sim_dt))
    fine_t = np.arange(config.num_poses * step + 1) * config.sim_dt  # (F,) 0 .. horizon
    pose_idx = np.arange(1, config.num_poses + 1) * step
    path, s_poses = negative_path(neg)
    s_neg = np.interp(fine_t, np.concatenate([[0.0], fine_t[pose_idx]]), np.concatenate([[0.0], s_poses]))
    v_neg = np.gradient(s_neg, fine_t)
    zero = np.zeros_like(fine_t)

    trajs: list[np.ndarray] = [neg.copy()]
    specs: list[CandidateSpec] = [CandidateSpec("log")]

    def add(s: np.ndarray, d: np.ndarray, spec: CandidateSpec) -> None:
        trajs.append(_compose(path, s, d, fine_t, pose_idx))
        specs.append(spec)

    for a in search.brake_decels:
        add(_brake_profile(v0, a, fine_t), zero, CandidateSpec("brake", decel=a))
    for a, frac in search.brake_hold:
        add(_brake_profile(v0, a, fine_t, frac * v0), zero, CandidateSpec("brake_hold", decel=a, hold_fraction=frac))
    for k in search.speed_scales:
        ramp = np.minimum(fine_t / max(search.speed_ramp, 1e-9), 1.0)
        v = v_neg * (1.0 + (k - 1.0) * ramp)
        s = np.concatenate([[0.0], np.cumsum(0.5 * (v[1:] + v[:-1]) * np.diff(fine_t))])
        add(s, zero, CandidateSpec("speed_scale", speed_scale=k))
    for a in search.accelerations:
        add(v0 * fine_t + 0.5 * a * fine_t**2, zero, CandidateSpec("accelerate", decel=-a))
    for mag in search.lateral_offsets:
        for sign in (1.0, -1.0):
            for dur in search.lateral_durations:
                d = sign * mag * _quintic(fine_t / dur)
                add(s_neg, d, CandidateSpec("lateral", lateral_offset=sign * mag, lateral_duration=dur))
            dur = search.lateral_durations[0]
            d = sign * mag * _quintic(fine_t / dur)
            for a in search.combo_decels:
                add(
                    _brake_profile(v0, a, fine_t),
                    d,
                    CandidateSpec("lateral_brake", decel=a, lateral_offset=sign * mag, lateral_duration=dur),
                )
    for traj, spec in extra:
        traj = np.asarray(traj, dtype=np.float64)
        if traj.shape != neg.shape:
            raise ValueError(f"extra candidate {spec.family}: expected shape {neg.shape}, got {traj.shape}")
        trajs.append(traj.copy())
        specs.append(spec)
    return CandidateSet(np.stack(trajs), tuple(specs))


# ------------------------------------------------------------------------------------------------------ selection
def result_arrays(result: Any) -> dict[str, np.ndarray]:
    """``{field: (G,) array}`` of the scorer result's :data:`RESULT_FIELDS` that it has."""
    out = {}
    for name in RESULT_FIELDS:
        if hasattr(result, name):
            out[name] = np.asarray(getattr(result, name))
    return out


def score_dict(arrays: dict[str, np.ndarray], i: int) -> dict[str, Any]:
    """Candidate ``i``'s scores as a plain JSON-able dict: floats, bools, and None where a value is unavailable
    (NaN: no map, no collision time; ``colliding_agent_id`` -1)."""
    out: dict[str, Any] = {}
    for name, arr in arrays.items():
        v = arr[i]
        if arr.dtype == bool:
            out[name] = bool(v)
        elif name == "colliding_agent_id":
            out[name] = None if int(v) < 0 else int(v)
        else:
            out[name] = None if math.isnan(float(v)) else float(v)
    return out


@dataclass(frozen=True)
class Selection:
    """Outcome of :func:`choose_positive`.

    Attributes:
        index: chosen candidate index, or None.
        safe: ``(G,)`` bool, verified safe.
        aggregate: ``(G,)`` the score used to rank (PDMS or the map-free aggregate).
        deviation: ``(G,)`` mean L2 distance to the negative over the poses [m].
        dac_checked: False for map-less scenes.
        reason_code / reason: why no positive (empty when one was found).
        failure_counts: how many candidates (excluding the negative) failed each check.
        keep_lane: ``(G,)`` bool, every pose within ``keep_lane_tolerance`` of the negative's path.
    """

    index: int | None
    safe: np.ndarray
    aggregate: np.ndarray
    deviation: np.ndarray
    dac_checked: bool
    reason_code: str = ""
    reason: str = ""
    failure_counts: dict[str, int] = field(default_factory=dict)
    keep_lane: np.ndarray | None = None


def choose_positive(
    candidates: CandidateSet,
    arrays: dict[str, np.ndarray],
    has_map: bool,
    config: PDMConfig = PDMConfig(),
    search: SearchConfig = SearchConfig(),
    verification: "Verification | None" = None,
) -> Selection:
    """Pick the verified-safe positive (never index 0, the negative) or explain why there is none.

    Args:
        candidates: the group (index 0: the negative).
        arrays: the scorer's per-candidate arrays (:func:`result_arrays`).
        has_map: whether the scene has a map (DAC / DDC / PDMS available).
        config: scorer configuration (map-free aggregate weights).
        search: selection knobs.
        verification: the execution checks of :func:`counterfactual.verify.verify_candidates`; None checks the
            scorer's arrays only (check (a)), e.g. for a quick look without the closed loop.
    """
    from rewards.pdm import map_free_score  # local: keeps this module's import free of the compiled scorer

    trajs = candidates.trajectories
    neg = trajs[0]
    deviation = np.linalg.norm(trajs[:, :, :2] - neg[None, :, :2], axis=-1).mean(axis=1)
    scorer_ok = scorer_check(arrays, has_map, search.require_no_contact)
    safe = (scorer_ok if verification is None else verification.safe).copy()
    safe[0] = False
    keep_lane = np.abs(lateral_offsets(neg, trajs)).max(axis=1) < search.keep_lane_tolerance
    if has_map:
        agg = np.nan_to_num(arrays["pdms"].astype(np.float64), nan=0.0)
    else:
        # Without a map there is no route EP; the search ranks with EP measured along the negative's own path (the
        # driven intent), so that, as PDMS does where a map exists, a verified-safe candidate that keeps going ranks
        # above one that stops. Safety is decided by verified_safe above, not by this ranking.
        path, _ = negative_path(neg)
        prog = project_onto_path(trajs[:, -1, :2], path.xy)[0]
        agg = map_free_score(arrays["nc"], arrays["ttc"], arrays["comfort"], config, progress=prog)
    others = np.arange(len(trajs)) != 0
    collide = (arrays["nc"] < 1.0) | (arrays["collision"].astype(bool) if search.require_no_contact else False)
    ttc_fail = arrays["ttc"] < 1.0
    dac_fail = (arrays["dac"] < 1.0) if has_map else np.zeros(len(trajs), dtype=bool)
    counts = {
        "candidates": int(others.sum()),
        "collide": int((collide & others).sum()),
        "ttc_violation": int((ttc_fail & others).sum()),
        "offroad": int((dac_fail & others).sum()),
    }
    if has_map:
        counts["wrong_way"] = int(((arrays["ddc"] < 1.0) & others).sum())
    if verification is not None:
        counts.update({f"fails_{k}": v for k, v in verification.failure_counts(others).items()})
    if safe.any():
        pool = safe & keep_lane if (safe & keep_lane).any() else safe
        best = agg[pool].max()
        tied = np.flatnonzero(pool & (agg >= best - search.score_tolerance))
        idx = int(tied[np.argmin(deviation[tied])])
        return Selection(idx, safe, agg, deviation, has_map, failure_counts=counts, keep_lane=keep_lane)
    ddc_fail = (arrays["ddc"] < 1.0) if has_map else np.zeros(len(trajs), dtype=bool)
    code, reason = _no_safe_reason(candidates, collide, ttc_fail, dac_fail, others, ddc_fail)
    if verification is not None and (scorer_ok & others).any():
        passed = scorer_ok & others
        fails = verification.failure_counts(passed)
        code = "execution"
        reason = (f"{int(passed.sum())}/{int(others.sum())} candidates pass the scorer, but none survives execution: "
                  + ", ".join(f"{fails[k]} fail {k}" for k in ("raw_poses", "closed_loop", "clearance", "no_oncoming")))
    return Selection(None, safe, agg, deviation, has_map, code, reason, counts, keep_lane)


def _no_safe_reason(
    candidates: CandidateSet, collide: np.ndarray, ttc_fail: np.ndarray, dac_fail: np.ndarray, others: np.ndarray,
    ddc_fail: np.ndarray | None = None,
) -> tuple[str, str]:
    """``(reason_code, sentence)`` for a group without a candidate passing the scorer check."""
    n = int(others.sum())
    ddc_fail = np.zeros_like(collide) if ddc_fail is None else ddc_fail
    families = np.array([s.family for s in candidates.specs])
    braking = others & np.isin(families, ("brake", "brake_hold"))
    if np.all(collide[others]):
        return "all_collide", f"all {n} candidates collide"
    if np.all((collide | ttc_fail)[others]) and np.all(ttc_fail[braking] | collide[braking]):
        return "ttc_violation", (
            f"no candidate keeps TTC: {int((collide & others).sum())}/{n} collide, "
            f"{int((ttc_fail & ~collide & others).sum())}/{n} more violate TTC (all braking candidates included)"
        )
    if np.all((collide | ttc_fail | dac_fail)[others]) and np.any((dac_fail & ~collide & ~ttc_fail)[others]):
        return "offroad", (
            f"every collision- and TTC-free candidate leaves the drivable area "
            f"({int((dac_fail & ~collide & ~ttc_fail & others).sum())}/{n})"
        )
    rest = ~collide & ~ttc_fail & ~dac_fail
    if np.all((~rest | ddc_fail)[others]) and np.any((rest & ddc_fail)[others]):
        return "wrong_way", (
            f"every collision-, TTC- and off-road-free candidate drives against the traffic direction (DDC < 1, "
            f"{int((rest & ddc_fail & others).sum())}/{n})"
        )
    return "mixed", (
        f"no candidate passes all checks: {int((collide & others).sum())}/{n} collide, "
        f"{int((ttc_fail & others).sum())}/{n} violate TTC, {int((dac_fail & others).sum())}/{n} leave the drivable area, "
        f"{int((ddc_fail & others).sum())}/{n} drive against the traffic direction"
    )

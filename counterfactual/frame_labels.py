"""Decision labels from the geometry at any frame: is there a projected conflict at ``t``, and which?

The miner labels risky moments it found with hindsight (a logged collision, a near-miss), so its labels exist only
where something went wrong. A sampled decision frame of an expert log (the SFT data's ``kind="expert"`` rows) needs a
label too, and it must say what the scene holds **there**: a benign scene or an early frame of an accident scene is
not hazard-free by definition, nor is it a hazard by its scenario type. :func:`frame_label` decides from the geometry
visible at ``t`` only (no logged future of the other road users, no scenario type):

* every agent observed at ``t`` is projected at constant velocity and the ego along its own path at its current
  speed (:mod:`counterfactual.projection`, as the label's ``ttc_s``) over ``LabelConfig.cv_horizon`` (5 s);
* per agent: the projected time to collision (first box overlap, ``inf`` when none) and the **projected closest
  approach** (smallest box-to-box gap [m] over the projection and its time [s]);
* an agent is a **projected conflict** when its boxes overlap within the horizon, or when it passes within
  :attr:`FrameLabelConfig.conflict_gap_m` (1.0 m, the bank's near-miss gap, ``envs.scenes.bank.outcomes``) at a
  time ``> 0`` (closing in; a pass already behind us is no conflict). A near-miss in progress is a conflict;
* the risk agent is the conflict with the earliest **conflict time** (the TTC, else the time of the closest
  approach), ties to the smaller gap; its risk level is :func:`counterfactual.labels.risk_level_of` of that time and
  the closing speed (a projected pass within 1 m is treated as a contact at its time of closest approach);
* the rest of the label is the miner's: agent class, sector, distances and closing speed
  (:func:`~counterfactual.labels.relate_agent`), conflict type (:func:`~counterfactual.labels.classify_at` with
  lane changes judged on the history ``[t - lookback, t]`` only), and the corrective action
  (:func:`~counterfactual.labels.corrective_action`) that turns the **keep-speed projection** (the ego along its path
  at its current speed: the negative the projection assumes) into the ego's **planned trajectory** (the logged
  4 s future by default: in the SFT data it is the expert's target, verified safe). The explanation states the
  projected TTC when one is projected, else no time.

No projected conflict -> the no-hazard label (:data:`counterfactual.language.NO_HAZARD_EXPLANATION`, risk ``none``,
action ``keep_lane``, no agent class, sector or conflict type).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from counterfactual.labels import (
    LabelConfig,
    classify_at,
    corrective_action,
    relate_agent,
    risk_level_of,
    sector_of,
)
from counterfactual.language import NO_HAZARD_EXPLANATION, NO_HAZARD_FIELDS, explain
from counterfactual.projection import own_path_track, projection_times, time_to_collision
from counterfactual.schema import SafetyLabel
from envs.scenes.scene import Scene, designated_hazard
from rewards.geometry import box_corners, box_distance, vehicle_corners, world_to_local

FRAME_LABEL_FIELDS = ("risk_agent_class", "sector", "risk_level", "conflict_type", "action")
"""The categorical fields :meth:`FrameLabel.fields` gives (those of ``counterfactual.accuracy.LANGUAGE_FIELDS``)."""


@dataclass(frozen=True)
class FrameLabelConfig:
    """Settings of :func:`frame_label` (the label thresholds themselves are :class:`LabelConfig`'s)."""

    conflict_gap_m: float = 1.0
    """A projected closest approach below this box-to-box gap [m] at a time > 0 is a projected conflict (equal to
    the bank's near-miss gap, ``envs.scenes.bank.outcomes.NEAR_MISS_GAP``)."""
    pose_interval_s: float = 0.5
    """Time between the poses of the planned trajectory and of the keep-speed projection [s]."""
    labels: LabelConfig = field(default_factory=LabelConfig)
    """Thresholds of the label derivation (projection horizon and step, risk windows, sectors, conflict types)."""

    def __post_init__(self) -> None:
        if not (self.conflict_gap_m >= 0 and math.isfinite(self.conflict_gap_m)):
            raise ValueError(f"FrameLabelConfig.conflict_gap_m: expected a finite value >= 0, got {self.conflict_gap_m!r}")
        if not (self.pose_interval_s > 0):
            raise ValueError(f"FrameLabelConfig.pose_interval_s: expected > 0, got {self.pose_interval_s!r}")


@dataclass(frozen=True)
class Projection:
    """The projected conflicts of every agent observed at one frame (see the module docstring).

    Attributes:
        agent_ids: ``(N,)`` ids of the agents observed at ``t``.
        ttc_s: ``(N,)`` projected time to collision [s], ``inf`` when the boxes never overlap within the horizon.
        min_gap_m: ``(N,)`` smallest projected box-to-box gap [m] (0 on overlap).
        min_gap_time_s: ``(N,)`` time of that gap [s].
        conflict: ``(N,)`` bool, a projected conflict (overlap, or a gap below ``conflict_gap_m`` at a time > 0).
        conflict_time_s: ``(N,)`` the TTC, else the time of the closest approach, ``inf`` where no conflict [s].
    """

    agent_ids: np.ndarray
    ttc_s: np.ndarray
    min_gap_m: np.ndarray
    min_gap_time_s: np.ndarray
    conflict: np.ndarray
    conflict_time_s: np.ndarray

    def risk_agent(self) -> int | None:
        """Index of the risk agent: the earliest conflict time, ties to the smaller gap; None without conflict."""
        idx = np.flatnonzero(self.conflict)
        if not len(idx):
            return None
        return int(idx[np.lexsort((self.min_gap_m[idx], self.conflict_time_s[idx]))[0]])


def project_frame(scene: Scene, t: int, config: FrameLabelConfig = FrameLabelConfig()) -> Projection:
    """Project every agent observed at ``t`` against the ego's path (module docstring); vectorised over agents."""
    if not 0 <= int(t) < scene.num_frames:
        raise ValueError(f"scene {scene.scene_id}: frame {t} outside the log (0 .. {scene.num_frames - 1})")
    t = int(t)
    idx = np.flatnonzero(scene.agent_valid[:, t])
    ids = np.asarray(scene.agent_ids)[idx] if len(idx) else np.zeros(0, dtype=np.int64)
    if not len(idx):
        empty = np.zeros(0)
        return Projection(ids, empty, empty, empty, np.zeros(0, dtype=bool), empty)
    lc = config.labels
    taus = projection_times(lc.cv_horizon, lc.cv_step)
    track = own_path_track(scene.ego_poses, scene.ego_velocities, t, taus)  # (K, 3)
    centers = scene.agent_poses[idx, t]  # (N, 3) box centres
    vels = scene.agent_velocities[idx, t]  # (N, 2)
    sizes = scene.agent_sizes[idx]  # (N, 2)
    ttc = time_to_collision(track, scene.ego_params, centers, vels, sizes, taus)  # (N,)
    future = np.repeat(centers[:, None, :], len(taus), axis=1)  # (N, K, 3)
    future[..., :2] += taus[None, :, None] * vels[:, None, :]
    agent_boxes = box_corners(future, sizes[:, 0, None], sizes[:, 1, None])  # (N, K, 4, 2)
    gaps = box_distance(vehicle_corners(track, scene.ego_params)[None], agent_boxes)  # (N, K)
    k_min = np.argmin(gaps, axis=1)
    min_gap = gaps[np.arange(len(idx)), k_min]
    gap_time = taus[k_min]
    near = (min_gap < config.conflict_gap_m) & (gap_time > 0)
    conflict = np.isfinite(ttc) | near
    conflict_time = np.where(np.isfinite(ttc), ttc, np.where(near, gap_time, np.inf))
    return Projection(ids, ttc, min_gap, gap_time, conflict, conflict_time)


def keep_speed_trajectory(scene: Scene, t: int, config: FrameLabelConfig = FrameLabelConfig(),
                          num_poses: int = 8) -> np.ndarray:
    """``(num_poses, 3)`` ego-frame rear-axle poses [m, m, rad] of the ego keeping its current speed along its own
    path (the projection's ego), every ``config.pose_interval_s``."""
    taus = np.arange(1, num_poses + 1) * config.pose_interval_s
    world = own_path_track(scene.ego_poses, scene.ego_velocities, t, taus)
    return world_to_local(world, scene.ego_poses[t])


def frame_seed(base_seed: int, scene_id: str, frame: int) -> int:
    """Deterministic explanation seed of a frame label (32 bit)."""
    return (int(base_seed) * 1_000_003 + zlib.crc32(f"{scene_id}|{frame}|frame".encode())) % (2**32)


@dataclass(frozen=True)
class FrameLabel:
    """The decision label of one frame.

    Attributes:
        scene_id, frame: where.
        hazard: the structured label of the risk agent, or None when the scene holds no projected conflict.
        explanation: ``hazard.explanation``, or :data:`counterfactual.language.NO_HAZARD_EXPLANATION`.
        projection: every agent's projection at the frame (diagnostics).
    """

    scene_id: str
    frame: int
    hazard: SafetyLabel | None
    explanation: str
    projection: Projection = field(repr=False)

    @property
    def risk_level(self) -> str:
        return "none" if self.hazard is None else self.hazard.risk_level

    def fields(self) -> dict[str, str | None]:
        """``{field: value}`` of :data:`FRAME_LABEL_FIELDS`; None for a field the no-hazard label does not name
        (exactly what :func:`counterfactual.language.parse_explanation` reads from :attr:`explanation`)."""
        if self.hazard is None:
            return {name: NO_HAZARD_FIELDS.get(name) for name in FRAME_LABEL_FIELDS}
        d = self.hazard.to_dict()
        return {name: d[name] for name in FRAME_LABEL_FIELDS}


def frame_label(scene: Scene, t: int, trajectory: np.ndarray | None = None,
                config: FrameLabelConfig = FrameLabelConfig(), seed: int = 0) -> FrameLabel:
    """The decision label of ``scene`` at frame ``t`` from the geometry visible there (module docstring).

    Args:
        scene: the scene.
        t: decision frame.
        trajectory: ``(8, 3)`` the ego's planned trajectory, ego frame at ``t`` [m, m, rad] (poses every
            ``config.pose_interval_s``); default: the logged future (:func:`envs.sim.scoring.trajectory_from_log`,
            ``ValueError`` when the log ends within its horizon). It only sets the corrective action.
        config: settings.
        seed: base seed of the explanation (with the scene id and frame: :func:`frame_seed`).
    """
    projection = project_frame(scene, t, config)
    k = projection.risk_agent()
    if k is None:
        return FrameLabel(scene.scene_id, int(t), None, NO_HAZARD_EXPLANATION, projection)
    lc = config.labels
    agent_id = int(projection.agent_ids[k])
    rel = relate_agent(scene, t, agent_id, lc)
    conflict, source = classify_at(scene, t, agent_id, int(t), lc)
    if trajectory is None:
        from envs.sim.scoring import trajectory_from_log

        trajectory = trajectory_from_log(scene, t)
    trajectory = np.asarray(trajectory, dtype=np.float64)
    negative = keep_speed_trajectory(scene, t, config, num_poses=len(trajectory))
    action, lateral, progress = corrective_action(negative, trajectory, conflict, lc, config.pose_interval_s)
    risk = risk_level_of(float(projection.conflict_time_s[k]), rel.closing_speed_mps, lc)
    ttc = float(projection.ttc_s[k])
    label = SafetyLabel(
        risk_agent_id=agent_id, risk_agent_class=rel.agent_class, sector=sector_of(rel.bearing_deg, lc),
        distance_m=rel.distance_m, bearing_deg=rel.bearing_deg, relative_heading_deg=rel.relative_heading_deg,
        closing_speed_mps=rel.closing_speed_mps, ttc_s=ttc, time_to_contact_s=math.inf, risk_level=risk,
        conflict_type=conflict, conflict_source=source, action=action, lateral_offset_m=lateral,
        progress_change_m=progress, time_kind="projected_ttc" if math.isfinite(ttc) else "none",
        explanation_seed=frame_seed(seed, scene.scene_id, int(t)),
    )
    text = explain(label, label.explanation_seed)
    d: dict[str, Any] = label.to_dict()
    d["explanation"] = text
    return FrameLabel(scene.scene_id, int(t), SafetyLabel(**d), text, projection)


# ---------------------------------------------------------------------------------------------- sampled frames
def safe_log_frames(scene: Scene, frames: Any) -> list[int]:
    """The frames whose logged 4 s trajectory is safe as executed: no contact, NC = TTC = 1 and DAC = 1 (with a map)
    under the PDM scorer (the tracked log)."""
    from envs.sim.scoring import problem_from_scene, trajectory_from_log
    from rewards.config import PDMConfig
    from rewards.pdm import score_states
    from rewards.tracking import simulate_candidates

    pdm = PDMConfig()
    out = []
    for t in frames:
        problem = problem_from_scene(scene, t, pdm)
        traj = trajectory_from_log(scene, t, pdm)
        res = score_states(problem, simulate_candidates(problem.ego, traj[None], pdm), pdm)
        dac_ok = scene.map is None or res.dac[0] == 1.0
        if not res.collision[0] and res.nc[0] == 1.0 and res.ttc[0] == 1.0 and dac_ok:
            out.append(int(t))
    return out


FRAME_SAMPLING = ("even", "hazard_window", "hazard_dense")
"""Rules of :func:`sample_frames`: ``"even"`` (the default; up to ``per_scene`` safe frames evenly spread over the
scene), ``"hazard_window"`` (most of them spread over the hazard window, :func:`hazard_window`) or
``"hazard_dense"`` (every safe frame of a designated hazard's window, every 0.2 s over 4 s, plus one outside it; one
frame in a scene without a designated hazard: the decisions per scene follow the length of its hazard window,
``env=world_v2``'s rule)."""


@dataclass(frozen=True)
class WindowConfig:
    """Settings of the ``"hazard_window"`` and ``"hazard_dense"`` rules of :func:`sample_frames` (none of them looks at
    a label)."""

    before_s: float = 4.0
    """The ``"hazard_window"`` rule's window opens this long [s] before the closest approach (on the varied bank,
    SYNTHETIC, the projection names a hazard at sampled frames 0-4 s before it and at none later or earlier; measured
    in ``docs/safety_labels.md#label-honesty``); the ``"hazard_dense"`` rule's opens ``dense_before_s`` (also 4 s)
    before it."""
    after_s: float = 0.0
    """... and closes this long [s] after it."""
    stride_s: float = 0.5
    """``"hazard_window"`` rule: time between candidate frames inside the window [s] (outside: ``sample_frames``'
    ``stride_s``)."""
    outside_share: float = 0.25
    """Share of ``per_scene`` (rounded) kept for frames outside the window, evenly spread, so that "no hazard" stays
    a real answer; a side with too few safe candidates leaves its places to the other (``"hazard_dense"``: at least
    one frame, and no place moves)."""
    dense_stride_s: float = 0.2
    """``"hazard_dense"`` rule: time between the window's candidate frames [s], every one of them kept where safe
    (21 candidates over a 4 s window). Measured on the varied bank (SYNTHETIC, the tuning seeds: 29 scored, lookups
    fitted on 37; the selection replayed on cached frame labels, the 0.5 s figure confirmed by the audit): 0.5 s
    leaves the (type, lead) lookup at 70.6% language accuracy, 0.4 s 69.4%, 0.3 s 68.5%, 0.2 s 67.8%, 0.1 s 67.1%
    (docs/safety_labels.md#decision-composition-the-hazard_dense-rule). ``dense_stride_s=0.1, dense_before_s=5.0`` is
    the rule issue #28's tuning criterion chose on seeds 29 / 37 (``python -m benchmarks.bench_decision_rules``); on
    new held-out seeds it met every target on three of four cells, not on road families 113 / 127 (lookup language
    71.0%), so it is not the default (docs/safety_labels.md#decision-stride-and-window-tuning-seeds)."""
    dense_before_s: float = 4.0
    """``"hazard_dense"`` rule: its window opens this long [s] before the closest approach (:func:`dense_window`;
    ``before_s`` is the ``"hazard_window"`` rule's, the same 4 s by default)."""

    def __post_init__(self) -> None:
        for name in ("before_s", "after_s", "dense_before_s"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"WindowConfig.{name}: expected a finite value >= 0, got {value!r}")
        for name in ("stride_s", "dense_stride_s"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"WindowConfig.{name}: expected a finite value > 0, got {value!r}")
        if not 0 <= self.outside_share <= 1:
            raise ValueError(f"WindowConfig.outside_share: expected a value in [0, 1], got {self.outside_share!r}")


def closest_approach(scene: Scene) -> tuple[int | None, int | None]:
    """``(agent_id, frame)`` of the scene's hazard closest approach to the ego's logged box: the designated hazard
    agent's (``meta.extra["hazard_agent_id"]``, else ``meta.colliding_agent_id``) where the log holds it, else the
    closest approach of any agent; ``(None, None)`` when no agent is ever observed. Box-to-box gaps of the logs at
    every frame where the agent is observed (the first frame of the smallest gap, i.e. the first contact on a
    collision); from the logged geometry only, never from a label."""
    ids = np.asarray(scene.agent_ids)
    if not len(ids) or not scene.agent_valid.any():
        return None, None
    hazard = designated_hazard(scene)
    rows = np.arange(len(ids)) if hazard is None else np.flatnonzero(ids == hazard)
    ego = vehicle_corners(scene.ego_poses, scene.ego_params)  # (T, 4, 2)
    sizes = scene.agent_sizes[rows]  # (n, 2)
    boxes = box_corners(scene.agent_poses[rows], sizes[:, 0, None], sizes[:, 1, None])  # (n, T, 4, 2)
    gaps = np.where(scene.agent_valid[rows], box_distance(ego[None], boxes), np.inf)  # (n, T) [m]
    k, frame = np.unravel_index(int(np.argmin(gaps)), gaps.shape)
    return int(ids[rows[k]]), int(frame)


def hazard_window(scene: Scene, window: WindowConfig = WindowConfig()) -> tuple[int, int] | None:
    """``(first, last)`` frames (inclusive) of the hazard window: ``window.before_s`` before to ``window.after_s``
    after the closest approach (:func:`closest_approach`), clipped to the log; None when the scene has no agent."""
    _, frame = closest_approach(scene)
    if frame is None:
        return None
    first = max(0, frame - int(round(window.before_s / scene.dt)))
    last = min(scene.num_frames - 1, frame + int(round(window.after_s / scene.dt)))
    return first, last


def dense_window(scene: Scene, window: WindowConfig = WindowConfig()) -> tuple[int, int] | None:
    """``(first, last)`` frames (inclusive) of the ``"hazard_dense"`` rule's window: :func:`hazard_window` opened
    ``window.dense_before_s`` (4 s) before the closest approach; None when the scene has no agent."""
    return hazard_window(scene, replace(window, before_s=window.dense_before_s))


def _spread(frames: list[int], n: int) -> list[int]:
    """Up to ``n`` of ``frames`` evenly spread (all of them when there are no more than ``n``)."""
    if n <= 0:
        return []
    if len(frames) <= n:
        return list(frames)
    pick = np.linspace(0, len(frames) - 1, n).round().astype(int)
    return [frames[i] for i in pick]


def sample_frames(scene: Scene, stride_s: float = 1.0, per_scene: int = 4, min_history_s: float = 2.0,
                  sampling: str = "even", window: WindowConfig = WindowConfig()) -> list[int]:
    """The sampled decision frames of a scene, sorted: candidates every ``stride_s`` [s] from ``min_history_s`` [s]
    on whose 4 s future is logged, kept where the logged trajectory is safe (:func:`safe_log_frames`: the target
    trajectory of a sampled decision must be safe as executed; the scene around it may hold a hazard, which
    :func:`frame_label` names), then up to ``per_scene`` of them chosen by ``sampling`` (:data:`FRAME_SAMPLING`):

    * ``"even"``: evenly spread over the safe candidates;
    * ``"hazard_window"``: the candidates inside the hazard window are every ``window.stride_s`` (denser);
      ``per_scene - round(outside_share * per_scene)`` frames evenly spread over the safe candidates
      inside the hazard window (:func:`hazard_window`: around the hazard's closest approach to the ego), the rest
      evenly spread over those outside it; a side short of candidates leaves its places to the other, so a scene
      gives at least as many decisions as under ``"even"`` (more where the window's denser candidates are safe). The window comes from the logged geometry, never from the label;
    * ``"hazard_dense"``: a scene with a designated hazard (:func:`designated_hazard`: the varied bank's hazard agent,
      or the colliding agent) gives **every** safe candidate of its hazard window (:func:`dense_window`: from
      ``window.dense_before_s`` = 4 s before the closest approach to it; every ``window.dense_stride_s``, 0.2 s) plus
      ``max(1, round(outside_share * per_scene))`` frames evenly spread over the safe candidates outside it; a scene
      without one (normal driving) gives that many frames evenly spread. No place moves from one side to the other:
      the decisions per scene follow the safe length of the hazard window (a collision scene's window holds no safe
      frame, its moments are its pairs), so ``per_scene`` caps nothing but sets the outside count. From the logged
      geometry and the scene's kind only, never from a label.
    """
    if sampling not in FRAME_SAMPLING:
        raise ValueError(f"sampling: expected one of {FRAME_SAMPLING}, got {sampling!r}")
    if per_scene <= 0:
        return []
    from rewards.config import PDMConfig

    horizon = int(round(PDMConfig().horizon / scene.dt))
    stride = max(1, int(round(stride_s / scene.dt)))
    first = int(math.ceil(min_history_s / scene.dt))
    end = scene.num_frames - horizon
    candidates = set(range(first, end, stride))
    if sampling == "hazard_dense":
        return _dense_frames(scene, candidates, first, end, per_scene, window)
    bounds = hazard_window(scene, window) if sampling == "hazard_window" else None
    if bounds is not None:
        dense = max(1, int(round(window.stride_s / scene.dt)))
        candidates.update(range(max(first, bounds[0]), min(end, bounds[1] + 1), dense))
    safe = safe_log_frames(scene, sorted(candidates))
    if bounds is None or len(safe) <= per_scene:
        return _spread(safe, per_scene)
    inside = [t for t in safe if bounds[0] <= t <= bounds[1]]
    outside = [t for t in safe if not bounds[0] <= t <= bounds[1]]
    n_out = int(round(window.outside_share * per_scene))
    n_in = per_scene - n_out
    n_in, n_out = min(n_in, len(inside)), min(n_out, len(outside))
    spare = per_scene - n_in - n_out
    n_in += min(spare, len(inside) - n_in)
    n_out = min(per_scene - n_in, len(outside))
    return sorted(_spread(inside, n_in) + _spread(outside, n_out))


def _dense_frames(scene: Scene, candidates: set[int], first: int, end: int, per_scene: int,
                  window: WindowConfig) -> list[int]:
    """The ``"hazard_dense"`` rule of :func:`sample_frames` (see there): ``candidates`` are the frames every
    ``stride_s`` in ``[first, end)``."""
    n_out = max(1, int(round(window.outside_share * per_scene)))
    bounds = dense_window(scene, window) if designated_hazard(scene) is not None else None
    if bounds is None:
        return _spread(safe_log_frames(scene, sorted(candidates)), n_out)
    dense = max(1, int(round(window.dense_stride_s / scene.dt)))
    inside = range(max(first, bounds[0]), min(end, bounds[1] + 1), dense)
    outside = [t for t in sorted(candidates) if not bounds[0] <= t <= bounds[1]]
    return sorted(safe_log_frames(scene, list(inside)) + _spread(safe_log_frames(scene, outside), n_out))

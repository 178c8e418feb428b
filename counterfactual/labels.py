"""Structured safety labels: derivation from a scene (the schema itself, :class:`SafetyLabel` and its vocabularies,
lives in :mod:`counterfactual.schema`; accuracy against the labels in :mod:`counterfactual.accuracy`).

The schema is what the VLA learns to say and what "risk prediction accuracy" and "language accuracy" measure; it
is documented field by field in ``docs/safety_labels.md``.

All geometry is taken at the *decision frame* ``t`` in the ego frame at ``t`` (x forward, y left) unless stated.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

import numpy as np

from counterfactual.language import explain
from counterfactual.projection import closing_speed, own_path_track, projection_times, time_to_collision
from counterfactual.schema import NO_ACTION, SafetyLabel, join_action
from envs.scenes.scene import AgentClass, Scene, SceneMap
from rewards.geometry import polyline_arclength, rear_axle_to_center, wrap_angle

if TYPE_CHECKING:  # pragma: no cover
    from counterfactual.mining import RiskMoment

SCENARIO_HINTS: Mapping[str, str] = {
    "rear_end": "rear_end",
    "cut_in": "cut_in",
    "red_light_runner_left": "crossing",
    "red_light_runner_right": "crossing",
    "unprotected_left_turn": "left_turn",
    "pedestrian_occluded": "pedestrian",
    "head_on_drift": "head_on",
    "merge_conflict": "merge",
}
"""Scenario type -> conflict type, used only to break a geometric ambiguity (see :func:`classify_conflict`)."""

_YIELD_CONFLICTS = frozenset({"crossing", "left_turn", "merge", "pedestrian", "cyclist"})


@dataclass(frozen=True)
class LabelConfig:
    """Thresholds of the label derivation (defaults are the documented schema v2.1 values)."""

    front_half_angle_deg: float = 45.0
    """|bearing| <= this -> sector ``front`` [deg]."""
    rear_half_angle_deg: float = 45.0
    """|bearing| >= 180 - this -> sector ``rear`` [deg]; between the two: ``left`` (bearing > 0) / ``right``."""
    cv_horizon: float = 5.0
    """Time-to-collision projection horizon [s] (ego along its path, agents constant velocity); beyond it TTC is
    ``inf``."""
    cv_step: float = 0.1
    """Projection step [s]."""
    ttc_high: float = 1.5
    """TTC at or below this [s] (within ``time_tolerance``) -> risk ``high``."""
    ttc_medium: float = 3.0
    """TTC at or below this [s] (within ``time_tolerance``) -> at least ``medium``: a contact within the medium
    window, its end included, is at least a medium risk."""
    time_tolerance: float = 1e-6
    """Float tolerance of the risk boundaries [s]: a time ``T <= boundary + time_tolerance`` is inside the window, so
    30 frames * 0.1 s (``3.0000000000000004``) counts as 3.0 s. Far below the 0.1 s frame step."""
    fast_closing_speed: float = 8.0
    """Closing speed at or above this [m/s] raises ``low``/``medium`` risk one level."""
    same_direction_deg: float = 45.0
    """|relative heading| below this [deg]: same direction (rear_end / cut_in / merge)."""
    opposite_direction_deg: float = 135.0
    """|relative heading| at or above this [deg]: opposite direction (head_on / left_turn)."""
    ambiguity_deg: float = 10.0
    """Relative headings within this of a boundary [deg] are ambiguous (scenario hint may decide)."""
    lane_change_min: float = 1.0
    """A lateral excursion (see :func:`lateral_excursion`) of at least this [m] counts as a lane change."""
    lateral_ambiguity: float = 0.5
    """cut_in vs merge is ambiguous when the two lateral excursions differ by less than this [m]."""
    lookback: float = 3.0
    """Window before the decision time over which lane changes and turns are judged [s] (covers the observation
    history length)."""
    moment_lookback: float = 8.0
    """Window before a moment's earliest decision frame over which its lane changes are judged [s]
    (:func:`moment_conflict`; hindsight: a ramp vehicle that merged 5 s before the crash still made a merge)."""
    left_turn_yaw_deg: float = 30.0
    """Ego heading change to the left of at least this [deg] from ``t - lookback`` to ``t + horizon`` (its driven
    path) marks an ego left turn."""
    horizon: float = 4.0
    """Future of the driven path used for the ego's turn [s]."""
    swerve_threshold: float = 0.25
    """|lateral offset| of the positive from the negative's path at or above this [m] -> the action has a lateral
    part (``swerve_left`` / ``swerve_right``, alone or compound). 0.25 m separates the candidates that follow the
    negative's path (re-timed: offset ~0) from the smallest lateral family of the search (0.5 m,
    ``SearchConfig.lateral_offsets``), so every lateral evasion is named as one; equal to
    ``SearchConfig.keep_lane_tolerance`` (checked by ``MinerConfig``), so the search's keep-lane tier is exactly the
    positives without a lateral part."""
    progress_abs: float = 1.0
    """Progress difference [m] (and ...)"""
    progress_rel: float = 0.15
    """... fraction of the negative's progress, whichever is larger, that counts as slower / faster."""
    brake_speed_drop: float = 2.0
    """A positive whose speed (pose to pose) falls at least this far below the negative's at some pose [m/s] brakes
    (or yields), also when its progress differs by less than the progress margin (short, hard braking)."""
    merge_point_tolerance: float = 0.5
    """Road lanes whose centrelines end within this of each other [m] converge; the one that is not the straight
    continuation of the merged lane is an on-ramp, and a same-direction conflict with a road user coming from it is
    a ``merge`` (:func:`lanes_merge`)."""


# ---------------------------------------------------------------------------------------------------- rules
def sector_of(bearing_deg: float, config: LabelConfig = LabelConfig()) -> str:
    """Sector of a bearing [deg] (0 ahead, positive left): front / left / right / rear."""
    b = float(bearing_deg)
    if abs(b) <= config.front_half_angle_deg:
        return "front"
    if abs(b) >= 180.0 - config.rear_half_angle_deg:
        return "rear"
    return "left" if b > 0 else "right"


def risk_level_of(ttc_s: float, closing_speed_mps: float, config: LabelConfig = LabelConfig()) -> str:
    """Risk level from a time to collision [s] and the closing speed [m/s].

    Closed windows: ``inf`` TTC -> ``none``; TTC <= ``ttc_high`` -> ``high``; <= ``ttc_medium`` -> ``medium``; else
    ``low`` (each boundary widened by ``time_tolerance`` [s] against float error: 30 frames of 0.1 s are 3.0 s); a
    closing speed >= ``fast_closing_speed`` raises ``low`` / ``medium`` by one level.
    """
    if not math.isfinite(ttc_s):
        return "none"
    if ttc_s <= config.ttc_high + config.time_tolerance:
        return "high"
    level = "medium" if ttc_s <= config.ttc_medium + config.time_tolerance else "low"
    if closing_speed_mps >= config.fast_closing_speed:
        level = {"low": "medium", "medium": "high"}[level]
    return level


def lateral_excursion(poses: np.ndarray) -> float:
    """Sideways displacement of a track beyond what its own turning explains [m].

    In the frame of the first pose, the end point lies ``y_end`` to the side and ``c`` (chord) away; a
    constant-curvature arc with the track's net heading change ``dpsi`` would put it at ``c * sin(dpsi / 2)``. The
    excursion is ``|y_end - c * sin(dpsi / 2)|``: ~0 for driving straight or along any arc, about the lateral shift
    for a completed lane change (which turns out and back, net ``dpsi`` ~ 0). Map-free, so it works for
    DeepAccident too; a lane change still in progress at the end of the window is under-estimated.

    Args:
        poses: ``(K, 3)`` poses [m, m, rad] (any frame), K >= 1.
    """
    poses = np.asarray(poses, dtype=np.float64)
    if len(poses) < 2:
        return 0.0
    x0, y0, h0 = poses[0]
    dx, dy = poses[-1, 0] - x0, poses[-1, 1] - y0
    y_end = -math.sin(h0) * dx + math.cos(h0) * dy
    chord = math.hypot(dx, dy)
    dpsi = float(wrap_angle(poses[-1, 2] - h0))
    return abs(y_end - chord * math.sin(0.5 * dpsi))


def classify_conflict(
    agent_class: str,
    relative_heading_deg: float,
    sector: str,
    agent_excursion: float,
    ego_excursion: float,
    ego_yaw_change_deg: float,
    scenario_type: str | None = None,
    config: LabelConfig = LabelConfig(),
    lanes_merge: bool | None = None,
) -> tuple[str, str]:
    """Conflict type from geometry, with the scenario type as a tie-breaker only.

    Args:
        agent_class: one of :data:`AGENT_CLASSES`.
        relative_heading_deg: agent minus ego heading at the decision time [deg].
        sector: agent sector at the decision time.
        agent_excursion: the agent's :func:`lateral_excursion` from ``t - lookback`` to the contact [m].
        ego_excursion: the ego's, over the same window [m].
        ego_yaw_change_deg: ego heading change from ``t - lookback`` to ``t + horizon`` [deg] (left > 0).
        scenario_type: the scene's scenario type (hint).
        config: thresholds.
        lanes_merge: whether the two came from converging lanes (:func:`lanes_merge`: one of them on an on-ramp):
            then a same-direction conflict is a ``merge`` (a ramp merge is a merge, whoever merges, however far
            the merge had progressed); None (no map) leaves it to the excursions.

    Returns:
        ``(conflict_type, source)`` with ``source`` ``"geometry"`` or ``"scenario_hint"``.
    """
    if agent_class == "pedestrian":
        return "pedestrian", "geometry"
    if agent_class == "cyclist":
        return "cyclist", "geometry"
    if agent_class == "static":
        return "static_obstacle", "geometry"
    rel = abs(float(relative_heading_deg))
    turning_left = ego_yaw_change_deg >= config.left_turn_yaw_deg

    def same_direction() -> str:
        if lanes_merge:
            return "merge"
        if max(agent_excursion, ego_excursion) < config.lane_change_min:
            return "rear_end"
        if sector == "rear" and agent_excursion >= ego_excursion:
            return "rear_end"
        return "cut_in" if agent_excursion >= ego_excursion else "merge"

    def by_heading(r: float) -> str:
        if r >= config.opposite_direction_deg:
            return "left_turn" if turning_left else "head_on"
        if r >= config.same_direction_deg:
            return "crossing"
        return same_direction()

    geometric = by_heading(rel)
    alternatives = {geometric}
    for boundary in (config.same_direction_deg, config.opposite_direction_deg):
        if abs(rel - boundary) < config.ambiguity_deg:
            alternatives |= {by_heading(boundary - config.ambiguity_deg), by_heading(boundary + config.ambiguity_deg)}
    if (geometric in ("cut_in", "merge") and lanes_merge is None
            and abs(agent_excursion - ego_excursion) < config.lateral_ambiguity):
        alternatives |= {"cut_in", "merge"}
    hint = SCENARIO_HINTS.get(scenario_type or "")
    if len(alternatives) > 1 and hint in alternatives and hint != geometric:
        return hint, "scenario_hint"
    return geometric, "geometry"


_PATH_EXTENSION = 1000.0
"""Length of the straight extension past the last pose along its heading [m] (as the search's ``negative_path``)."""


def _path_with_origin(trajectory: np.ndarray) -> np.ndarray:
    """``(K, 2)`` polyline: ego-frame origin then the trajectory points, repeated points dropped, then a straight
    extension of :data:`_PATH_EXTENSION` along the last pose's heading (the search's ``negative_path``: a candidate
    re-timed past the negative's end stays on the path, offset 0, also on a curve; the last chord's direction would
    put it ~0.4 m off after 10 m on a 60 m radius). >= 2 points."""
    traj = np.asarray(trajectory, dtype=np.float64)
    pts = np.concatenate([np.zeros((1, 2)), traj[:, :2]], axis=0)
    keep = np.concatenate([[True], np.linalg.norm(np.diff(pts, axis=0), axis=1) > 1e-6])
    pts = pts[keep]
    yaw = float(traj[-1, 2])
    if len(pts) < 2:  # stationary trajectory: a unit segment along the last heading
        return np.array([pts[0], pts[0] + [math.cos(yaw), math.sin(yaw)]])
    return np.concatenate([pts, pts[-1:] + _PATH_EXTENSION * np.array([[math.cos(yaw), math.sin(yaw)]])], axis=0)


def project_onto_path(points: np.ndarray, path: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arc length and signed lateral offset of points relative to a polyline (extended straight past its ends).

    Args:
        points: ``(P, 2)`` [m].
        path: ``(K, 2)`` polyline [m], K >= 2, no repeated points.

    Returns:
        ``(s, d)``: ``(P,)`` arc length along the path [m] (negative before the start, beyond the end past it) and
        ``(P,)`` signed lateral offset [m] (left of the driving direction > 0).
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    path = np.asarray(path, dtype=np.float64)
    seg = np.diff(path, axis=0)  # (K-1, 2)
    seg_len = np.linalg.norm(seg, axis=1)
    cum = polyline_arclength(path)
    rel = points[:, None, :] - path[None, :-1, :]  # (P, K-1, 2)
    u = np.sum(rel * seg[None], axis=-1) / seg_len[None] ** 2  # (P, K-1)
    lo = np.where(np.arange(len(seg)) == 0, -np.inf, 0.0)
    hi = np.where(np.arange(len(seg)) == len(seg) - 1, np.inf, 1.0)
    uc = np.clip(u, lo[None], hi[None])
    foot = path[None, :-1, :] + uc[..., None] * seg[None]
    dist = np.linalg.norm(points[:, None, :] - foot, axis=-1)
    j = np.argmin(dist, axis=1)
    rows = np.arange(len(points))
    s = cum[j] + uc[rows, j] * seg_len[j]
    cross = seg[j, 0] * rel[rows, j, 1] - seg[j, 1] * rel[rows, j, 0]
    d = np.sign(cross) * dist[rows, j]
    return s, d


def lateral_offsets(negative: np.ndarray, trajectories: np.ndarray) -> np.ndarray:
    """Signed lateral offsets of trajectories' poses from the negative's path [m] (left > 0).

    Args:
        negative: ``(P, 3)`` ego-frame poses; its path is the ego-frame origin then its points, extended straight.
        trajectories: ``(..., K, 3)`` ego-frame poses.

    Returns:
        ``(..., K)`` offsets [m].
    """
    pts = np.asarray(trajectories, dtype=np.float64)[..., :2]
    _, d = project_onto_path(pts.reshape(-1, 2), _path_with_origin(negative))
    return d.reshape(pts.shape[:-1])


def _pose_speeds(trajectory: np.ndarray, interval: float) -> np.ndarray:
    """``(P,)`` mean speed [m/s] between consecutive poses (the ego-frame origin first) ``interval`` [s] apart."""
    pts = np.concatenate([np.zeros((1, 2)), np.asarray(trajectory, dtype=np.float64)[:, :2]], axis=0)
    return np.linalg.norm(np.diff(pts, axis=0), axis=1) / interval


def corrective_action(
    negative: np.ndarray,
    positive: np.ndarray | None,
    conflict_type: str,
    config: LabelConfig = LabelConfig(),
    pose_interval: float = 0.5,
) -> tuple[str, float, float]:
    """Corrective action that turns the negative into the positive (both ``(8, 3)`` ego frame, poses every
    ``pose_interval`` [s]).

    No positive -> ``none``. Otherwise two independent parts, joined by
    :func:`counterfactual.schema.join_action`:

    * lateral: |lateral offset| >= ``swerve_threshold`` [m] -> ``swerve_left`` / ``swerve_right`` by its sign, else
      none (keeps the lane);
    * longitudinal: progress shorter by more than ``max(progress_abs, progress_rel * negative's progress)`` [m], or
      a pose-to-pose speed at least ``brake_speed_drop`` [m/s] below the negative's -> ``yield`` for crossing-path
      conflicts (crossing, left_turn, merge, pedestrian, cyclist) else ``brake``; longer by that margin ->
      ``accelerate``; else none (keeps speed).

    Neither part -> ``keep_lane``; one -> that part (``brake``, ``swerve_left``, ...); both -> the compound
    ``<longitudinal>_<lateral>`` (``brake_swerve_left``, ``yield_swerve_right``, ``accelerate_swerve_left``, ...).

    Returns:
        ``(action, lateral_offset_m, progress_change_m)``; the two numbers are NaN without a positive.
    """
    if positive is None:
        return NO_ACTION, float("nan"), float("nan")
    path = _path_with_origin(negative)
    s_neg, _ = project_onto_path(np.asarray(negative)[-1:, :2], path)
    s_pos, d_pos = project_onto_path(np.asarray(positive)[:, :2], path)
    lateral = float(d_pos[np.argmax(np.abs(d_pos))])
    progress_change = float(s_pos[-1] - s_neg[0])
    margin = max(config.progress_abs, config.progress_rel * max(float(s_neg[0]), 0.0))
    slower = np.max(_pose_speeds(negative, pose_interval) - _pose_speeds(positive, pose_interval))
    lat_part = None
    if abs(lateral) >= config.swerve_threshold:
        lat_part = "swerve_left" if lateral > 0 else "swerve_right"
    lon_part = None
    if progress_change < -margin or slower >= config.brake_speed_drop:
        lon_part = "yield" if conflict_type in _YIELD_CONFLICTS else "brake"
    elif progress_change > margin:
        lon_part = "accelerate"
    return join_action(lon_part, lat_part), lateral, progress_change


# ---------------------------------------------------------------------------------------------------- scene
@dataclass(frozen=True)
class AgentRelation:
    """An agent seen from the ego at one frame (ego frame; box centres).

    Attributes:
        agent_id, agent_class: identity.
        position: ``(2,)`` agent centre relative to the ego box centre, in the ego heading frame [m].
        distance_m, bearing_deg, relative_heading_deg, closing_speed_mps, ttc_s: see :class:`SafetyLabel`.
    """

    agent_id: int
    agent_class: str
    position: np.ndarray = field(repr=False)
    distance_m: float
    bearing_deg: float
    relative_heading_deg: float
    closing_speed_mps: float
    ttc_s: float


def relate_agent(scene: Scene, t: int, agent_id: int, config: LabelConfig = LabelConfig()) -> AgentRelation:
    """Geometry of ``agent_id`` relative to the ego at frame ``t`` (TTC projected along the ego's own path,
    :mod:`counterfactual.projection`).

    Raises ``ValueError`` when the agent is not observed at ``t``.
    """
    i = scene.agent_index(agent_id)
    if not scene.agent_valid[i, t]:
        raise ValueError(f"scene {scene.scene_id}: agent {agent_id} is not observed at frame {t}")
    ego_c = rear_axle_to_center(scene.ego_poses[t], scene.ego_params)
    a_pose = scene.agent_poses[i, t]
    yaw = ego_c[2]
    c, s = math.cos(yaw), math.sin(yaw)
    dx, dy = a_pose[0] - ego_c[0], a_pose[1] - ego_c[1]
    pos = np.array([c * dx + s * dy, -s * dx + c * dy])
    rel_v = scene.agent_velocities[i, t] - scene.ego_velocities[t]
    taus = projection_times(config.cv_horizon, config.cv_step)
    track = own_path_track(scene.ego_poses, scene.ego_velocities, t, taus)  # (K, 3)
    ttc = time_to_collision(track, scene.ego_params, a_pose[None], scene.agent_velocities[i, t][None],
                            scene.agent_sizes[i][None], taus)[0]
    bearing = math.degrees(math.atan2(pos[1], pos[0]))
    if bearing == -180.0:
        bearing = 180.0
    return AgentRelation(
        agent_id=int(agent_id),
        agent_class=AgentClass(int(scene.agent_classes[i])).name.lower(),
        position=pos,
        distance_m=float(np.hypot(*pos)),
        bearing_deg=bearing,
        relative_heading_deg=float(np.degrees(wrap_angle(a_pose[2] - yaw))),
        closing_speed_mps=float(closing_speed(np.array([dx, dy]), rel_v)),
        ttc_s=float(ttc),
    )


_LANE_SHAPES: "weakref.WeakKeyDictionary[SceneMap, tuple]" = weakref.WeakKeyDictionary()


def _lane_shapes(scene_map: SceneMap, config: LabelConfig) -> tuple[list, frozenset[int]]:
    """Per map (cached): shapely polygons of the lanes, and the indices of **merging** lanes (on-ramps).

    Road lanes (outside junctions) whose centrelines end within ``merge_point_tolerance`` of each other converge.
    Where a road lane starts at that point (the merged lane), the converging lane that is its straight
    continuation backwards (its centreline ``merge_lookback_m`` before its end lies within ``lane_change_min`` of
    the merged lane's extended centreline) is the through lane; the others merge into it. Without a merged lane
    every converging lane counts as merging.
    """
    key = (config.merge_point_tolerance, config.lane_change_min)
    cached = _LANE_SHAPES.get(scene_map)
    if cached is not None and cached[0] == key:
        return cached[1], cached[2]
    import shapely

    lanes = scene_map.lanes
    polys = [shapely.Polygon(lane.polygon) for lane in lanes]
    road = [k for k, lane in enumerate(lanes) if not lane.in_intersection]
    tol = config.merge_point_tolerance
    merging: set[int] = set()
    for k in road:
        end = lanes[k].centerline[-1]
        group = [j for j in road if np.linalg.norm(lanes[j].centerline[-1] - end) <= tol]
        if len(group) < 2:
            continue
        merged = [j for j in road if np.linalg.norm(lanes[j].centerline[0] - end) <= tol]
        if not merged:
            merging.add(k)
            continue
        cl = lanes[k].centerline
        s = polyline_arclength(cl)
        back = np.array([np.interp(s[-1] - 30.0, s, cl[:, 0]), np.interp(s[-1] - 30.0, s, cl[:, 1])])
        _, d = project_onto_path(back[None], lanes[merged[0]].centerline)
        if abs(d[0]) >= config.lane_change_min:
            merging.add(k)
    _LANE_SHAPES[scene_map] = (key, polys, frozenset(merging))
    return polys, frozenset(merging)


def _lane_at(scene_map: SceneMap, polys: list, pose: np.ndarray) -> int | None:
    """Index of the lane holding a box-centre pose ``(3,)``: its polygon contains the point and its driving
    direction (at the nearest centreline vertex) is within 90 deg of the heading; nearest centreline first."""
    import shapely

    point = shapely.Point(float(pose[0]), float(pose[1]))
    best, best_d = None, math.inf
    for k, (lane, poly) in enumerate(zip(scene_map.lanes, polys)):
        if not poly.contains(point):
            continue
        cl = lane.centerline
        j = int(np.argmin(np.linalg.norm(cl - pose[:2], axis=1)))
        a, b = cl[max(j - 1, 0)], cl[min(j + 1, len(cl) - 1)]
        if abs(wrap_angle(math.atan2(b[1] - a[1], b[0] - a[0]) - pose[2])) > 0.5 * math.pi:
            continue
        d = float(np.linalg.norm(cl[j] - pose[:2]))
        if d < best_d:
            best, best_d = k, d
    return best


def lanes_merge(scene: Scene, agent_index: int, start: int, config: LabelConfig = LabelConfig()) -> bool | None:
    """Whether the agent and the ego come from converging lanes: at ``start`` (or the agent's first valid frame
    after it) they drive in different lanes and one of them is a merging lane (an on-ramp, :func:`_lane_shapes`).
    A same-direction conflict between them is then a ``merge``, whoever merges. None without a map."""
    if scene.map is None:
        return None
    polys, merging = _lane_shapes(scene.map, config)
    valid = np.flatnonzero(scene.agent_valid[agent_index, start:]) + start
    if not len(valid):
        return False
    agent_lane = _lane_at(scene.map, polys, scene.agent_poses[agent_index, valid[0]])
    ego_lane = _lane_at(scene.map, polys, rear_axle_to_center(scene.ego_poses[start], scene.ego_params))
    if agent_lane is None or ego_lane is None or agent_lane == ego_lane:
        return False
    return agent_lane in merging or ego_lane in merging


def classify_at(scene: Scene, t: int, agent_id: int, contact_frame: int,
                config: LabelConfig = LabelConfig(), lookback: float | None = None) -> tuple[str, str]:
    """Conflict type of ``agent_id`` judged at frame ``t`` (:func:`classify_conflict`): class, relative heading and
    sector at ``t``; lateral excursions from ``t - lookback`` (default ``config.lookback``) to the contact; the
    ego's heading change from ``t - config.lookback`` to ``t + horizon``; whether the two came from converging
    lanes at ``t - lookback`` (:func:`lanes_merge`, with a map)."""
    rel = relate_agent(scene, t, agent_id, config)
    sector = sector_of(rel.bearing_deg, config)
    i = scene.agent_index(agent_id)
    last = scene.num_frames - 1
    end = int(min(max(contact_frame, t), last))
    t0 = max(t - int(round((config.lookback if lookback is None else lookback) / scene.dt)), 0)
    agent_frames = np.flatnonzero(scene.agent_valid[i, t0 : end + 1]) + t0
    agent_exc = lateral_excursion(scene.agent_poses[i, agent_frames]) if len(agent_frames) else 0.0
    ego_exc = lateral_excursion(scene.ego_poses[t0 : end + 1])
    merges = lanes_merge(scene, i, t0, config)
    t_future = min(t + int(round(config.horizon / scene.dt)), last)
    t_turn = max(t - int(round(config.lookback / scene.dt)), 0)
    ego_yaws = np.unwrap(scene.ego_poses[t_turn : t_future + 1, 2])
    return classify_conflict(
        rel.agent_class,
        rel.relative_heading_deg,
        sector,
        agent_exc,
        ego_exc,
        float(np.degrees(ego_yaws[-1] - ego_yaws[0])),
        scene.meta.scenario_type,
        config,
        merges,
    )


def moment_conflict(scene: Scene, moment: "RiskMoment", config: LabelConfig = LabelConfig()) -> tuple[str, str]:
    """One conflict type per risky moment, shared by all its lead times: :func:`classify_at` at the moment's
    earliest decision frame, with lane changes judged over ``moment_lookback`` before it (so a merge or cut-in that
    happened before the first decision still names the conflict).

    Raises ``ValueError`` for a moment without decision frames."""
    if not moment.decision_frames:
        raise ValueError(f"moment_conflict: moment of agent {moment.agent_id} in {scene.scene_id} has no decision frame")
    return classify_at(scene, int(moment.decision_frames[0]), moment.agent_id, moment.contact_frame, config,
                       lookback=config.moment_lookback)


def risk_level_for(kind: str, ttc_s: float, time_to_contact_s: float, closing_speed_mps: float,
                   config: LabelConfig = LabelConfig()) -> str:
    """Risk level of a mined moment: collisions from ``min(ttc_s, time_to_contact_s)`` (:func:`risk_level_of`);
    near-misses from ``ttc_s``, at least ``low`` (a mined near-miss is a risky moment by definition)."""
    if kind == "collision":
        return risk_level_of(min(ttc_s, time_to_contact_s), closing_speed_mps, config)
    if kind == "near_miss":
        level = risk_level_of(ttc_s, closing_speed_mps, config)
        return "low" if level == "none" else level
    raise ValueError(f"risk_level_for: kind must be 'collision' or 'near_miss', got {kind!r}")


def derive_label(
    scene: Scene,
    t: int,
    agent_id: int,
    contact_frame: int,
    negative: np.ndarray,
    positive: np.ndarray | None,
    seed: int = 0,
    config: LabelConfig = LabelConfig(),
    kind: str = "collision",
    conflict: tuple[str, str] | None = None,
) -> SafetyLabel:
    """Derive the full label of a risky moment at decision frame ``t``.

    Args:
        scene: the scene (log or rollout).
        t: decision frame.
        agent_id: risk agent.
        contact_frame: frame of the logged (collision) or projected (near-miss) contact, ``> t``.
        negative: ``(8, 3)`` driven trajectory, ego frame at ``t`` (poses every 0.5 s).
        positive: ``(8, 3)`` verified-safe counterfactual, or None.
        seed: explanation seed.
        config: thresholds.
        kind: ``"collision"`` (``time_to_contact_s`` = the logged contact, ``(contact_frame - t) dt``; the
            explanation states it) or ``"near_miss"`` (no contact: ``inf``; the explanation states the projected TTC).
        conflict: the moment's ``(conflict_type, source)`` (:func:`moment_conflict`, shared by its lead times);
            None classifies at ``t`` (:func:`classify_at`).
    """
    if kind not in ("collision", "near_miss"):
        raise ValueError(f"derive_label: kind must be 'collision' or 'near_miss', got {kind!r}")
    rel = relate_agent(scene, t, agent_id, config)
    sector = sector_of(rel.bearing_deg, config)
    conflict_type, source = classify_at(scene, t, agent_id, contact_frame, config) if conflict is None else conflict
    action, lateral, progress = corrective_action(negative, positive, conflict_type, config)
    contact = (contact_frame - t) * scene.dt if kind == "collision" else math.inf
    risk = risk_level_for(kind, rel.ttc_s, contact, rel.closing_speed_mps, config)
    if kind == "collision":
        time_kind = "contact"
    else:
        time_kind = "projected_ttc" if math.isfinite(rel.ttc_s) and risk != "none" else "none"
    label = SafetyLabel(
        risk_agent_id=rel.agent_id,
        risk_agent_class=rel.agent_class,
        sector=sector,
        distance_m=rel.distance_m,
        bearing_deg=rel.bearing_deg,
        relative_heading_deg=rel.relative_heading_deg,
        closing_speed_mps=rel.closing_speed_mps,
        ttc_s=rel.ttc_s,
        time_to_contact_s=contact,
        risk_level=risk,
        conflict_type=conflict_type,
        conflict_source=source,
        action=action,
        lateral_offset_m=lateral,
        progress_change_m=progress,
        time_kind=time_kind,
        explanation_seed=int(seed),
    )
    return _with_explanation(label, explain(label, seed))


def _with_explanation(label: SafetyLabel, text: str) -> SafetyLabel:
    d = label.to_dict()
    d["explanation"] = text
    return SafetyLabel(**d)

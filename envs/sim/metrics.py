"""Closed-loop driving metrics of an episode (CARLA leaderboard convention, ``../shared/specs/driving-score.md``).

Per episode (one stretch of a logged route, driven from a start frame until a collision, off-road, the route's end
or the log's end):

* **Route completion RC** = ``min(1, ego progress / reference progress)`` minus the share of the reference distance
  driven off-road or the wrong way (leaderboard 1.0 / 2.0 ``outside_route_lanes``), floored at 0. Progress is the
  arc length of the rear axle's projection on the route (:class:`envs.observation.Route`) from the start frame.
  The **reference** is what a safe driver completes over the same episode window: the expert log when it stays
  collision-free over the window, else the careful safe-progress planner driven closed loop from the same start
  (:func:`rewards.scorer.safe_planner_trajectory`, re-planned every 0.5 s; see :func:`reference_progress`).
  ``reference_kind`` says which. A reference that progresses less than ``min_reference_progress`` (e.g. waiting at
  a red light) makes RC 1 (nothing was there to complete).
* **Infraction penalty IP** = product of one coefficient per infraction instance: collision with a vehicle 0.60, a
  pedestrian 0.50, a cyclist 0.60 (CARLA counts bicycles as vehicles), a static object 0.65, a red light 0.70
  (leaderboard values; red lights are detected in ``CarlaEnv`` only).
  Off-road and wrong-way driving reduce RC as above (an off-road excursion also ends the episode). Red lights are
  not counted (the synthetic bank's ego always has green; say so where results are reported).
* **Driving score DS** = RC x IP per episode; averages over episodes are means of per-episode DS.
* **Stopped share**: share of the episode's driven frames with speed below ``stopped_speed``.
"""

from __future__ import annotations

import dataclasses
import weakref
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from envs.observation import Route
from envs.sim.simulation import DrivableArea, EgoTrack, check_frames, simulate_prefix
from envs.scenes.scene import AgentClass, Scene
from rewards.config import PDMConfig
from rewards.map_index import map_index_for
from rewards.scorer import safe_planner_trajectory
from rewards.types import MapGeometry, ScoringProblem


@dataclass(frozen=True)
class DrivingMetricsConfig:
    """Coefficients and thresholds of the closed-loop driving metrics (leaderboard values where they exist)."""

    vehicle_collision: float = 0.60
    """IP coefficient of a collision with a vehicle."""
    pedestrian_collision: float = 0.50
    """IP coefficient of a collision with a pedestrian."""
    cyclist_collision: float = 0.60
    """IP coefficient of a collision with a cyclist (a vehicle in CARLA's leaderboard)."""
    static_collision: float = 0.65
    """IP coefficient of a collision with a static object (CARLA: layout / other objects)."""
    red_light: float = 0.70
    """IP coefficient of running a red light (detected by ``CarlaEnv``; the replay env's bank ego always has
    green)."""
    stopped_speed: float = 0.5
    """Speed below which a frame counts as stopped [m/s] (the tracker's stopping controller decays the last
    fraction of a metre per second slowly, so a lower bound would count a stopped ego as moving)."""
    min_reference_progress: float = 1.0
    """Reference progress below which RC is 1 (nothing to complete) [m]."""

    def coefficient(self, infraction: str) -> float:
        """IP coefficient of an infraction: a collision with an agent class (``"vehicle"``, ``"pedestrian"``,
        ``"cyclist"``, ``"static"``) or ``"red_light"``."""
        table = {"vehicle": self.vehicle_collision, "pedestrian": self.pedestrian_collision,
                 "cyclist": self.cyclist_collision, "static": self.static_collision, "red_light": self.red_light}
        if infraction not in table:
            raise ValueError(f"unknown infraction {infraction!r}; known: {sorted(table)}")
        return table[infraction]


INFRACTIONS = ("vehicle", "pedestrian", "cyclist", "static", "red_light")
"""Infraction names counted in :attr:`DrivingMetrics.infractions` (collisions by agent class, red lights)."""


@dataclass
class DrivingMetrics:
    """One episode's closed-loop metrics (see the module docstring); plain values (``to_dict`` for ``info``)."""

    route_completion: float
    """RC in [0, 1]."""
    infraction_penalty: float
    """IP in (0, 1]."""
    driving_score: float
    """DS = RC x IP."""
    ego_progress_m: float
    """Ego progress along the route over the episode [m] (may be negative when reversing)."""
    reference_progress_m: float
    """The reference's progress over the episode window [m]."""
    reference_kind: str
    """``"log"`` (collision-free expert log) or ``"safe_planner"`` (careful planner closed loop)."""
    infractions: dict[str, int] = field(default_factory=dict)
    """Infraction instances by name (:data:`INFRACTIONS`: collisions by agent class, red lights)."""
    offroad_m: float = 0.0
    """Distance driven with an ego corner off the drivable area [m]."""
    wrong_way_m: float = 0.0
    """Distance driven with the ego centre in a lane of the opposite direction [m]."""
    stopped_share: float = 0.0
    """Share of driven frames below ``stopped_speed``."""
    frames: int = 0
    """Driven frames."""
    contacts_not_at_fault: int = 0
    """Contacts that were not the ego's fault (NAVSIM's classification, :func:`rewards.pdm.contacts_at_fault`:
    rear-ended, side-swiped, hit while stopped): reported, neither an infraction nor the episode's end (replay env;
    CARLA counts every collision, see :mod:`envs.carla.env`)."""

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (picklable for vector envs)."""
        return asdict(self)


_ON_ROUTE: "weakref.WeakKeyDictionary[MapGeometry, np.ndarray]" = weakref.WeakKeyDictionary()


def _on_route_lanes(geometry: MapGeometry) -> np.ndarray:
    """``(L,)`` bool, read-only: which of ``geometry.lane_ids`` are on-route lanes (cached per geometry object,
    released with it; geometries are immutable)."""
    mask = _ON_ROUTE.get(geometry)
    if mask is None:
        mask = np.isin(geometry.lane_ids, np.asarray(geometry.route_lane_ids, dtype=np.int64))
        mask.setflags(write=False)
        _ON_ROUTE[geometry] = mask
    return mask


class EpisodeMetrics:
    """Accumulates one closed-loop episode's frames and computes :class:`DrivingMetrics` at its end.

    Args:
        scene: the logged scene.
        route: the route progress is measured along.
        start_pose: ``(3,)`` world rear-axle pose at the start frame [m, m, rad].
        geometry: the scorer's map geometry (None without a map: no wrong-way distance); lanes that are not
            on-route (``geometry.route_lane_ids``) count as the wrong way.
        config: coefficients.
    """

    def __init__(self, scene: Scene, route: Route, start_pose: np.ndarray, geometry: MapGeometry | None,
                 config: DrivingMetricsConfig = DrivingMetricsConfig()) -> None:
        self.scene = scene
        self.route = route
        self.config = config
        self._map = None if geometry is None else map_index_for(geometry)
        self._s0 = route.project(np.asarray(start_pose, dtype=np.float64)[:2])
        self._last_xy = np.asarray(start_pose, dtype=np.float64)[:2].copy()
        self._last_s = self._s0
        self._infractions: dict[str, int] = {}
        self._offroad = 0.0
        self._wrong_way = 0.0
        self._stopped = 0
        self._frames = 0
        self._contacts = 0
        self._on_route = np.zeros(0, dtype=bool) if geometry is None else _on_route_lanes(geometry)

    def add(self, centers: np.ndarray, rear_axles: np.ndarray, speeds: np.ndarray, offroad: np.ndarray,
            colliding_agent: int = -1, contacts: tuple[int, ...] = ()) -> None:
        """Add driven frames.

        Args:
            centers: ``(k, 2)`` ego box centres, world frame [m].
            rear_axles: ``(k, 2)`` ego rear-axle positions [m].
            speeds: ``(k,)`` [m/s].
            offroad: ``(k,)`` bool, an ego corner off the drivable area.
            colliding_agent: id of the agent the ego collided with at fault in the last of these frames (-1:
                none); an infraction.
            contacts: ids of agents touched without fault in these frames (counted in
                ``DrivingMetrics.contacts_not_at_fault``, not infractions).
        """
        rear_axles = np.asarray(rear_axles, dtype=np.float64)
        k = len(rear_axles)
        if k == 0:
            return
        steps = np.hypot(*np.diff(np.vstack([self._last_xy, rear_axles]), axis=0).T)  # (k,) [m]
        wrong = self._wrong_way_frames(np.asarray(centers, dtype=np.float64))
        self._offroad += float(steps[np.asarray(offroad, dtype=bool)].sum())
        self._wrong_way += float(steps[wrong & ~np.asarray(offroad, dtype=bool)].sum())
        self._stopped += int(np.sum(np.asarray(speeds) < self.config.stopped_speed))
        self._frames += k
        self._last_xy = rear_axles[-1].copy()
        self._last_s = self.route.project(self._last_xy)
        self._contacts += len(contacts)
        if colliding_agent >= 0:
            cls = AgentClass(int(self.scene.agent_classes[self.scene.agent_index(int(colliding_agent))]))
            self._infractions[cls.name.lower()] = self._infractions.get(cls.name.lower(), 0) + 1

    def _wrong_way_frames(self, centers: np.ndarray) -> np.ndarray:
        """``(k,)`` bool: the centre is in some lane, in no on-route lane and in no intersection."""
        if self._map is None or not len(self._on_route):
            return np.zeros(len(centers), dtype=bool)
        inside = self._map.contains(centers)  # (k, P)
        lanes = inside[:, self._map.lane_columns]
        in_junction = inside[:, self._map.intersection_columns].any(axis=1)
        return lanes.any(axis=1) & ~lanes[:, self._on_route].any(axis=1) & ~in_junction

    @property
    def ego_progress(self) -> float:
        """Progress along the route since the start [m]."""
        return float(self._last_s - self._s0)

    def route_completion(self, reference_progress: float) -> float:
        """The route completion RC of the frames added so far against ``reference_progress`` [m] (what
        :meth:`finish` reports when no more frames come; :func:`route_completion`)."""
        return route_completion(self.ego_progress, reference_progress, self._offroad + self._wrong_way,
                                self.config.min_reference_progress)

    def finish(self, reference_progress: float, reference_kind: str) -> DrivingMetrics:
        """The episode's metrics against a reference progress [m] over the same window."""
        return driving_metrics(self.ego_progress, reference_progress, reference_kind, self._infractions,
                               offroad_m=self._offroad, wrong_way_m=self._wrong_way,
                               stopped_share=self._stopped / self._frames if self._frames else 0.0,
                               frames=self._frames, contacts_not_at_fault=self._contacts, config=self.config)


def route_completion(progress: float, reference_progress: float, deducted_m: float = 0.0,
                     min_reference_progress: float = 1.0) -> float:
    """Route completion RC in ``[0, 1]`` (module docstring): ``min(1, max(0, progress) / reference) - deducted /
    reference``, clipped to ``[0, 1]``; 1 when the reference is below ``min_reference_progress`` (nothing to complete).

    Args:
        progress: ego progress along the route since the episode's start [m] (signed).
        reference_progress: the reference's progress over the episode window [m].
        deducted_m: distance driven off-road or the wrong way so far [m].
        min_reference_progress: the smallest reference that counts [m].
    """
    ref = float(reference_progress)
    if ref < min_reference_progress:
        return 1.0
    rc = min(1.0, max(0.0, float(progress)) / ref) - float(deducted_m) / ref
    return float(min(max(rc, 0.0), 1.0))


def driving_metrics(progress: float, reference_progress: float, reference_kind: str, infractions: dict[str, int],
                    offroad_m: float = 0.0, wrong_way_m: float = 0.0, stopped_share: float = 0.0, frames: int = 0,
                    contacts_not_at_fault: int = 0,
                    config: DrivingMetricsConfig = DrivingMetricsConfig()) -> DrivingMetrics:
    """RC, IP and DS of one episode (module docstring); shared by the replay env and ``CarlaEnv``.

    Args:
        progress: ego progress along the route [m]; reference_progress: the reference's over the window [m].
        reference_kind: what the reference is (reported).
        infractions: instances by name (:data:`INFRACTIONS`).
        offroad_m, wrong_way_m: distances driven off-road / the wrong way [m] (deducted from RC).
        contacts_not_at_fault: contacts that were not the ego's fault (reported, no penalty).
    """
    ref = float(reference_progress)
    rc = route_completion(progress, ref, offroad_m + wrong_way_m, config.min_reference_progress)
    ip = 1.0
    for name, count in infractions.items():
        ip *= config.coefficient(name) ** int(count)
    return DrivingMetrics(route_completion=rc, infraction_penalty=float(ip), driving_score=float(rc * ip),
                          ego_progress_m=float(progress), reference_progress_m=ref, reference_kind=reference_kind,
                          infractions=dict(infractions), offroad_m=float(offroad_m), wrong_way_m=float(wrong_way_m),
                          stopped_share=float(stopped_share), frames=int(frames),
                          contacts_not_at_fault=int(contacts_not_at_fault))

def reference_progress(
    scene: Scene,
    route: Route,
    start: int,
    end: int,
    replan: int,
    drivable: DrivableArea | None,
    log_problem: Callable[[int], ScoringProblem],
    config: PDMConfig = PDMConfig(),
) -> tuple[float, str]:
    """What a safe driver completes from frame ``start`` to ``end`` of ``scene``: ``(progress [m], kind)``.

    * ``"log"``: the expert log when it stays collision-free (and on the road) over frames ``start + 1 .. end``;
    * ``"safe_planner"``: else the safe oracle planner (:func:`rewards.scorer.safe_planner_trajectory`) driven in
      the closed loop from the logged state at ``start``, re-planning every ``replan`` frames with the env's tracker,
      until ``end`` or its own collision / off-road;
    * ``"log_until_contact"``: without a map (no planner): the log up to the frame before its first contact.

    Args:
        log_problem: ``frame -> ScoringProblem`` of the log (the env's cache), whose ego is replaced by the
            simulated one.
    """
    frames = np.arange(start + 1, end + 1)
    s0 = route.project(scene.ego_poses[start, :2])
    if len(frames) == 0:
        return 0.0, "log"
    colliding, offroad = check_frames(scene, scene.ego_poses[frames], frames, drivable)
    bad = np.flatnonzero((colliding >= 0) | offroad)
    if not len(bad):
        return route.project(scene.ego_poses[end, :2]) - s0, "log"
    if scene.map is None:
        last = int(frames[bad[0]]) - 1
        return route.project(scene.ego_poses[last, :2]) - s0, "log_until_contact"
    track = EgoTrack(scene, start, log_problem(start).ego)
    while track.frame + replan <= end:
        problem = dataclasses.replace(log_problem(track.frame), ego=track.ego_state)
        traj = safe_planner_trajectory(problem, config)
        states, steering = simulate_prefix(track.ego_state, traj, config, replan)
        hit, off = check_frames(scene, states[:, :3], track.frame + 1 + np.arange(replan), drivable)
        events = np.flatnonzero((hit >= 0) | off)
        n = int(events[0]) + 1 if len(events) else replan
        track.advance(states[:n], float(steering[n - 1]))
        if len(events):
            break
    return route.project(track.poses[track.frame, :2]) - s0, "safe_planner"

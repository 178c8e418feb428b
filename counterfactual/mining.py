"""Risky moments in a scene (collisions and near-misses) and their decision frames; rollouts as scenes.

Detection is independent of the scene's meta data and of the scorer:

* **collision**: the ego box (box centre = rear axle + ``rear_axle_to_center``, ego length x width) overlaps an agent
  box valid at that frame (separating-axis test, :func:`rewards.geometry.boxes_overlap`, the scorer's test). The contact frame
  is the first overlapping frame per agent. Where the meta data also names a collision (``collision_frame``,
  ``colliding_agent_id``) the two are compared and both kept (``detected_by``); a meta-only collision (boxes never
  overlap, e.g. noisy DeepAccident boxes) is still mined, marked ``detected_by="meta"``.
* **near-miss**: at a frame where the ego moves (speed >= ``min_ego_speed``), an agent that never collides has a
  projected time to collision (ego: its current speed along its own logged path; agents: constant velocity;
  :func:`path_ttc_matrix`, :mod:`counterfactual.projection`) below ``near_miss_ttc`` with a closing speed above
  ``near_miss_closing_speed``; agents behind the ego (bearing beyond ``rear_exclusion_deg``) are skipped unless
  ``include_rear`` (the ego cannot be blamed for a car approaching from behind). Consecutive such frames of one
  agent form one event, kept when it lasts ``near_miss_min_duration``; its *projected contact* is ``frame + TTC``
  at the frame of the smallest TTC. With ``near_miss_gap > 0`` (opt-in) a second trigger: an agent whose box comes
  closer to the ego box than ``near_miss_gap`` [m] without contact, while the ego moves and the agent is not behind
  it (as above), is a near-miss too when the TTC trigger did not report that agent: its event and *contact* frame is
  the frame of closest approach (``detected_by="gap"``; ``min_ttc`` the projected TTC there, ``inf`` when none). It
  sees passing near-misses the TTC projection misses (an agent that crosses or brakes, closing slower than
  ``near_miss_closing_speed``).

Decision frames are ``contact_frame - round(lead / dt)`` for each lead time, kept when ``t >= min_history / dt``
(for rollouts also ``t >=`` the rollout's first recorded frame),
``t + horizon / dt`` lies inside the log (the negative, :func:`envs.sim.scoring.trajectory_from_log`, needs 4 s of
logged future) and ``t`` comes before the scene's first contact (after a crash the log is no longer a decision).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from counterfactual.projection import closing_speed, path_poses, projection_times, time_to_collision
from envs.scenes.rollout import find_collisions
from envs.scenes.scene import Scene
from envs.scenes.sources import Origin, origin_from_dict, scene_origin
from rewards.geometry import box_corners, box_distance, rear_axle_to_center, vehicle_corners


@dataclass(frozen=True)
class MomentConfig:
    """Risk-moment detection and decision-frame selection."""

    lead_times: tuple[float, ...] = (1.0, 2.0, 3.0)
    """Decision times before the (projected) contact [s]."""
    near_miss_ttc: float = 1.5
    """Projected time to collision (along the ego's path) below this [s] makes a near-miss."""
    near_miss_closing_speed: float = 2.0
    """... together with a closing speed above this [m/s]."""
    min_ego_speed: float = 1.0
    """Near-misses only while the ego moves at least this fast [m/s]."""
    include_rear: bool = False
    """Also report near-misses with agents behind the ego."""
    rear_exclusion_deg: float = 120.0
    """|bearing| above this [deg] counts as behind (for ``include_rear=False``)."""
    near_miss_min_duration: float = 0.3
    """The near-miss condition must hold this long without a break [s] (filters one-frame projection artefacts)."""
    cv_step: float = 0.1
    """Projection step [s]."""
    min_history: float = 0.0
    """Log time needed before a decision frame [s]."""
    horizon: float = 4.0
    """Logged future needed after a decision frame [s] (the negative's 8 poses at 0.5 s)."""
    first_collision_only: bool = True
    """Mine only the scene's first collision (later contacts happen after a crash)."""
    use_meta: bool = True
    """Also mine a collision the meta data reports when the boxes never overlap."""
    near_miss_gap: float = 0.0
    """Box-to-box gap [m] below which a non-colliding agent makes a near-miss (the gap trigger above); 0: off."""

    def __post_init__(self) -> None:
        if not self.lead_times or any(not (lt > 0 and math.isfinite(lt)) for lt in self.lead_times):
            raise ValueError(f"MomentConfig.lead_times: need positive lead times [s], got {self.lead_times}")
        for name in ("near_miss_ttc", "cv_step", "horizon"):
            if not getattr(self, name) > 0:
                raise ValueError(f"MomentConfig.{name}: must be > 0, got {getattr(self, name)!r}")
        if not (math.isfinite(self.near_miss_gap) and self.near_miss_gap >= 0):
            raise ValueError(f"MomentConfig.near_miss_gap: must be >= 0 [m] (0: off), got {self.near_miss_gap!r}")
        if self.min_history < 0:
            raise ValueError(f"MomentConfig.min_history: must be >= 0, got {self.min_history!r}")


@dataclass(frozen=True)
class RiskMoment:
    """A risky moment of one scene.

    Attributes:
        scene_id: the scene.
        kind: ``"collision"`` or ``"near_miss"``.
        agent_id: the risk agent.
        contact_frame: first overlapping frame (collision) or projected contact frame (near-miss).
        event_frame: frame the event was seen at (= contact frame for collisions; the min-TTC frame for near-misses).
        min_ttc: 0 for collisions, the smallest projected TTC [s] for near-misses.
        closing_speed: closing speed at the event frame [m/s].
        detected_by: ``"geometry"``, ``"meta"`` or ``"geometry+meta"`` (collisions); ``"path_ttc"`` or ``"gap"`` (near-misses).
        meta_collision_frame: the meta data's collision frame, if any.
        decision_frames: kept decision frames, one per usable lead time (ascending).
        lead_times: the lead time [s] of each decision frame.
        dropped_leads: ``{lead [s]: why}`` for lead times that gave no usable frame.
    """

    scene_id: str
    kind: str
    agent_id: int
    contact_frame: int
    event_frame: int
    min_ttc: float
    closing_speed: float
    detected_by: str
    meta_collision_frame: int | None = None
    decision_frames: tuple[int, ...] = ()
    lead_times: tuple[float, ...] = ()
    dropped_leads: Mapping[float, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------------ detection
def path_ttc_matrix(scene: Scene, horizon: float, step: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Projected time to collision (ego: its current speed along its own logged path; agents: constant velocity;
    see :mod:`counterfactual.projection`) and closing speed of every agent at every frame.

    Returns:
        ``(ttc (N, T) [s], inf where none within horizon or invalid; closing (N, T) [m/s])``.
    """
    N, T = scene.num_agents, scene.num_frames
    if N == 0:
        return np.zeros((0, T)), np.zeros((0, T))
    taus = projection_times(horizon, step)  # (K,)
    ego_c = rear_axle_to_center(scene.ego_poses, scene.ego_params)  # (T, 3)
    yaw = scene.ego_poses[:, 2]
    speed = scene.ego_velocities[:, 0] * np.cos(yaw) + scene.ego_velocities[:, 1] * np.sin(yaw)
    ego_p = path_poses(scene.ego_poses, np.arange(T), speed, taus)  # (T, K, 3)
    ttc = time_to_collision(ego_p, scene.ego_params, np.swapaxes(scene.agent_poses, 0, 1),
                            np.swapaxes(scene.agent_velocities, 0, 1), scene.agent_sizes, taus).T  # (N, T)
    ttc = np.where(scene.agent_valid, ttc, np.inf)
    rel_p = scene.agent_poses[..., :2] - ego_c[None, :, :2]
    rel_v = scene.agent_velocities - scene.ego_velocities[None]
    return ttc, closing_speed(rel_p, rel_v)


def _bearing_deg(scene: Scene) -> np.ndarray:
    """``(N, T)`` bearing of each agent from the ego box centre [deg], 0 ahead, left > 0."""
    ego_c = rear_axle_to_center(scene.ego_poses, scene.ego_params)
    d = scene.agent_poses[..., :2] - ego_c[None, :, :2]
    ang = np.arctan2(d[..., 1], d[..., 0]) - ego_c[None, :, 2]
    return np.degrees((ang + np.pi) % (2 * np.pi) - np.pi)


def earliest_decision_frame(scene: Scene, config: MomentConfig) -> int:
    """First frame a decision may be mined at: ``min_history`` into the log, and for rollouts not before the
    rollout's first recorded frame (``meta.extra["start_frame"]``; earlier frames replay the log)."""
    t_min = int(math.ceil(config.min_history / scene.dt - 1e-9))
    if scene.meta.source == "rollout":
        t_min = max(t_min, int(scene.meta.extra.get("start_frame", 0)))
    return t_min


def decision_frames(
    scene: Scene, contact_frame: int, first_contact: int | None, config: MomentConfig
) -> tuple[tuple[int, ...], tuple[float, ...], dict[float, str]]:
    """Decision frames for the lead times (see the module docstring); ``(frames, leads, {lead: why dropped})``."""
    frames: list[int] = []
    leads: list[float] = []
    dropped: dict[float, str] = {}
    t_min = earliest_decision_frame(scene, config)
    t_max = scene.num_frames - 1 - int(math.ceil(config.horizon / scene.dt - 1e-9))
    for lead in sorted(config.lead_times):
        t = int(contact_frame - round(lead / scene.dt))
        if t < t_min:
            dropped[lead] = f"needs frame {t}, but decisions are possible from frame {t_min} (history / rollout start)"
        elif t > t_max:
            dropped[lead] = f"frame {t} leaves less than {config.horizon} s of logged future (last usable {t_max})"
        elif first_contact is not None and t >= first_contact:
            dropped[lead] = f"frame {t} is at or after the scene's first contact (frame {first_contact})"
        elif t in frames:
            dropped[lead] = f"frame {t} already used by a shorter lead time"
        else:
            frames.append(t)
            leads.append(float(lead))
    order = np.argsort(frames)
    return tuple(frames[i] for i in order), tuple(leads[i] for i in order), dropped


def find_risk_moments(scene: Scene, config: MomentConfig = MomentConfig()) -> list[RiskMoment]:
    """Collisions and near-misses of a scene with their decision frames (moments without any usable decision
    frame are returned too, with ``dropped_leads`` saying why)."""
    collisions = find_collisions(scene)
    meta = scene.meta
    meta_frame = meta.collision_frame
    meta_agent = meta.colliding_agent_id
    events: list[tuple[int, int, str]] = [(a, f, "geometry") for a, f in collisions]
    if meta_frame is not None:
        agents = {a for a, _ in collisions}
        if meta_agent is not None and meta_agent in agents:
            events = [(a, f, "geometry+meta" if a == meta_agent else how) for a, f, how in events]
        elif config.use_meta and meta_agent is not None:
            events.append((int(meta_agent), int(meta_frame), "meta"))
        events.sort(key=lambda e: (e[1], e[0]))
    if config.first_collision_only and events:
        events = events[:1]
    first_contact = min((f for _, f, _ in events), default=None)
    ttc, closing = path_ttc_matrix(scene, config.near_miss_ttc, config.cv_step)
    moments: list[RiskMoment] = []
    for agent, frame, how in events:
        i = scene.agent_index(agent)
        frames, leads, dropped = decision_frames(scene, frame, first_contact, config)
        moments.append(
            RiskMoment(
                scene_id=scene.scene_id,
                kind="collision",
                agent_id=int(agent),
                contact_frame=int(frame),
                event_frame=int(frame),
                min_ttc=0.0,
                closing_speed=float(closing[i, max(frame - 1, 0)]),
                detected_by=how,
                meta_collision_frame=meta_frame,
                decision_frames=frames,
                lead_times=leads,
                dropped_leads=dropped,
            )
        )
    # near-misses
    colliding = {a for a, _, _ in events} | {a for a, _ in collisions}
    # (N, T) frames a near-miss may be seen at: the ego moves and the agent is not behind it (unless include_rear)
    allowed = np.broadcast_to(scene.ego_speeds >= config.min_ego_speed, ttc.shape)
    if not config.include_rear:
        allowed = allowed & (np.abs(_bearing_deg(scene)) <= config.rear_exclusion_deg)
    cond = (ttc > 0) & np.isfinite(ttc) & (closing > config.near_miss_closing_speed) & allowed
    if first_contact is not None:
        cond[:, first_contact:] = False
    reported: set[int] = set()
    for n in range(scene.num_agents):
        agent = int(scene.agent_ids[n])
        if agent in colliding or not cond[n].any():
            continue
        reported.add(agent)
        idx = np.flatnonzero(cond[n])
        runs = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
        for run in runs:
            if len(run) * scene.dt < config.near_miss_min_duration - 1e-9:
                continue
            ev = int(run[np.argmin(ttc[n, run])])
            contact = int(ev + round(ttc[n, ev] / scene.dt))
            frames, leads, dropped = decision_frames(scene, contact, first_contact, config)
            moments.append(
                RiskMoment(
                    scene_id=scene.scene_id,
                    kind="near_miss",
                    agent_id=agent,
                    contact_frame=contact,
                    event_frame=ev,
                    min_ttc=float(ttc[n, ev]),
                    closing_speed=float(closing[n, ev]),
                    detected_by="path_ttc",
                    meta_collision_frame=meta_frame,
                    decision_frames=frames,
                    lead_times=leads,
                    dropped_leads=dropped,
                )
            )
    if config.near_miss_gap > 0 and scene.num_agents:
        moments += _gap_near_misses(scene, config, colliding | reported, allowed, first_contact, ttc, closing,
                                    meta_frame)
    return moments


def _gap_near_misses(scene: Scene, config: MomentConfig, skip: set[int], allowed: np.ndarray,
                     first_contact: int | None, ttc: np.ndarray, closing: np.ndarray,
                     meta_frame: int | None) -> list[RiskMoment]:
    """The gap trigger (module docstring): one near-miss per agent not in ``skip`` whose smallest box gap to the ego
    over the frames ``allowed`` ``(N, T)`` (ego moving, agent not behind, valid, before ``first_contact``) is in
    ``(0, near_miss_gap)`` [m]; its contact frame is the frame of that gap."""
    ego = vehicle_corners(scene.ego_poses, scene.ego_params)  # (T, 4, 2)
    agents = box_corners(scene.agent_poses, scene.agent_sizes[:, None, 0], scene.agent_sizes[:, None, 1])
    gaps = np.where(allowed & scene.agent_valid, box_distance(ego[None], agents), np.inf)  # (N, T) [m]
    if first_contact is not None:
        gaps[:, first_contact:] = np.inf
    out = []
    for n in range(scene.num_agents):
        agent = int(scene.agent_ids[n])
        ev = int(np.argmin(gaps[n]))
        if agent in skip or not 0.0 < gaps[n, ev] < config.near_miss_gap:
            continue
        frames, leads, dropped = decision_frames(scene, ev, first_contact, config)
        out.append(RiskMoment(
            scene_id=scene.scene_id, kind="near_miss", agent_id=agent, contact_frame=ev, event_frame=ev,
            min_ttc=float(ttc[n, ev]), closing_speed=float(closing[n, ev]), detected_by="gap",
            meta_collision_frame=meta_frame, decision_frames=frames, lead_times=leads, dropped_leads=dropped))
    return out


# ------------------------------------------------------------------------------------------- observation refs
def observation_ref(scene: Scene, t: int, origin: Origin | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What is needed to re-create the observation at frame ``t`` of ``scene``.

    ``{"scene_id", "frame", "time_s", "source", "scenario_type", "origin": {...}}`` where ``origin`` is the dict of
    an :class:`envs.scenes.sources.Origin` (re-create the scene with :func:`envs.scenes.sources.resolve`). Rollout scenes always
    use their own :class:`~envs.scenes.sources.RolloutOrigin` (base origin + recorded ego states); otherwise an ``origin``
    given by the caller wins, else it comes from the scene's meta data (:func:`envs.scenes.sources.scene_origin`).
    """
    if scene.meta.source == "rollout" or origin is None:
        typed = scene_origin(scene)
    else:
        typed = origin if isinstance(origin, Origin) else origin_from_dict(origin)
    return {
        "scene_id": scene.scene_id,
        "frame": int(t),
        "time_s": float(t * scene.dt),
        "source": scene.meta.source,
        "scenario_type": scene.meta.scenario_type,
        "origin": typed.to_dict(),
    }

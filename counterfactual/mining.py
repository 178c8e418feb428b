"""Risky moments in a scene (collisions and near-misses) and their decision frames; rollouts as scenes.

Detection is independent of the scene's meta data and of the scorer:

* **collision**: the ego box (box centre = rear axle + ``rear_axle_to_center``, ego length x width) overlaps an agent
  box valid at that frame (separating-axis test, :func:`rewards.geometry.boxes_overlap`, the scorer's test). The contact frame
  is the first overlapping frame per agent. Where the meta data also names a collision (``collision_frame``,
  ``colliding_agent_id``) the two are compared and both kept (``detected_by``); a meta-only collision (boxes never
  overlap, e.g. noisy DeepAccident boxes) is still mined, marked ``detected_by="meta"``.
* **near-miss**: at a frame where the ego moves (speed >= ``min_ego_speed``), an agent that never collides has a
  projected time to collision (ego: constant speed and yaw rate; agents: constant velocity;
  :func:`counterfactual.projection.cv_time_to_collision`) below ``near_miss_ttc`` with a closing speed above
  ``near_miss_closing_speed``; agents behind the ego (bearing beyond ``rear_exclusion_deg``) are skipped unless
  ``include_rear`` (the ego cannot be blamed for a car approaching from behind). Consecutive such frames of one
  agent form one event, kept when it lasts ``near_miss_min_duration``; its *projected contact* is ``frame + TTC``
  at the frame of the smallest TTC.

Decision frames are ``contact_frame - round(lead / dt)`` for each lead time, kept when ``t >= min_history / dt``
(for rollouts also ``t >=`` the rollout's first recorded frame),
``t + horizon / dt`` lies inside the log (the negative, :func:`envs.scoring.trajectory_from_log`, needs 4 s of
logged future) and ``t`` comes before the scene's first contact (after a crash the log is no longer a decision).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

from counterfactual.projection import closing_speed, ego_turning_poses, ego_yaw_rates
from envs.scene import Scene, SceneMeta
from rewards.geometry import box_corners, boxes_overlap, rear_axle_to_center, vehicle_corners


@dataclass(frozen=True)
class MomentConfig:
    """Risk-moment detection and decision-frame selection."""

    lead_times: tuple[float, ...] = (1.0, 2.0, 3.0)
    """Decision times before the (projected) contact [s]."""
    near_miss_ttc: float = 1.5
    """CV time to collision below this [s] makes a near-miss."""
    near_miss_closing_speed: float = 2.0
    """... together with a closing speed above this [m/s]."""
    min_ego_speed: float = 1.0
    """Near-misses only while the ego moves at least this fast [m/s]."""
    include_rear: bool = False
    """Also report near-misses with agents behind the ego."""
    rear_exclusion_deg: float = 120.0
    """|bearing| above this [deg] counts as behind (for ``include_rear=False``)."""
    near_miss_min_duration: float = 0.3
    """The near-miss condition must hold this long without a break [s] (filters one-frame CV artefacts, e.g. a
    turning ego projected straight across oncoming traffic)."""
    cv_step: float = 0.1
    """CV projection step [s]."""
    min_history: float = 0.0
    """Log time needed before a decision frame [s]."""
    horizon: float = 4.0
    """Logged future needed after a decision frame [s] (the negative's 8 poses at 0.5 s)."""
    first_collision_only: bool = True
    """Mine only the scene's first collision (later contacts happen after a crash)."""
    use_meta: bool = True
    """Also mine a collision the meta data reports when the boxes never overlap."""

    def __post_init__(self) -> None:
        if not self.lead_times or any(not (lt > 0 and math.isfinite(lt)) for lt in self.lead_times):
            raise ValueError(f"MomentConfig.lead_times: need positive lead times [s], got {self.lead_times}")
        for name in ("near_miss_ttc", "cv_step", "horizon"):
            if not getattr(self, name) > 0:
                raise ValueError(f"MomentConfig.{name}: must be > 0, got {getattr(self, name)!r}")
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
        min_ttc: 0 for collisions, the smallest CV TTC [s] for near-misses.
        closing_speed: closing speed at the event frame [m/s].
        detected_by: ``"geometry"``, ``"meta"`` or ``"geometry+meta"`` (collisions); ``"cv_ttc"`` (near-misses).
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
def contact_matrix(scene: Scene) -> np.ndarray:
    """``(N, T)`` bool: the ego box overlaps agent ``n``'s box at frame ``t`` (only where the agent is valid)."""
    if scene.num_agents == 0:
        return np.zeros((0, scene.num_frames), dtype=bool)
    ego = vehicle_corners(scene.ego_poses, scene.ego_params)  # (T, 4, 2)
    agents = box_corners(scene.agent_poses, scene.agent_sizes[:, None, 0], scene.agent_sizes[:, None, 1])
    return boxes_overlap(ego[None], agents) & scene.agent_valid


def find_collisions(scene: Scene) -> list[tuple[int, int]]:
    """``[(agent_id, first_contact_frame), ...]`` sorted by frame then id, from box overlap alone."""
    hit = contact_matrix(scene)
    out = [(int(scene.agent_ids[n]), int(np.argmax(hit[n]))) for n in range(scene.num_agents) if hit[n].any()]
    return sorted(out, key=lambda x: (x[1], x[0]))


def cv_ttc_matrix(scene: Scene, horizon: float, step: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Time to collision (ego: constant speed and yaw rate; agents: constant velocity, see
    :mod:`counterfactual.projection`) and closing speed of every agent at every frame.

    Returns:
        ``(ttc (N, T) [s], inf where none within horizon or invalid; closing (N, T) [m/s])``.
    """
    N, T = scene.num_agents, scene.num_frames
    if N == 0:
        return np.zeros((0, T)), np.zeros((0, T))
    taus = np.arange(int(np.floor(horizon / step + 1e-9)) + 1) * step  # (K,)
    ego_c = rear_axle_to_center(scene.ego_poses, scene.ego_params)  # (T, 3)
    yaw = scene.ego_poses[:, 2]
    speed = scene.ego_velocities[:, 0] * np.cos(yaw) + scene.ego_velocities[:, 1] * np.sin(yaw)
    ego_p = ego_turning_poses(scene.ego_poses, speed, ego_yaw_rates(scene.ego_poses, scene.dt), taus)  # (T, K, 3)
    ego_box = vehicle_corners(ego_p, scene.ego_params)  # (T, K, 4, 2)
    ag = np.repeat(scene.agent_poses[:, :, None], len(taus), axis=2)  # (N, T, K, 3)
    ag[..., :2] += taus[None, None, :, None] * scene.agent_velocities[:, :, None]
    ag_box = box_corners(ag, scene.agent_sizes[:, None, None, 0], scene.agent_sizes[:, None, None, 1])
    hit = boxes_overlap(ego_box[None], ag_box) & scene.agent_valid[..., None]  # (N, T, K)
    ttc = np.where(hit.any(-1), taus[np.argmax(hit, axis=-1)], np.inf)
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
    ttc, closing = cv_ttc_matrix(scene, config.near_miss_ttc, config.cv_step)
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
    moving = scene.ego_speeds >= config.min_ego_speed
    cond = (ttc > 0) & np.isfinite(ttc) & (closing > config.near_miss_closing_speed) & moving[None]
    if not config.include_rear:
        cond &= np.abs(_bearing_deg(scene)) <= config.rear_exclusion_deg
    if first_contact is not None:
        cond[:, first_contact:] = False
    for n in range(scene.num_agents):
        agent = int(scene.agent_ids[n])
        if agent in colliding or not cond[n].any():
            continue
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
                    detected_by="cv_ttc",
                    meta_collision_frame=meta_frame,
                    decision_frames=frames,
                    lead_times=leads,
                    dropped_leads=dropped,
                )
            )
    return moments


# ------------------------------------------------------------------------------------------------------- rollouts
def rollout_to_scene(
    base: Scene,
    start_frame: int,
    ego_poses: np.ndarray,
    ego_velocities: np.ndarray,
    scene_id: str | None = None,
    origin: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Scene:
    """A recorded closed-loop rollout as a :class:`Scene` (``meta.source="rollout"``) on the base scene's frames.

    Frames are the base scene's (frame ``k`` of the rollout scene is frame ``k`` of the base log): the ego follows
    the base log before ``start_frame`` (the history the policy observed), the ``R`` recorded states from
    ``start_frame``, and after them is extrapolated at constant velocity (heading kept) to the end of the log, so
    that a decision frame shortly before the rollout's end still has a 4 s "driven" future. The other agents replay
    the base log. ``meta.extra`` records ``start_frame`` (decision frames of a rollout are taken from there on),
    ``recorded_frames`` = R, the base scene and the recorded states (to re-create the scene). The first contact
    while recorded (box overlap, :func:`find_collisions`) sets ``meta.collision_frame`` / ``colliding_agent_id``.

    Args:
        base: the logged scene the rollout was driven in.
        start_frame: base frame of the rollout's first recorded state.
        ego_poses: ``(R, 3)`` recorded rear-axle poses, world frame [m, m, rad].
        ego_velocities: ``(R, 2)`` recorded world-frame velocities [m/s].
        scene_id: defaults to ``"rollout/<base id>@<start_frame>"``.
        origin: how to re-create ``base`` (see :func:`observation_ref`), stored in ``meta.extra["base_origin"]``.
        extra: further facts (policy name, episode index, ...), stored in ``meta.extra``.
    """
    poses = np.asarray(ego_poses, dtype=np.float64)
    vels = np.asarray(ego_velocities, dtype=np.float64)
    R = len(poses)
    if R == 0 or poses.shape != (R, 3) or vels.shape != (R, 2):
        raise ValueError(f"rollout_to_scene: need ego poses (R, 3) and velocities (R, 2), got {poses.shape}, {vels.shape}")
    T = base.num_frames
    if not 0 <= start_frame < T:
        raise ValueError(f"rollout_to_scene: start_frame {start_frame} outside [0, {T}) of {base.scene_id}")
    end = start_frame + R
    if end > T:
        raise ValueError(f"rollout_to_scene: {R} recorded frames from {start_frame} exceed the {T} base frames")
    ego_p = base.ego_poses.copy()
    ego_v = base.ego_velocities.copy()
    ego_p[start_frame:end], ego_v[start_frame:end] = poses, vels
    if T > end:
        k = np.arange(1, T - end + 1)[:, None] * base.dt
        ego_p[end:, :2] = poses[-1, :2] + k * vels[-1]
        ego_p[end:, 2] = poses[-1, 2]
        ego_v[end:] = vels[-1]
    facts = {
        "base_scene_id": base.scene_id,
        "base_scenario_type": base.meta.scenario_type,
        "start_frame": int(start_frame),
        "recorded_frames": int(R),
        "ego_extrapolated": bool(T > end),
        "base_origin": dict(origin or {}),
        "rollout_ego_poses": poses.tolist(),
        "rollout_ego_velocities": vels.tolist(),
    }
    facts.update(extra or {})
    draft = Scene(
        scene_id=scene_id or f"rollout/{base.scene_id}@{start_frame}",
        dt=base.dt,
        ego_poses=ego_p,
        ego_velocities=ego_v,
        agent_ids=base.agent_ids,
        agent_classes=base.agent_classes,
        agent_sizes=base.agent_sizes,
        agent_poses=base.agent_poses,
        agent_velocities=base.agent_velocities,
        agent_valid=base.agent_valid,
        map=base.map,
        meta=SceneMeta(source="rollout", scenario_type=base.meta.scenario_type, extra=facts),
        ego_params=base.ego_params,
    )
    hits = [(a, f) for a, f in find_collisions(draft) if start_frame <= f < end]  # contacts while recorded
    if not hits:
        return draft
    agent, frame = hits[0]
    meta = SceneMeta(
        source="rollout", scenario_type=base.meta.scenario_type, colliding_agent_id=agent, collision_frame=frame,
        extra=facts,
    )
    return replace(draft, meta=meta)


def observation_ref(scene: Scene, t: int, origin: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What is needed to re-create the observation at frame ``t`` of ``scene``.

    ``{"scene_id", "frame", "time_s", "source", "scenario_type", "origin": {...}}`` where ``origin`` says how to
    re-create the scene: ``{"kind": "bank", "scenario_type", "seed"}`` (``envs.bank.generate_scene``),
    ``{"kind": "deepaccident", "root", "split"}`` or, for rollouts, ``{"kind": "rollout", "base": <origin of the
    base scene>, "base_scene_id", "start_frame", "ego_poses", "ego_velocities"}`` (rebuild with
    :func:`rollout_to_scene`). ``origin`` given by the caller wins; else it is filled from ``scene.meta.extra``
    (``seed`` for synthetic scenes).
    """
    ref: dict[str, Any] = {
        "scene_id": scene.scene_id,
        "frame": int(t),
        "time_s": float(t * scene.dt),
        "source": scene.meta.source,
        "scenario_type": scene.meta.scenario_type,
    }
    extra = scene.meta.extra
    if scene.meta.source == "rollout":
        ref["origin"] = {
            "kind": "rollout",
            "base": dict(extra.get("base_origin", {})),
            "base_scene_id": extra.get("base_scene_id"),
            "start_frame": extra.get("start_frame"),
            "ego_poses": extra.get("rollout_ego_poses"),
            "ego_velocities": extra.get("rollout_ego_velocities"),
        }
    elif origin is not None:
        ref["origin"] = dict(origin)
    else:
        ref["origin"] = scene_origin(scene)
    return ref


def scene_origin(scene: Scene) -> dict[str, Any]:
    """How to re-create a scene from its meta data: bank scenes ``{"kind": "bank", "scenario_type", "seed",
    "scene_id", "variant"}``; other sources ``{"kind": <source>, "scene_id"}`` (the caller should pass a fuller origin)."""
    extra = scene.meta.extra
    if scene.meta.source == "synthetic" and "seed" in extra:
        origin = {"kind": "bank", "scenario_type": scene.meta.scenario_type, "seed": _plain(extra["seed"]),
                  "scene_id": scene.scene_id}
        if extra.get("variant") is not None:
            origin["variant"] = _plain(extra["variant"])
        return origin
    return {"kind": scene.meta.source, "scene_id": scene.scene_id}


def resolve_scene(ref_or_origin: Mapping[str, Any]) -> Scene:
    """Re-create the scene of an observation reference (or of its ``origin``).

    Supports ``bank`` (:func:`envs.bank.generate_scene`), ``bank_index`` (``ScenarioBank(num_scenes, seed,
    scenario_types)[index]``), ``deepaccident`` (``root``, ``split``, ``index``) and
    ``rollout`` (the base scene, then :func:`rollout_to_scene` with the recorded ego states). Raises ``ValueError``
    naming the kind for anything else.
    """
    origin = ref_or_origin.get("origin", ref_or_origin)
    kind = origin.get("kind")
    if kind == "bank":
        from envs.bank import generate_scene

        kwargs = {"variant": origin["variant"]} if origin.get("variant") is not None else {}
        if origin.get("scene_id"):
            kwargs["scene_id"] = origin["scene_id"]
        return generate_scene(origin["scenario_type"], int(origin["seed"]), **kwargs)
    if kind == "bank_index":
        from envs.bank import ScenarioBank

        types = origin.get("scenario_types")
        bank = ScenarioBank(int(origin["num_scenes"]), seed=int(origin["seed"]), scenario_types=types)
        return bank[int(origin["index"])]
    if kind == "deepaccident":
        from envs.deepaccident import DeepAccidentDataset

        return DeepAccidentDataset(origin["root"], split=origin.get("split", "train"), strict=False)[int(origin["index"])]
    if kind == "rollout":
        base = resolve_scene(origin["base"])
        return rollout_to_scene(
            base,
            int(origin["start_frame"]),
            np.asarray(origin["ego_poses"], dtype=np.float64),
            np.asarray(origin["ego_velocities"], dtype=np.float64),
            scene_id=ref_or_origin.get("scene_id"),
            origin=origin["base"],
        )
    raise ValueError(f"resolve_scene: cannot re-create a scene of origin kind {kind!r} ({dict(origin)})")


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value

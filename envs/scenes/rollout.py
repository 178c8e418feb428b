"""Closed-loop rollouts as scenes, and box contacts over a whole scene.

* :func:`contact_matrix` / :func:`find_collisions`: where the ego box overlaps an agent box in a scene's log (the
  scorer's collision test, :func:`rewards.geometry.boxes_overlap`).
* :func:`rollout_to_scene`: a recorded closed-loop episode (replay env, CARLA) as a :class:`~envs.scenes.scene.Scene` with
  ``meta.source="rollout"``, so the miner, GRPO's group scoring and evaluation treat it like any log. Its origin
  (:class:`envs.scenes.sources.RolloutOrigin`) re-creates it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

import numpy as np

from envs.scenes.scene import Scene, SceneMeta
from rewards.geometry import box_corners, boxes_overlap, vehicle_corners


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


def rollout_to_scene(
    base: Scene,
    start_frame: int,
    ego_poses: np.ndarray,
    ego_velocities: np.ndarray,
    scene_id: str | None = None,
    origin: Any = None,
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
        origin: how to re-create ``base`` (an :class:`envs.scenes.sources.Origin` or its dict), stored as a dict in
            ``meta.extra["base_origin"]``.
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
        "base_origin": origin.to_dict() if hasattr(origin, "to_dict") else dict(origin or {}),
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

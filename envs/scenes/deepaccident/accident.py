"""Accident truth of a DeepAccident scenario: *whether* and *with whom* from the meta file, *when* from the boxes.

The meta file is the truth about whether the observing agent collided and with which actor
(:class:`~envs.scenes.deepaccident.meta.MetaInfo`): the public code takes the two colliding actor ids from tokens 2 and 4
of line 1 and drops the observer's own id (``DeepAccident_dataset.py`` lines 661-671). It does not say *when*, so
the collision frame is located in the tracks:

1. the first frame where the ego box overlaps (or touches) the named actor's box (the scorer's own test,
   :func:`rewards.geometry.boxes_overlap`), else
2. the frame of minimum distance between the two boxes (logged boxes of a real crash can stay a few centimetres
   apart: CARLA's collision sensor fires on the meshes, not on the label boxes).

Disagreements between meta and boxes are kept in :class:`CollisionFacts` (and ``meta.extra``) and warned about:
meta says collision but the boxes never overlap (frame from the minimum distance); the named actor is not in the
labels (frame from the first overlap with any agent, if any); another agent overlaps the ego before the named one;
boxes overlap but meta reports no collision of the observer (the scene stays a non-accident: meta is the truth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.scenes.deepaccident.collision import ego_agent_distances, first_overlap
from envs.scenes.deepaccident.meta import SHORT_AGENT_NAMES, MetaInfo, agent_full_name


@dataclass(frozen=True)
class CollisionFacts:
    """Where meta and boxes put the observer's collision.

    Attributes:
        meta_collision: meta reports a collision (any actors).
        observer_collides: meta reports a collision involving the observing agent (by actor id or by name).
        meta_actor_id: the other colliding actor per meta (None: not involved, or not identifiable).
        colliding_agent_id: the agent id stored in the scene (the meta actor if it has a track, else the first
            overlapping agent when meta's actor is missing), or None.
        frame: the collision frame index stored in the scene, or None (no collision of the observer located).
        source: how ``frame`` was found: ``"overlap"``, ``"min_distance"``, ``"overlap_any_agent"`` or None.
        overlap_frame: first overlap with meta's actor (None: never, or no track).
        min_distance_frame, min_distance: frame index and distance [m] of the closest approach to meta's actor.
        first_overlap_any: ``(agent_id, frame)`` of the first overlap with any agent, or None.
        disagreements: human-readable disagreements between meta and boxes (empty when they agree).
        note: one sentence on how the facts were established.
    """

    meta_collision: bool
    observer_collides: bool
    meta_actor_id: int | None
    colliding_agent_id: int | None
    frame: int | None
    source: str | None
    overlap_frame: int | None
    min_distance_frame: int | None
    min_distance: float | None
    first_overlap_any: tuple[int, int] | None
    disagreements: tuple[str, ...]
    note: str

    def as_extra(self) -> dict:
        """Plain entries for ``meta.extra``."""
        return {
            "observer_collides": self.observer_collides,
            "collision_meta_actor_id": self.meta_actor_id,
            "collision_frame_source": self.source,
            "collision_frame_overlap": self.overlap_frame,
            "collision_frame_min_distance": self.min_distance_frame,
            "collision_min_distance_m": None if self.min_distance is None else round(self.min_distance, 4),
            "first_overlap_any": None if self.first_overlap_any is None else list(self.first_overlap_any),
            "collision_disagreements": self.disagreements,
            "collision_note": self.note,
        }


def _short_names(agent: str) -> set[str]:
    return {agent} | {short for short, full in SHORT_AGENT_NAMES.items() if full == agent}


def meta_collision_actors(meta: MetaInfo, agent: str) -> tuple[bool, list[int]]:
    """Whether meta's collision involves ``agent``, and the candidate ids of the other actor (most likely first).

    Involvement: the observer's actor id (``agents id:`` line) is one of the two collision ids, or its name is on the
    ``colliding agents:`` line. Candidates: the collision ids other than the observer's (the public code's rule),
    then the actor ids of the other V2X agents named on the ``colliding agents:`` line.
    """
    if not meta.collision:
        return False, []
    observer_id = meta.agent_actor_ids.get(agent)
    by_id = observer_id is not None and observer_id in meta.collision_actor_ids
    by_name = bool(_short_names(agent) & set(meta.colliding_agents))
    if not (by_id or by_name):
        return False, []
    candidates = [i for i in meta.collision_actor_ids if i is not None and i != observer_id]
    for name in meta.colliding_agents:
        other = meta.agent_actor_ids.get(agent_full_name(name))
        if name not in _short_names(agent) and other is not None and other != observer_id and other not in candidates:
            candidates.append(other)
    return True, candidates


def locate_collision(
    meta: MetaInfo,
    agent: str,
    agent_ids: np.ndarray,
    agent_poses: np.ndarray,
    agent_sizes: np.ndarray,
    agent_valid: np.ndarray,
    ego_centers: np.ndarray,
    ego_size: np.ndarray,
) -> CollisionFacts:
    """Collision facts of the observer ``agent`` (see the module docstring).

    Args:
        meta: the parsed meta file.
        agent: the observing V2X agent (``ego_vehicle``, ...).
        agent_ids: ``(N,)`` track ids; agent_poses: ``(N, T, 3)`` box-centre poses, world frame;
            agent_sizes: ``(N, 2)`` [m]; agent_valid: ``(N, T)`` bool.
        ego_centers: ``(T, 3)`` ego box-centre poses; ego_size: ``(2,)`` length, width [m] (the scene's ego box).
    """
    ids = [int(i) for i in agent_ids]
    involved, candidates = meta_collision_actors(meta, agent)
    any_hit = first_overlap(ego_centers, ego_size, agent_poses, agent_sizes, agent_valid)
    any_overlap = None if any_hit is None else (ids[any_hit[0]], int(any_hit[1]))
    tracked = [c for c in candidates if c in ids]
    actor = tracked[0] if tracked else (candidates[0] if candidates else None)
    disagreements: list[str] = []
    common = {"meta_collision": meta.collision, "observer_collides": involved, "meta_actor_id": actor,
              "first_overlap_any": any_overlap}

    if not involved:
        note = ("meta reports no collision (all 7 collision tokens are -1)" if not meta.collision else
                f"the collision in meta does not involve {agent} (actor ids {meta.collision_actor_ids}, colliding "
                f"agents {meta.colliding_agents})")
        if any_overlap is not None:
            disagreements.append(
                f"agent {any_overlap[0]}'s box overlaps the ego box at frame index {any_overlap[1]} but meta reports "
                f"no collision of {agent}; kept as a non-accident (meta is the truth)")
        return CollisionFacts(**common, colliding_agent_id=None, frame=None, source=None, overlap_frame=None,
                              min_distance_frame=None, min_distance=None, disagreements=tuple(disagreements),
                              note=note)

    if not tracked:
        missing = f"meta's colliding actor {actor}" if actor is not None else "meta's colliding actor (no id)"
        if any_overlap is not None:
            disagreements.append(f"{missing} has no label track; the collision frame is the first overlap of the "
                                 f"ego box with agent {any_overlap[0]} (frame index {any_overlap[1]})")
            return CollisionFacts(**common, colliding_agent_id=any_overlap[0], frame=any_overlap[1],
                                  source="overlap_any_agent", overlap_frame=None, min_distance_frame=None,
                                  min_distance=None, disagreements=tuple(disagreements),
                                  note="collision per meta; its actor has no track: frame of the first box overlap")
        disagreements.append(f"meta reports a collision of {agent} but {missing} has no label track and no box "
                             "overlaps the ego box: no collision frame, the scene is kept as a non-accident")
        return CollisionFacts(**common, colliding_agent_id=None, frame=None, source=None, overlap_frame=None,
                              min_distance_frame=None, min_distance=None, disagreements=tuple(disagreements),
                              note="collision per meta, but it cannot be located in the labels")

    row = ids.index(actor)
    hit = first_overlap(ego_centers, ego_size, agent_poses, agent_sizes, agent_valid, candidates=[row])
    overlap_frame = None if hit is None else int(hit[1])
    valid = np.asarray(agent_valid[row], dtype=bool)
    dist = np.where(valid, ego_agent_distances(ego_centers, ego_size, agent_poses[row], agent_sizes[row]), np.inf)
    d_frame = int(np.argmin(dist))
    d_min = float(dist[d_frame])
    if overlap_frame is not None:
        frame, source = overlap_frame, "overlap"
        note = f"colliding actor {actor} from meta; frame of the first box overlap"
    else:
        frame, source = d_frame, "min_distance"
        note = f"colliding actor {actor} from meta; its box never overlaps the ego box: frame of minimum distance"
        disagreements.append(f"meta says {agent} collides with actor {actor} but their boxes never overlap (closest "
                             f"{d_min:.3f} m at frame index {d_frame}); collision frame = that frame")
    if any_overlap is not None and any_overlap[0] != actor and any_overlap[1] < frame:
        disagreements.append(f"agent {any_overlap[0]} overlaps the ego box first (frame index {any_overlap[1]}), "
                             f"before meta's colliding actor {actor} (frame index {frame})")
    return CollisionFacts(**common, colliding_agent_id=actor, frame=frame, source=source,
                          overlap_frame=overlap_frame, min_distance_frame=d_frame, min_distance=d_min,
                          disagreements=tuple(disagreements), note=note)

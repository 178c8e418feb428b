"""Anchor pairs in closed loop: which pair applies to the current state, and its trajectories in the current ego frame.

An anchor pair (:class:`counterfactual.dataset.AnchorPair`) was mined at a **decision state**: a scene, a decision
frame and the ego state there. Its ``negative`` (the driven trajectory into the crash) and ``positive`` (the
verified-safe counterfactual) are ``(8, 3)`` rear-axle poses in the **ego frame of that decision state**.

* **Logged pairs** (the mined dataset, bank / DeepAccident / CARLA scenes): the decision state is the *logged* ego
  at ``decision_frame`` (the env knows it: :attr:`DecisionContext.logged_pose`).
* **Online pairs** (``counterfactual.online``: mined from this run's closed-loop crashes; ``source == "rollout"``):
  the decision state is the ego state the rollout recorded at ``decision_frame`` (from the pair's
  ``observation_ref["origin"]``: base scene id, start frame, recorded world poses and velocities).

**When a pair applies.** In closed loop the ego drifts from the state a pair was mined at, so a pair joins the group
of a state only when (a) it belongs to the same base scene and the same frame (``decision_frame == t``; the replay
env re-plans every 0.5 s from its start 3 s before the logged collision, i.e. on the miner's lead times 1, 2, 3 s),
and (b) the current ego is still near the pair's decision state: rear axle within
:attr:`AnchorTolerance.position` [m], speed within :attr:`AnchorTolerance.speed` [m/s] and heading within
:attr:`AnchorTolerance.heading` [rad]. The episode's first decision in an accident scene starts exactly on the log,
so logged pairs of lead time 3 s always apply there; later ones apply while the policy stays near the log.

**Frame change.** Poses go world <- decision ego frame -> current ego frame:
``p_world = local_to_world(p, decision_pose)``, ``p_current = world_to_local(p_world, current_pose)``
(:mod:`rewards.geometry`; exact rigid transforms, yaw wrapped). The mapped trajectories are then re-scored from the
current state with the sampled members (:meth:`envs.replay_env.ReplayEnv.score_group`), so their rewards are exact
for the state they are used in, whatever the drift.

**No pair.** When no pair applies (normal scenes, states away from every decision state, anchors switched off, an
empty bank) the group holds the ``G`` sampled members only and is plain GRPO for that state; the share of states
with anchors is logged (``anchors/state_share``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from counterfactual.dataset import AnchorPair
from rewards.geometry import local_to_world, world_to_local, wrap_angle


@dataclass(frozen=True)
class DecisionContext:
    """Where the ego is at a decision (returned by :meth:`agents.grpo.env.GroupEnvWrapper.decision_context`).

    Attributes:
        scene_id: the logged scene's id (a rollout's base scene).
        frame: the current frame ``t``.
        pose: ``(3,)`` current rear-axle pose, world frame [m, m, rad].
        speed: current speed [m/s].
        logged_pose: ``(3,)`` the log's ego pose at ``t``, world frame.
        logged_speed: the log's ego speed at ``t`` [m/s].
    """

    scene_id: str
    frame: int
    pose: np.ndarray
    speed: float
    logged_pose: np.ndarray
    logged_speed: float


@dataclass(frozen=True)
class AnchorTolerance:
    """How near the pair's decision state the ego must be for the pair to apply (module docstring)."""

    position: float = 2.0
    """Rear-axle distance [m]."""
    speed: float = 2.0
    """Speed difference [m/s]."""
    heading: float = 0.35
    """Heading difference [rad]."""


@dataclass(frozen=True)
class Anchor:
    """One pair ready to join a group: its trajectories in the **current** ego frame.

    Attributes:
        pair_id: the pair's id.
        positive: ``(8, 3)`` [m, m, rad] or None (a pair without a verified positive).
        negative: ``(8, 3)``.
        explanation: the pair's safety-label explanation (the text token policies condition the anchors on).
        online: mined during this run.
    """

    pair_id: str
    positive: np.ndarray | None
    negative: np.ndarray
    explanation: str
    online: bool


@dataclass(frozen=True)
class _Entry:
    pair: AnchorPair
    pose: np.ndarray | None
    """Decision pose (world); None: the logged ego pose at the frame."""
    speed: float | None
    online: bool


def _rollout_state(pair: AnchorPair) -> tuple[str, np.ndarray, float]:
    """Base scene id and the recorded (world pose, speed) at the decision frame of a rollout pair."""
    ref = pair.observation_ref or {}
    origin = ref.get("origin") or {}
    if origin.get("kind") != "rollout":
        raise ValueError(f"anchor pair {pair.pair_id}: source 'rollout' without a rollout origin in observation_ref")
    base = origin.get("base_scene_id") or (origin.get("base") or {}).get("scene_id")
    if not base:
        base = str(pair.scene_id).split("/", 1)[-1].split("@", 1)[0]
    k = int(pair.decision_frame) - int(origin["start_frame"])
    poses = np.asarray(origin["ego_poses"], dtype=np.float64)
    vels = np.asarray(origin["ego_velocities"], dtype=np.float64)
    if not 0 <= k < len(poses):
        raise ValueError(f"anchor pair {pair.pair_id}: decision frame {pair.decision_frame} outside the recorded "
                         f"frames [{origin['start_frame']}, {int(origin['start_frame']) + len(poses)})")
    return str(base), poses[k], float(np.hypot(*vels[k]))


class AnchorBank:
    """Anchor pairs indexed by (base scene id, decision frame); :meth:`lookup` returns the pair that applies to a
    :class:`DecisionContext` in the current ego frame (module docstring).

    Args:
        pairs: logged pairs (e.g. :func:`counterfactual.dataset.load_anchor_pairs`); rollout pairs are accepted too.
        tolerance: :class:`AnchorTolerance`.
        negative_only: also keep pairs without a positive (their negative alone joins the group).
    """

    def __init__(self, pairs: Iterable[AnchorPair] = (), tolerance: AnchorTolerance = AnchorTolerance(),
                 negative_only: bool = True) -> None:
        self.tolerance = tolerance
        self.negative_only = negative_only
        self._index: dict[tuple[str, int], list[_Entry]] = {}
        self._ids: set[str] = set()
        self.num_online = 0
        self.add(pairs)

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, pairs: Iterable[AnchorPair], online: bool = False) -> int:
        """Index pairs (duplicates by ``pair_id`` and, unless ``negative_only``, pairs without a positive are
        skipped); returns how many were added."""
        added = 0
        for pair in pairs:
            if not isinstance(pair, AnchorPair):
                raise ValueError(f"AnchorBank.add: expected AnchorPair records, got {type(pair).__name__}")
            if pair.pair_id in self._ids or (pair.positive is None and not self.negative_only):
                continue
            if pair.source == "rollout":
                scene_id, pose, speed = _rollout_state(pair)
                entry = _Entry(pair, pose, speed, online)
            else:
                scene_id, entry = pair.scene_id, _Entry(pair, None, None, online)
            self._index.setdefault((scene_id, int(pair.decision_frame)), []).append(entry)
            self._ids.add(pair.pair_id)
            added += 1
            self.num_online += int(online)
        for entries in self._index.values():  # deterministic preference: with a positive first, then by id
            entries.sort(key=lambda e: (e.pair.positive is None, e.pair.pair_id))
        return added

    def candidates(self, scene_id: str, frame: int) -> list[AnchorPair]:
        """Pairs indexed at (scene, frame), in preference order."""
        return [e.pair for e in self._index.get((scene_id, int(frame)), [])]

    def lookup(self, context: DecisionContext | Mapping[str, Any]) -> Anchor | None:
        """The first pair at ``(context.scene_id, context.frame)`` whose decision state is within the tolerance of
        the current ego, mapped into the current ego frame; None when none applies."""
        if isinstance(context, Mapping):
            context = DecisionContext(**context)
        entries = self._index.get((context.scene_id, int(context.frame)))
        if not entries:
            return None
        tol = self.tolerance
        pose = np.asarray(context.pose, dtype=np.float64)
        for e in entries:
            origin = np.asarray(context.logged_pose if e.pose is None else e.pose, dtype=np.float64)
            speed = float(context.logged_speed if e.speed is None else e.speed)
            if (np.hypot(*(pose[:2] - origin[:2])) > tol.position or abs(context.speed - speed) > tol.speed
                    or abs(float(wrap_angle(pose[2] - origin[2]))) > tol.heading):
                continue
            pair = e.pair
            return Anchor(
                pair_id=pair.pair_id,
                positive=None if pair.positive is None else to_current_frame(pair.positive, origin, pose),
                negative=to_current_frame(pair.negative, origin, pose),
                explanation=_explanation(pair),
                online=e.online,
            )
        return None


def _explanation(pair: AnchorPair) -> str:
    """The pair's explanation text (re-generated from the label fields when the file stored none)."""
    label = pair.label
    if label.explanation:
        return label.explanation
    from counterfactual.language import explain

    return explain(label, label.explanation_seed)


def to_current_frame(trajectory: np.ndarray, decision_pose: np.ndarray, current_pose: np.ndarray) -> np.ndarray:
    """Ego-frame poses ``(..., 3)`` of a decision state (world pose ``decision_pose (3,)``) expressed in the ego frame
    of ``current_pose (3,)``: world <- decision frame -> current frame [m, m, rad]."""
    return world_to_local(local_to_world(trajectory, decision_pose), current_pose)

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
of a state only when (a) it belongs to the same base scene at the same time, and (b) the current ego is still near
the pair's ego state at that time: rear axle within :attr:`AnchorTolerance.position` [m], speed within
:attr:`AnchorTolerance.speed` [m/s] and heading within :attr:`AnchorTolerance.heading` [rad].

* Logged pairs match at ``decision_frame == t`` exactly, compared with the logged ego at ``t``. The replay env starts
  an accident episode 3 s before the logged collision and re-plans every 0.5 s, i.e. on the miner's decision frames
  (lead times 1, 2, 3 s), so a logged pair of lead 3 s always applies at the episode's first decision (the ego starts
  on the log) and later ones while the policy stays near the log.
* Online pairs were mined at decision frames ``t'`` counted back from a contact at any simulated frame, generally off
  the episode's 0.5 s grid: one matches when ``|t - t'| <= frame_tolerance`` (half a re-planning interval), compared
  with the rollout's recorded ego at ``t``, and its trajectories are first **aligned in time**: re-sampled at
  ``(t - t') dt + 0.5 k`` s along the plan (linear in x, y, unwrapped yaw; the decision pose as the plan's time 0;
  linear extrapolation beyond its last 0.5 s interval, at most 0.2 s).

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
    """Where the ego is at a decision (returned by :meth:`agents.rl.env.GroupEnvWrapper.decision_context`).

    Attributes:
        scene_id: the logged scene's id (a rollout's base scene).
        frame: the current frame ``t``.
        pose: ``(3,)`` current rear-axle pose, world frame [m, m, rad].
        speed: current speed [m/s].
        logged_pose: ``(3,)`` the log's ego pose at ``t``, world frame.
        logged_speed: the log's ego speed at ``t`` [m/s].
        dt: the scene's frame step [s].
    """

    scene_id: str
    frame: int
    pose: np.ndarray
    speed: float
    logged_pose: np.ndarray
    logged_speed: float
    dt: float = 0.1


@dataclass(frozen=True)
class AnchorTolerance:
    """How near the pair's decision state the ego must be for the pair to apply (module docstring)."""

    position: float = 2.0
    """Rear-axle distance [m]."""
    speed: float = 2.0
    """Speed difference [m/s]."""
    heading: float = 0.35
    """Heading difference [rad]."""
    frames: int = 2
    """Online pairs: largest ``|t - decision_frame|`` [frames] (half a 0.5 s re-planning interval at 10 Hz)."""


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
    start: int | None
    """Online pairs: first recorded frame; None: a logged pair (its decision state is the logged ego)."""
    poses: np.ndarray | None
    """Online pairs: ``(R, 3)`` recorded rear-axle poses from ``start``, world frame."""
    speeds: np.ndarray | None
    """Online pairs: ``(R,)`` recorded speeds [m/s]."""
    online: bool


def _rollout_record(pair: AnchorPair) -> tuple[str, int, np.ndarray, np.ndarray]:
    """Base scene id, start frame, recorded world poses ``(R, 3)`` and speeds ``(R,)`` of a rollout pair."""
    ref = pair.observation_ref or {}
    origin = ref.get("origin") or {}
    if origin.get("kind") != "rollout":
        raise ValueError(f"anchor pair {pair.pair_id}: source 'rollout' without a rollout origin in observation_ref")
    base = origin.get("base_scene_id") or (origin.get("base") or {}).get("scene_id")
    if not base:
        base = str(pair.scene_id).split("/", 1)[-1].split("@", 1)[0]
    start = int(origin["start_frame"])
    poses = np.asarray(origin["ego_poses"], dtype=np.float64).reshape(-1, 3)
    speeds = np.hypot(*np.asarray(origin["ego_velocities"], dtype=np.float64).reshape(-1, 2).T)
    if not 0 <= int(pair.decision_frame) - start < len(poses):
        raise ValueError(f"anchor pair {pair.pair_id}: decision frame {pair.decision_frame} outside the recorded "
                         f"frames [{start}, {start + len(poses)})")
    return str(base), start, poses, speeds


def shift_in_time(trajectory: np.ndarray, shift_s: float, interval: float = 0.5) -> np.ndarray:
    """A plan ``(K, 3)`` (poses at ``interval * (1..K)`` s in its own decision frame) re-sampled at
    ``shift_s + interval * (1..K)`` s: linear in x, y and the unwrapped yaw, the decision pose ``(0, 0, 0)`` as time 0,
    linear extrapolation before 0 and after the last pose."""
    traj = np.asarray(trajectory, dtype=np.float64)
    if shift_s == 0:
        return traj.copy()
    poses = np.concatenate([np.zeros((1, 3)), traj])
    poses[:, 2] = np.unwrap(poses[:, 2])
    times = interval * np.arange(len(poses))
    new = shift_s + times[1:]
    i = np.clip(np.searchsorted(times, new, side="right") - 1, 0, len(poses) - 2)
    w = ((new - times[i]) / interval)[:, None]
    out = poses[i] + w * (poses[i + 1] - poses[i])
    out[:, 2] = wrap_angle(out[:, 2])
    return out


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
                scene_id, start, poses, speeds = _rollout_record(pair)
                entry = _Entry(pair, start, poses, speeds, online)
            else:
                scene_id, entry = pair.scene_id, _Entry(pair, None, None, None, online)
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
        """The first pair (preference order; logged pairs at the exact frame first, then online pairs by frame
        distance) that applies to the current state, mapped into the current ego frame; None when none applies."""
        if isinstance(context, Mapping):
            context = DecisionContext(**context)
        tol = self.tolerance
        t = int(context.frame)
        pose = np.asarray(context.pose, dtype=np.float64)
        for offset in sorted(range(-tol.frames, tol.frames + 1), key=abs):
            for e in self._index.get((context.scene_id, t + offset), ()):
                pair = e.pair
                if e.start is None:  # logged pair: its decision state is the logged ego at t
                    if offset:
                        continue
                    reference, decision, ref_speed, shift = context.logged_pose, context.logged_pose, \
                        context.logged_speed, 0.0
                else:  # online pair: the rollout's recorded ego at t and at its decision frame
                    k, k0 = t - e.start, int(pair.decision_frame) - e.start
                    if not 0 <= k < len(e.poses):
                        continue
                    reference, decision, ref_speed = e.poses[k], e.poses[k0], float(e.speeds[k])
                    shift = (t - int(pair.decision_frame)) * float(context.dt)
                reference = np.asarray(reference, dtype=np.float64)
                if (np.hypot(*(pose[:2] - reference[:2])) > tol.position or abs(context.speed - ref_speed) > tol.speed
                        or abs(float(wrap_angle(pose[2] - reference[2]))) > tol.heading):
                    continue

                def here(traj: np.ndarray, shift: float = shift, decision: np.ndarray = decision) -> np.ndarray:
                    return to_current_frame(shift_in_time(traj, shift), np.asarray(decision, dtype=np.float64),
                                            pose)

                return Anchor(pair_id=pair.pair_id, positive=None if pair.positive is None else here(pair.positive),
                              negative=here(pair.negative), explanation=_explanation(pair), online=e.online)
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

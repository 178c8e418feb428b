"""Online mining: record closed-loop episodes of a :class:`~envs.replay_env.ReplayEnv`, mine the ones that crash.

* :class:`CollisionMiningWrapper` (a ``gymnasium.Wrapper``) records the ego's simulated states of every episode;
  when an episode ends with ``info["collision"]``, it turns the episode into a rollout scene
  (:func:`envs.scenes.rollout.rollout_to_scene`), mines it (:func:`counterfactual.miner.mine_scene`), keeps the
  pairs in :attr:`CollisionMiningWrapper.pairs` and returns them in the final step's ``info["anchor_pairs"]`` (so
  they travel through SB3 vector envs, also sub-process ones: pairs are plain picklable records).
* :class:`OnlineMiningCallback` (a stable-baselines3 ``BaseCallback``) gathers ``info["anchor_pairs"]`` from every
  step's infos into :attr:`OnlineMiningCallback.pairs`, logs counts, and optionally rewrites a parquet file
  atomically every ``flush_every`` new pairs and at the end of training.

Ego velocities of the recorded frames come from the env's ``ego_velocities`` when it has one; otherwise they are
the finite differences of the recorded rear-axle positions (``numpy.gradient``, one-sided at the ends) with the
first frame's velocity taken from the log (a closed-loop episode starts from the logged state).
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import gymnasium as gym
import numpy as np

from counterfactual.dataset import AnchorPair, write_anchor_pairs
from counterfactual.miner import MinerConfig, SceneMining, mine_scene
from envs.scenes.rollout import rollout_to_scene
from envs.scenes.sources import scene_origin
from envs.scenes.scene import Scene


class CollisionMiningWrapper(gym.Wrapper):
    """Mine anchor pairs from closed-loop episodes that end in a collision (see the module docstring).

    Args:
        env: a closed-loop :class:`~envs.replay_env.ReplayEnv` (or a wrapper around one).
        config: miner configuration.
        policy_name: stored in the rollout scene's ``meta.extra["policy"]``.
        mine_every_collision: mine each colliding episode (True) — set False to only record.

    Attributes:
        pairs: every pair mined so far.
        episodes: finished episodes; ``collisions``: of them, ending in a collision.
        last_mining: the :class:`~counterfactual.miner.SceneMining` of the last mined episode.
    """

    def __init__(self, env: gym.Env, config: MinerConfig = MinerConfig(), policy_name: str = "policy",
                 mine_every_collision: bool = True) -> None:
        super().__init__(env)
        base = env.unwrapped
        if getattr(base, "mode", None) != "closed_loop":
            raise ValueError(f"CollisionMiningWrapper needs a closed-loop ReplayEnv, got mode {getattr(base, 'mode', None)!r}")
        self.config = config
        self.policy_name = policy_name
        self.mine_every_collision = mine_every_collision
        self.pairs: list[AnchorPair] = []
        self.episodes = 0
        self.collisions = 0
        self.last_mining: SceneMining | None = None
        self._scene: Scene | None = None
        self._start = 0

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        base = self.env.unwrapped
        self._scene = base.scene
        self._start = int(base.t)
        return obs, info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            self.episodes += 1
            if info.get("collision"):
                self.collisions += 1
                if self.mine_every_collision:
                    mined = self._mine()
                    info = dict(info)
                    info["anchor_pairs"] = mined.pairs
                    info["mined_moments"] = len(mined.moments)
        return obs, reward, terminated, truncated, info

    def recorded_states(self) -> tuple[np.ndarray, np.ndarray]:
        """``(poses (R, 3), velocities (R, 2))`` of the current episode from its start frame to the current frame."""
        base = self.env.unwrapped
        scene = self._scene
        if scene is None:
            raise RuntimeError("CollisionMiningWrapper: call reset() first")
        t = int(base.t)
        poses = np.array(base.ego_poses[self._start : t + 1], dtype=np.float64)
        env_vel = getattr(base, "ego_velocities", None)
        if env_vel is not None:
            vels = np.array(env_vel[self._start : t + 1], dtype=np.float64)
        elif len(poses) > 1:
            vels = np.gradient(poses[:, :2], scene.dt, axis=0)
            vels[0] = scene.ego_velocities[self._start]
        else:
            vels = scene.ego_velocities[self._start : self._start + 1].copy()
        return poses, vels

    def _mine(self) -> SceneMining:
        scene = self._scene
        assert scene is not None
        poses, vels = self.recorded_states()
        rollout = rollout_to_scene(
            scene,
            self._start,
            poses,
            vels,
            scene_id=f"rollout/{scene.scene_id}@{self._start}/ep{self.episodes:06d}",
            origin=scene_origin(scene),
            extra={"policy": self.policy_name, "episode": self.episodes},
        )
        mined = mine_scene(rollout, self.config)
        self.pairs.extend(mined.pairs)
        self.last_mining = mined
        return mined


def _base_callback():
    from stable_baselines3.common.callbacks import BaseCallback

    return BaseCallback


class OnlineMiningCallback(_base_callback()):
    """Collect pairs mined by :class:`CollisionMiningWrapper` during SB3 training (see the module docstring).

    Args:
        flush_path: parquet file rewritten (atomically) with all pairs collected so far; None keeps them in memory.
        flush_every: rewrite after this many new pairs (0: only at the end of training).
        verbose: SB3 verbosity.
    """

    def __init__(self, flush_path: str | os.PathLike | None = None, flush_every: int = 0, verbose: int = 0) -> None:
        super().__init__(verbose)
        if flush_every < 0:
            raise ValueError(f"flush_every: must be >= 0, got {flush_every}")
        self.flush_path = flush_path
        self.flush_every = int(flush_every)
        self.pairs: list[AnchorPair] = []
        self._unflushed = 0

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            new = info.get("anchor_pairs") if isinstance(info, Mapping) else None
            if new:
                self.pairs.extend(new)
                self._unflushed += len(new)
        self.logger.record("mining/pairs", len(self.pairs))
        self.logger.record("mining/with_positive", sum(p.has_positive for p in self.pairs))
        if self.flush_path is not None and self.flush_every and self._unflushed >= self.flush_every:
            self.flush()
        return True

    def _on_training_end(self) -> None:
        if self.flush_path is not None and self._unflushed:
            self.flush()

    def flush(self) -> None:
        """Rewrite :attr:`flush_path` with every pair collected so far."""
        if self.flush_path is None:
            raise ValueError("OnlineMiningCallback.flush: no flush_path was given")
        write_anchor_pairs(self.pairs, self.flush_path)
        self._unflushed = 0

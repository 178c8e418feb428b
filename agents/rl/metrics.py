"""The driving metrics an RL run logs to TensorBoard, the same for GRPO and the PPO baseline.

:class:`DrivingMetrics` reads the closed-loop env's ``info`` of every stepped action: per step the scorer terms
(``rollout/pdms``, ``rollout/sp_pdms``, ``rollout/collision_term``) and the progress-first reward's terms
(``rollout/route_progress``: the route completion the step gained, ``rollout/soft_factor``,
``rollout/speed_ratio``: the minimum-speed infraction's ego / traffic speed ratio, steps with traffic only), per
finished episode ``rollout/collision_rate`` (episodes ending in a collision), ``rollout/route_completion``,
``rollout/driving_score`` and ``rollout/stopped_share`` (from ``info["driving_metrics"]``, :mod:`envs.sim.metrics`);
means over rolling windows. An episode cut short because its worker died (``termination_reason ==
"worker_restart"``, :mod:`envs.vec.ray_vec_env`) says nothing about the policy: it is left out of the episode means
and counted in ``rollout/worker_restarts`` (total so far).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Iterable, Mapping

import numpy as np

from envs.vec.ray_vec_env import WORKER_RESTART

STEP_TERMS = (("pdms", "pdms"), ("sp_pdms", "sp_pdms"), ("collision", "collision_term"),
              ("route_progress", "route_progress"), ("soft_factor", "soft_factor"), ("speed_ratio", "speed_ratio"))
"""``(key in info["rewards"], logged name)`` of the per-step terms."""
EPISODE_TERMS = ("collision_rate", "route_completion", "driving_score", "stopped_share")
"""Per-episode metrics (logged as ``rollout/<name>``)."""


class DrivingMetrics:
    """Rolling means of the per-step terms (last ``step_window`` steps) and the per-episode metrics (last
    ``episode_window`` episodes) of the stepped actions."""

    def __init__(self, episode_window: int = 100, step_window: int = 1000) -> None:
        self.steps: dict[str, deque] = {name: deque(maxlen=step_window) for _, name in STEP_TERMS}
        self.episodes: dict[str, deque] = {name: deque(maxlen=episode_window) for name in EPISODE_TERMS}
        self.worker_restarts = 0

    def update(self, infos: Iterable[Mapping[str, Any]], dones: Iterable[bool]) -> None:
        """Add one vector-env step (``infos`` and ``dones`` of every env)."""
        for info, done in zip(infos, dones):
            rewards = info.get("rewards", {})
            for key, name in STEP_TERMS:
                value = rewards.get(key)
                if value is not None and np.isfinite(value):
                    self.steps[name].append(float(value))
            if done and info.get("termination_reason") == WORKER_RESTART:
                self.worker_restarts += 1
            elif done:
                self.episodes["collision_rate"].append(float(info.get("termination_reason") == "collision"))
                metrics = info.get("driving_metrics")
                if metrics:
                    for name in ("route_completion", "driving_score", "stopped_share"):
                        self.episodes[name].append(float(metrics[name]))

    def record(self, logger: Any) -> None:
        """Record every non-empty mean on an SB3 logger as ``rollout/<name>``."""
        for values in (self.steps, self.episodes):
            for name, window in values.items():
                if window:
                    logger.record(f"rollout/{name}", float(np.mean(window)))
        if self.worker_restarts:
            logger.record("rollout/worker_restarts", self.worker_restarts)

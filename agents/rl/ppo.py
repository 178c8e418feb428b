"""The SB3 PPO baseline on GRPO's env: same closed-loop replay env, same reward, same normalised actions, same
environment budget (``total_timesteps`` = env steps, as GRPO counts them).

PPO sees the env's own closed-loop step reward (the env's :class:`envs.sim.reward.RewardConfig`): by default route
progress first (``kind="progress"``: the step's share of the route-completion reference scaled down by soft
infractions, a crash worth less than any stop); with ``kind="score"`` the stepped action's ``w_score * score +
w_collision * collision`` plus the terminal collision penalty, the same weighting as GRPO's group reward (the
``reward`` term of ``score_group``, which always scores). It does not get GRPO's G extra scorer calls per state
(report scorer calls beside env steps when comparing).
Defaults are SB3's PPO defaults except ``n_steps`` (sized to small budgets) and ``MultiInputPolicy`` (dict
observations; NatureCNN on the BEV when the env has one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stable_baselines3 import PPO

from agents.rl.metrics import DrivingMetrics
from agents.rl.sb3_logger import NoTempLogDir


@dataclass
class PPOBaselineConfig:
    """SB3 PPO hyperparameters of the baseline (SB3 defaults unless noted)."""

    learning_rate: float = 3e-4
    """Adam learning rate."""
    n_steps: int = 64
    """Env steps per env per rollout (SB3 default 2048, too large for minute-scale budgets)."""
    batch_size: int = 32
    """Minibatch size (transitions)."""
    n_epochs: int = 10
    """Epochs per update."""
    gamma: float = 0.99
    """Discount."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    clip_range: float = 0.2
    """PPO clip."""
    ent_coef: float = 0.0
    """Entropy bonus."""
    log_std_init: float = -0.5
    """Initial log-std (as the GRPO Gaussian policy)."""


class PPOBaseline(NoTempLogDir, PPO):
    """SB3's PPO, logging the same driving metrics as GRPO (:class:`agents.rl.metrics.DrivingMetrics`: per-step
    scorer and progress terms, per-episode collision rate, route completion, driving score); without
    ``tensorboard_log`` its ``learn`` makes no temp folder (:mod:`agents.rl.sb3_logger`)."""

    def _setup_model(self) -> None:
        super()._setup_model()
        self._metrics = DrivingMetrics()

    def _update_info_buffer(self, infos: list[dict[str, Any]], dones: Any = None) -> None:
        super()._update_info_buffer(infos, dones)
        if dones is not None:
            self._metrics.update(infos, dones)

    def dump_logs(self, iteration: int = 0) -> None:
        self._metrics.record(self.logger)
        super().dump_logs(iteration)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_metrics"]


def make_ppo(env: Any, config: PPOBaselineConfig | None = None, seed: int | None = None,
             tensorboard_log: str | None = None, verbose: int = 0, policy_kwargs: dict[str, Any] | None = None):
    """A :class:`PPOBaseline` (SB3's ``PPO("MultiInputPolicy", env, ...)`` logging GRPO's driving metrics too) of
    ``config`` (default :class:`PPOBaselineConfig()`) on a GRPO env (:func:`agents.rl.env.make_group_vec_env` with
    normalised actions)."""
    config = PPOBaselineConfig() if config is None else config
    kwargs = {"log_std_init": config.log_std_init, **(policy_kwargs or {})}
    policy = "MultiInputPolicy" if hasattr(env.observation_space, "spaces") else "MlpPolicy"
    return PPOBaseline(policy, env, learning_rate=config.learning_rate, n_steps=config.n_steps,
                       batch_size=config.batch_size, n_epochs=config.n_epochs, gamma=config.gamma,
                       gae_lambda=config.gae_lambda, clip_range=config.clip_range, ent_coef=config.ent_coef,
                       policy_kwargs=kwargs, seed=seed, tensorboard_log=tensorboard_log, verbose=verbose, device="cpu")

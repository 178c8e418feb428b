"""Behaviour cloning of the Gaussian trajectory policy: the fast-study stand-in for the VLA's two SFT modes.

The VLA's SFT (:mod:`agents.sft`) trains positive-only and negative-enhanced policies on the anchor dataset; the
Gaussian trajectory policy cannot read a negative as input or state a label, so its analogues are:

* ``"positive"`` (positive-only): regress the policy's mean onto the normalised action of the safe target
  (:func:`envs.wrappers.normalize_trajectories`) on the same decisions as the VLA's positive view (safe expert-log
  frames, :func:`agents.sft.data.expert_frames`, and every pair's verified positive at its decision frame):
  ``L_pos = mean_i ||mu(o_i) - a_i^+||^2``;
* ``"negative"`` (negative-enhanced, an **MLP analogue**, not the paper's method): the same, plus a hinge that pushes
  the mean at least ``negative_margin`` away from each pair's negative action (normalised units, L2 over the 16
  dimensions): ``L_neg = mean_j max(0, m_j - ||mu(o_j) - a_j^-||)^2``, ``L = L_pos + negative_weight * L_neg``
  (pairs without a positive contribute only ``L_neg``); ``m_j = min(negative_margin, ||a_j^+ - a_j^-||)`` for
  pairs with a positive (``margin_cap="positive"``, the default), ``negative_margin`` otherwise or with
  ``margin_cap="none"``.

The log-std is left at its initial value (GRPO needs the exploration). Observations are built with
:func:`envs.observation.build_observation` from the logged ego at each decision frame, with the env's observation
configuration (what the closed-loop env shows at the same state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from agents.rl.grpo.policies import TrajectoryGaussianPolicy
from counterfactual.dataset import AnchorPair
from envs.observation import ObservationConfig, Route, build_observation
from envs.scenes.scene import Scene
from envs.wrappers import normalize_trajectories

BC_MODES = ("positive", "negative")
"""Behaviour-cloning views (positive-only, negative-enhanced analogue)."""

MARGIN_CAPS = ("none", "positive")
"""Choices of :attr:`BCConfig.margin_cap`."""


@dataclass
class BCConfig:
    """Behaviour-cloning settings."""

    steps: int = 300
    """Optimizer steps."""
    batch_size: int = 64
    """Samples per step."""
    learning_rate: float = 1e-3
    """Adam learning rate."""
    negative_weight: float = 1.0
    """Weight of the negative hinge (``"negative"`` mode)."""
    negative_margin: float = 1.0
    """Margin of the negative hinge [normalised action units, L2 over 16 dims]."""
    margin_cap: str = "positive"
    """``"positive"`` (default since 2026-12-07): a pair with a verified positive uses ``min(negative_margin,
    ||a+ - a-||)``, so the hinge never pushes the mean past the pair's own safe target (on the world-v2 bank ~40% of
    the pairs' positives lie within 1.0 of their negative); pairs without a positive keep ``negative_margin``.
    ``"none"`` (before): every pair's hinge uses ``negative_margin``. Measured in docs/grpo_ablation.md."""

    def __post_init__(self) -> None:
        if self.margin_cap not in MARGIN_CAPS:
            raise ValueError(f"BCConfig.margin_cap must be one of {MARGIN_CAPS}, got {self.margin_cap!r}")


@dataclass
class BCData:
    """Rendered samples: observations (dict of stacked arrays), targets and negatives as normalised actions."""

    observations: dict[str, np.ndarray]
    """``{key: (N, ...)}`` as the env returns them (BEV HWC)."""
    targets: np.ndarray
    """``(N, 8, 2)`` normalised safe actions (NaN where none)."""
    negatives: np.ndarray
    """``(N, 8, 2)`` normalised negative actions (NaN where none)."""
    kinds: list[str]
    """``"expert"`` or ``"pair"`` per sample."""

    def __len__(self) -> int:
        return len(self.kinds)


def build_bc_data(scenes: Iterable[Scene], pairs: Sequence[AnchorPair], observation: ObservationConfig,
                  max_speed: float, max_yaw_rate: float, expert_frames_per_scene: int = 4,
                  frame_sampling: str = "even") -> BCData:
    """Samples of ``scenes`` (safe expert frames) and ``pairs`` (their decision frames; scenes re-created from
    ``pair.observation_ref``); ``frame_sampling`` chooses the expert frames (``SampleConfig.frame_sampling``:
    ``"even"``, ``"hazard_window"`` or ``"hazard_dense"``). Deterministic."""
    from agents.sft.data import SampleConfig, expert_frames, pair_scenes
    from envs.sim.scoring import trajectory_from_log

    select = SampleConfig(expert_frames_per_scene=expert_frames_per_scene, frame_sampling=frame_sampling)
    obs_rows: list[dict[str, Any]] = []
    targets, negatives, kinds = [], [], []
    nan = np.full((8, 3), np.nan)
    for scene in scenes:
        route = Route.from_scene(scene)
        for t in expert_frames(scene, select):
            obs_rows.append(build_observation(scene, t, config=observation, route=route))
            targets.append(trajectory_from_log(scene, t))
            negatives.append(nan)
            kinds.append("expert")
    for pair, scene, route in pair_scenes(pairs):
        obs_rows.append(build_observation(scene, int(pair.decision_frame), config=observation, route=route))
        targets.append(nan if pair.positive is None else pair.positive)
        negatives.append(pair.negative)
        kinds.append("pair")
    if not obs_rows:
        raise ValueError("build_bc_data: no samples (no safe expert frame and no pair)")

    def norm(trajs: list[np.ndarray]) -> np.ndarray:
        arr = np.asarray(trajs, dtype=np.float64)
        out = normalize_trajectories(np.nan_to_num(arr), max_speed, max_yaw_rate).astype(np.float32)
        out[np.isnan(arr).any(axis=(1, 2))] = np.nan
        return out

    observations = {k: np.stack([np.asarray(o[k]) for o in obs_rows]) for k in obs_rows[0]}
    return BCData(observations, norm(targets), norm(negatives), kinds)


def train_bc(policy: TrajectoryGaussianPolicy, data: BCData, mode: str, config: BCConfig | None = None,
             seed: int = 0) -> list[float]:
    """Fit the policy's mean (module docstring; ``config`` default :class:`BCConfig()`); returns the loss per step.
    The log-std is not trained."""
    config = BCConfig() if config is None else config
    if mode not in BC_MODES:
        raise ValueError(f"train_bc: mode must be one of {BC_MODES}, got {mode!r}")
    rng = np.random.default_rng(seed)
    has_pos = ~np.isnan(data.targets).any(axis=(1, 2))
    has_neg = ~np.isnan(data.negatives).any(axis=(1, 2))
    use = has_pos | (has_neg if mode == "negative" else False)
    index = np.flatnonzero(use)
    margins = np.full(len(data), float(config.negative_margin))
    if config.margin_cap == "positive":  # min(m, ||a+ - a-||) where the pair has a positive
        gap = np.sqrt(((np.nan_to_num(data.targets) - np.nan_to_num(data.negatives)) ** 2).sum(axis=(1, 2)))
        capped = has_pos & has_neg
        margins[capped] = np.minimum(margins[capped], gap[capped])
    params = [p for name, p in policy.named_parameters() if name != "log_std"]
    opt = torch.optim.Adam(params, lr=config.learning_rate)
    policy.set_training_mode(True)
    losses = []
    for _ in range(config.steps):
        batch = rng.choice(index, size=min(config.batch_size, len(index)), replace=False)
        obs = {k: v[batch] for k, v in data.observations.items()}
        mean = policy.distribution(policy.obs_to_tensor(obs)[0]).mean.reshape(len(batch), 8, 2)
        loss = mean.new_zeros(())
        pos = torch.as_tensor(has_pos[batch])
        if bool(pos.any()):  # L_pos = mean ||mu - a+||^2
            target = torch.as_tensor(np.nan_to_num(data.targets[batch]))
            loss = loss + ((mean - target) ** 2).sum(dim=(1, 2))[pos].mean()
        neg = torch.as_tensor(has_neg[batch])
        if mode == "negative" and bool(neg.any()):  # L_neg = mean max(0, m_j - ||mu - a-||)^2
            negative = torch.as_tensor(np.nan_to_num(data.negatives[batch]))
            dist = torch.sqrt(((mean - negative) ** 2).sum(dim=(1, 2)) + 1e-12)
            margin = torch.as_tensor(margins[batch], dtype=dist.dtype)
            loss = loss + config.negative_weight * (torch.relu(margin - dist) ** 2)[neg].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    policy.set_training_mode(False)
    return losses

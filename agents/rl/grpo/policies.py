"""Policy classes GRPO trains: the group interface, and the Gaussian trajectory policy (MLP / CNN features).

:class:`GroupPolicy` (an SB3 ``BasePolicy``; ``predict`` works as for any SB3 policy) adds what a group algorithm
needs beyond one action per observation. A **member** is one output of the policy for a state, stored as
``member_shape`` (the Gaussian policy: the raw normalised action ``(8, 2)``; the VLA: its token ids ``(S,)``), with
``S = max_len`` log-probability "tokens" (1 for the Gaussian: a trajectory is one action, its log-probability the
sum over the 16 dimensions; the VLA: its generated tokens).

* :meth:`GroupPolicy.sample_group` ``(obs, G) -> GroupSample``: G members per state, their trajectories (ego
  frame, what the scorer scores), env actions and log-probabilities at sampling time.
* :meth:`GroupPolicy.greedy` ``(obs) -> (env actions, trajectories)``: the mode (greedy decode).
* :meth:`GroupPolicy.encode_trajectories` ``(trajectories, explanations) -> MemberEncoding``: members for given
  trajectories (GRPO's anchors), with the trajectories the policy would drive for them (its **projection**: the
  Gaussian policy's kinematic parametrisation, the VLA's codebook), which is what gets scored, so an anchor's reward
  is the reward of the output whose probability it changes.
* :meth:`GroupPolicy.member_log_prob` ``(obs, members, valid) -> (logp (B, M, S), loss_mask (B, M, S))``:
  teacher-forced log-probabilities with gradients.
* :meth:`GroupPolicy.trajectories_of` ``(env actions) -> (8, 3) trajectories`` (evaluation through
  :class:`agents.base.Policy`: :class:`agents.rl.sb3_agent.SB3Agent`).

:class:`TrajectoryGaussianPolicy`: a diagonal Gaussian over the normalised kinematic action of
:class:`envs.wrappers.NormalizedTrajectoryAction` (speed and yaw rate per 0.5 s, ``[-1, 1]^(8, 2)``), mean from an
MLP over SB3 features (``FlattenExtractor`` for vector observations, ``CombinedExtractor`` = NatureCNN on the BEV +
flattened vectors for dict observations; :class:`BoundedCombinedExtractor` scales the vectors to ``[-1, 1]`` by their
bounds), state-independent log-std (SB3's ``DiagGaussianDistribution``
convention). Samples are unbounded; the env receives them clipped to ``[-1, 1]`` (as SB3's PPO), the
log-probability is that of the unclipped sample. No value head.
"""

from __future__ import annotations

import abc
import copy
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import (
    CombinedExtractor,
    FlattenExtractor,
    create_mlp,
)
from torch import nn

from envs.spaces import NUM_POSES, clip_trajectories
from envs.wrappers import kinematic_trajectories, normalize_trajectories

MLP_LAYERS = ("drivable", "route", "vehicles", "pedestrians_cyclists", "static", "history")
"""Semantic BEV channels of the Gaussian policy's observation (the 64 px semantic BEV of the ``mlp`` agent)."""


class BoundedCombinedExtractor(CombinedExtractor):
    """SB3's ``CombinedExtractor`` (NatureCNN on each image, the vectors flattened and concatenated) with every vector
    observation (a ``Box`` that is not an image) divided element-wise by its bound ``max(|low|, |high|)`` from the
    observation space, so the first layer of the mean MLP sees values in ``[-1, 1]`` rather than metres and m/s (the
    env's spaces: ``history`` x, y / 200 m and yaw / pi, ``ego_state`` speed / 60 m/s, ``agents`` and ``hazard``
    positions / 200 m, velocities / 60 m/s, ...). Raw, a 20 m offset through a default-initialised linear layer
    saturates the tanh units. One-hot ``Discrete`` inputs and images are as in ``CombinedExtractor``; the scales are
    buffers (saved with the weights). ``ValueError`` naming the key for an unbounded vector."""

    def __init__(self, observation_space: spaces.Dict, cnn_output_dim: int = 256, normalized_image: bool = False
                 ) -> None:
        super().__init__(observation_space, cnn_output_dim, normalized_image)
        self._scaled: list[str] = []
        for key, subspace in observation_space.spaces.items():
            if not isinstance(subspace, spaces.Box) or is_image_space(subspace, normalized_image=normalized_image):
                continue
            bound = np.maximum(np.abs(subspace.low), np.abs(subspace.high)).astype(np.float32)
            if not (np.all(np.isfinite(bound)) and np.all(bound > 0)):
                raise ValueError(f"BoundedCombinedExtractor: observation {key!r} has no finite, non-zero bound "
                                 f"(low {subspace.low}, high {subspace.high}); it cannot be scaled")
            self.register_buffer(f"scale_{len(self._scaled)}", torch.as_tensor(bound))
            self._scaled.append(key)

    def forward(self, observations: Mapping[str, torch.Tensor]) -> torch.Tensor:
        scales = {key: getattr(self, f"scale_{i}") for i, key in enumerate(self._scaled)}
        encoded = []
        for key, extractor in self.extractors.items():
            x = observations[key]
            encoded.append(extractor(x / scales[key] if key in scales else x))
        return torch.cat(encoded, dim=1)


@dataclass
class GroupSample:
    """``G`` members sampled for each of ``B`` states.

    Attributes:
        members: ``(B, G, *member_shape)`` what is stored and teacher-forced later.
        trajectories: ``(B, G, 8, 3)`` float64 ego-frame trajectories [m, m, rad] (scored).
        env_actions: ``(B, G, *env_action_shape)`` what ``env.step`` takes for each member.
        logp: ``(B, G, S)`` float32 log-probabilities at sampling time (pi_old).
        loss_mask: ``(B, G, S)`` bool, the tokens that carry the loss.
    """

    members: np.ndarray
    trajectories: np.ndarray
    env_actions: np.ndarray
    logp: np.ndarray
    loss_mask: np.ndarray


@dataclass
class MemberEncoding:
    """Members for given trajectories (anchors) of one state.

    Attributes:
        members: ``(K, *member_shape)``.
        trajectories: ``(K, 8, 3)`` the trajectories the policy drives for these members (its projection).
        loss_mask: ``(K, S)`` bool.
    """

    members: np.ndarray
    trajectories: np.ndarray
    loss_mask: np.ndarray


class GroupPolicy(BasePolicy, abc.ABC):
    """A policy GRPO can train (module docstring). Subclasses set ``max_len``, ``member_shape``, ``member_dtype``
    and ``reference_in_checkpoint`` (True: GRPO saves the frozen reference's weights in its zip; False: the
    reference is rebuilt by :meth:`make_reference` at load, e.g. from the SFT checkpoint folder)."""

    max_len: int = 1
    member_shape: tuple[int, ...] = ()
    member_dtype: Any = np.float32
    reference_in_checkpoint: bool = True

    @abc.abstractmethod
    def sample_group(self, obs: Mapping[str, np.ndarray] | np.ndarray, group_size: int,
                     temperature: float = 1.0) -> GroupSample:
        """``group_size`` members per state of a batch of (vectorised) observations."""

    @abc.abstractmethod
    def greedy(self, obs: Mapping[str, np.ndarray] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(env actions (B, ...), trajectories (B, 8, 3))`` of the policy's mode."""

    @abc.abstractmethod
    def encode_trajectories(self, trajectories: np.ndarray, explanations: list[str]) -> MemberEncoding:
        """Members for ``(K, 8, 3)`` trajectories (with the label texts token policies condition them on)."""

    def greedy_members(self, obs: Mapping[str, np.ndarray] | np.ndarray) -> MemberEncoding:
        """The greedy decision of each of ``B`` states as a member: ``members (B, *member_shape)``, the
        trajectories it drives ``(B, 8, 3)``, ``loss_mask (B, S)`` (``GRPOConfig.greedy_member``)."""
        raise NotImplementedError(f"{type(self).__name__} has no greedy member (GRPOConfig.greedy_member)")

    @abc.abstractmethod
    def member_log_prob(self, obs: Mapping[str, np.ndarray] | np.ndarray, members: np.ndarray,
                        valid: np.ndarray | None = None, temperature: float = 1.0
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logp (B, M, S), loss_mask (B, M, S))`` of members ``(B, M, *member_shape)`` (0 / False at invalid
        slots), with gradients."""

    @abc.abstractmethod
    def env_actions_of(self, members: np.ndarray, trajectories: np.ndarray) -> np.ndarray:
        """Env actions ``(K, ...)`` of members ``(K, ...)`` (and their trajectories ``(K, 8, 3)``)."""

    @abc.abstractmethod
    def trajectories_of(self, env_actions: np.ndarray) -> np.ndarray:
        """Trajectories ``(K, 8, 3)`` of env actions ``(K, ...)``."""

    states_label: bool = False
    """Whether members carry a label text before their action (token policies: :meth:`member_texts`,
    :meth:`action_token_mask`)."""

    def member_texts(self, members: np.ndarray) -> list[str]:
        """The label sentences of members ``(K, *member_shape)`` (the text before the action tokens); only for
        policies with :attr:`states_label`."""
        raise ValueError(f"{type(self).__name__} states no safety label (GRPOConfig.label_term needs the VLA)")

    def action_token_mask(self, members: np.ndarray) -> np.ndarray:
        """``(K, S)`` bool, the log-probability positions of members ``(K, *member_shape)`` that are action tokens
        (the rest of a member's tokens is its label text). Default: every position (a policy without text)."""
        members = np.asarray(members)
        return np.ones((len(members), self.max_len), dtype=bool)

    def make_reference(self) -> "GroupPolicy":
        """A frozen copy (the KL reference): by default a deep copy of this policy, :meth:`frozen`."""
        return copy.deepcopy(self).frozen()

    def frozen(self) -> "GroupPolicy":
        """This policy as a KL reference, in place: no optimizer, gradients off, eval mode (returns ``self``)."""
        self.optimizer = None  # type: ignore[assignment]
        for p in self.parameters():
            p.requires_grad_(False)
        self.set_training_mode(False)
        return self


class TrajectoryGaussianPolicy(GroupPolicy):
    """Diagonal Gaussian over normalised kinematic trajectory actions (module docstring).

    Args:
        observation_space, action_space: the env's (action ``Box(-1, 1, (8, 2))``).
        lr_schedule: learning-rate schedule (SB3).
        net_arch: hidden sizes of the mean MLP.
        activation_fn: hidden activation.
        log_std_init: initial log-std of every action dimension.
        yaw_log_std_init: initial log-std of the 8 yaw-rate dimensions instead (None: ``log_std_init``).
        max_speed, max_yaw_rate: the env's :class:`~envs.wrappers.NormalizedTrajectoryAction` parameters [m/s],
            [rad/s] (GRPO checks them against the env).
        features_extractor_class, features_extractor_kwargs, normalize_images, optimizer_class,
            optimizer_kwargs: SB3's meanings (default extractor: ``CombinedExtractor`` for dict observations,
            ``FlattenExtractor`` otherwise).
    """

    max_len = 1
    member_shape = (NUM_POSES, 2)
    member_dtype = np.float32
    reference_in_checkpoint = True

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Box, lr_schedule: Any,
                 net_arch: tuple[int, ...] | list[int] = (128, 128), activation_fn: type[nn.Module] = nn.Tanh,
                 log_std_init: float = -0.5, max_speed: float = 20.0, max_yaw_rate: float = 0.6,
                 features_extractor_class: Any = None, features_extractor_kwargs: dict[str, Any] | None = None,
                 normalize_images: bool = True, optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
                 optimizer_kwargs: dict[str, Any] | None = None, yaw_log_std_init: float | None = None) -> None:
        if not isinstance(action_space, spaces.Box) or tuple(action_space.shape) != (NUM_POSES, 2):
            raise ValueError(f"TrajectoryGaussianPolicy: expects the normalised action space Box(-1, 1, ({NUM_POSES}, "
                             f"2)) of envs.wrappers.NormalizedTrajectoryAction, got {action_space}")
        if features_extractor_class is None:
            features_extractor_class = (CombinedExtractor if isinstance(observation_space, spaces.Dict)
                                        else FlattenExtractor)
        super().__init__(observation_space, action_space, features_extractor_class=features_extractor_class,
                         features_extractor_kwargs=features_extractor_kwargs, normalize_images=normalize_images,
                         optimizer_class=optimizer_class, optimizer_kwargs=optimizer_kwargs)
        self.net_arch = list(net_arch)
        self.activation_fn = activation_fn
        self.log_std_init = float(log_std_init)
        self.max_speed = float(max_speed)
        self.max_yaw_rate = float(max_yaw_rate)
        self.features_extractor = self.make_features_extractor()
        self.features_dim = self.features_extractor.features_dim
        self.action_dim = int(np.prod(action_space.shape))
        self.mean_net = nn.Sequential(*create_mlp(self.features_dim, self.action_dim, self.net_arch, activation_fn))
        self.yaw_log_std_init = None if yaw_log_std_init is None else float(yaw_log_std_init)
        init = torch.full(self.member_shape, self.log_std_init)  # (8, 2): speed, yaw rate per interval
        if self.yaw_log_std_init is not None:
            init[:, 1] = self.yaw_log_std_init
        self.log_std = nn.Parameter(init.reshape(self.action_dim))
        # Small last layer: the initial mean is ~0 (straight at half max_speed), as SB3 does for its action net.
        last = [m for m in self.mean_net if isinstance(m, nn.Linear)][-1]
        nn.init.orthogonal_(last.weight, gain=0.01)
        nn.init.zeros_(last.bias)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(net_arch=self.net_arch, activation_fn=self.activation_fn, log_std_init=self.log_std_init,
                    yaw_log_std_init=self.yaw_log_std_init,
                    max_speed=self.max_speed, max_yaw_rate=self.max_yaw_rate,
                    features_extractor_class=self.features_extractor_class,
                    features_extractor_kwargs=self.features_extractor_kwargs,
                    normalize_images=self.normalize_images, optimizer_class=self.optimizer_class,
                    optimizer_kwargs=self.optimizer_kwargs)
        return data

    # ------------------------------------------------------------------ distribution
    def distribution(self, obs: Any) -> torch.distributions.Normal:
        """``Normal(mean (B, 16), std (16,))`` of tensor observations (SB3 ``PyTorchObs``)."""
        features = self.extract_features(obs, self.features_extractor)
        mean = self.mean_net(features)
        return torch.distributions.Normal(mean, self.log_std.exp().expand_as(mean))

    def _tensor_obs(self, obs: Any) -> Any:
        if isinstance(obs, torch.Tensor) or (isinstance(obs, Mapping) and obs and
                                             isinstance(next(iter(obs.values())), torch.Tensor)):
            return obs
        return self.obs_to_tensor(obs)[0]

    def forward(self, obs: Any, deterministic: bool = False) -> torch.Tensor:
        """Actions ``(B, 8, 2)`` (unclipped samples, or the mean)."""
        dist = self.distribution(obs)
        a = dist.mean if deterministic else dist.sample()
        return a.reshape(-1, *self.member_shape)

    def _predict(self, observation: Any, deterministic: bool = False) -> torch.Tensor:
        return self.forward(observation, deterministic)

    # ------------------------------------------------------------------ group interface
    def trajectories_of(self, env_actions: np.ndarray) -> np.ndarray:
        return clip_trajectories(kinematic_trajectories(np.asarray(env_actions), self.max_speed, self.max_yaw_rate)
                                 ).astype(np.float64)

    def env_actions_of(self, members: np.ndarray, trajectories: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(members, dtype=np.float32), -1.0, 1.0)

    @torch.no_grad()
    def sample_group(self, obs: Any, group_size: int, temperature: float = 1.0) -> GroupSample:
        dist = self.distribution(self._tensor_obs(obs))
        B = dist.mean.shape[0]
        a = dist.sample((group_size,)).transpose(0, 1)  # (B, G, 16)
        logp = dist.log_prob(a.transpose(0, 1)).sum(-1).transpose(0, 1)  # (B, G)
        members = a.reshape(B, group_size, *self.member_shape).cpu().numpy().astype(np.float32)
        env_actions = self.env_actions_of(members, None)
        return GroupSample(members=members, trajectories=self.trajectories_of(env_actions), env_actions=env_actions,
                           logp=logp[..., None].cpu().numpy().astype(np.float32),
                           loss_mask=np.ones((B, group_size, 1), dtype=bool))

    @torch.no_grad()
    def greedy(self, obs: Any) -> tuple[np.ndarray, np.ndarray]:
        mean = self.distribution(self._tensor_obs(obs)).mean.reshape(-1, *self.member_shape).cpu().numpy()
        actions = np.clip(mean, -1.0, 1.0).astype(np.float32)
        return actions, self.trajectories_of(actions)

    @torch.no_grad()
    def greedy_members(self, obs: Any) -> MemberEncoding:
        """The Gaussian's mean (unclipped: the member its log-probability is taken at) and the trajectory it drives."""
        mean = self.distribution(self._tensor_obs(obs)).mean.reshape(-1, *self.member_shape).cpu().numpy()
        members = mean.astype(np.float32)
        return MemberEncoding(members=members, trajectories=self.trajectories_of(self.env_actions_of(members, None)),
                              loss_mask=np.ones((len(members), 1), dtype=bool))

    def encode_trajectories(self, trajectories: np.ndarray, explanations: list[str]) -> MemberEncoding:
        """The normalised actions closest to the trajectories (:func:`envs.wrappers.normalize_trajectories`) and the
        trajectories they drive (the projection onto the kinematic parametrisation)."""
        traj = np.asarray(trajectories, dtype=np.float64).reshape(-1, NUM_POSES, 3)
        members = normalize_trajectories(traj, self.max_speed, self.max_yaw_rate)
        return MemberEncoding(members=members, trajectories=self.trajectories_of(members),
                              loss_mask=np.ones((len(traj), 1), dtype=bool))

    def member_log_prob(self, obs: Any, members: np.ndarray, valid: np.ndarray | None = None,
                        temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        dist = self.distribution(self._tensor_obs(obs))
        m = torch.as_tensor(np.asarray(members, dtype=np.float32), device=self.device)
        B, M = m.shape[:2]
        a = m.reshape(B, M, self.action_dim).transpose(0, 1)  # (M, B, 16)
        logp = dist.log_prob(a).sum(-1).transpose(0, 1)[..., None]  # (B, M, 1)
        mask = torch.ones_like(logp, dtype=torch.bool)
        if valid is not None:
            v = torch.as_tensor(np.asarray(valid, dtype=bool), device=self.device)[..., None]
            logp = torch.where(v, logp, torch.zeros_like(logp))
            mask = mask & v
        return logp, mask

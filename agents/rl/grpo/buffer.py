"""The group rollout buffer: one row per state, with its whole group (SB3's buffers store one action per state).

Layout (``n_steps`` rows per env, ``n_envs`` envs, ``M = G + 2`` member slots):

* slots ``0 .. G-1``: the sampled members; slot ``G``: the anchor positive; slot ``G + 1``: the anchor negative
  (:data:`POSITIVE`, :data:`NEGATIVE`); ``valid`` says which slots hold a member (no anchor: only the sampled ones);
* per slot: the stored member (``member_shape``), its trajectory ``(8, 3)`` (ego frame, scored), its reward and every
  scorer term, log-probabilities at collection time under pi_old and the reference ``(S,)``, the loss mask ``(S,)``;
* per state: the observation (as the VecEnv returned it) and, after :meth:`GroupRolloutBuffer.compute_advantages`,
  the advantages ``(M,)`` and whether the group had zero reward std.

:meth:`GroupRolloutBuffer.get` yields minibatches of whole groups (flattened over steps and envs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generator, Mapping

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer

from agents.rl.grpo.loss import group_advantages

SAMPLED, POSITIVE, NEGATIVE = 0, 1, 2
"""Member kinds (``GroupRolloutBuffer.kinds``)."""


@dataclass
class GroupBatch:
    """A minibatch of ``B`` groups (numpy observations, torch tensors for the loss)."""

    observations: Any
    """Observations of the ``B`` states (dict of arrays or an array, as the VecEnv returned them)."""
    members: np.ndarray
    """``(B, M, *member_shape)``."""
    valid: torch.Tensor
    """``(B, M)`` bool."""
    kinds: torch.Tensor
    """``(B, M)`` int (:data:`SAMPLED`, :data:`POSITIVE`, :data:`NEGATIVE`)."""
    old_logp: torch.Tensor
    """``(B, M, S)``."""
    ref_logp: torch.Tensor
    """``(B, M, S)``."""
    loss_mask: torch.Tensor
    """``(B, M, S)`` bool."""
    advantages: torch.Tensor
    """``(B, M)``."""


class GroupRolloutBuffer(BaseBuffer):
    """Rollout storage of groups (module docstring).

    Args:
        buffer_size: steps per env (``n_steps``).
        observation_space, action_space: the env's.
        group_size: G.
        member_shape, member_dtype: a policy member's storage (:class:`agents.rl.grpo.policies.GroupPolicy`).
        max_len: S, log-probability tokens per member.
        reward_terms: names of the scorer terms stored per member.
        device: torch device of the minibatch tensors.
        n_envs: number of envs.
    """

    def __init__(self, buffer_size: int, observation_space: spaces.Space, action_space: spaces.Space,
                 group_size: int, member_shape: tuple[int, ...], member_dtype: Any, max_len: int,
                 reward_terms: tuple[str, ...], device: torch.device | str = "cpu", n_envs: int = 1) -> None:
        super().__init__(buffer_size, observation_space, action_space, device=device, n_envs=n_envs)
        self.group_size = int(group_size)
        self.num_slots = self.group_size + 2
        self.member_shape = tuple(member_shape)
        self.member_dtype = member_dtype
        self.max_len = int(max_len)
        self.reward_terms = tuple(reward_terms)
        self.reset()

    def reset(self) -> None:
        n, e, M, S = self.buffer_size, self.n_envs, self.num_slots, self.max_len
        if isinstance(self.observation_space, spaces.Dict):
            self.observations: Any = {k: np.zeros((n, e, *s.shape), dtype=s.dtype)
                                      for k, s in self.observation_space.spaces.items()}
        else:
            s = self.observation_space
            self.observations = np.zeros((n, e, *s.shape), dtype=s.dtype)
        self.members = np.zeros((n, e, M, *self.member_shape), dtype=self.member_dtype)
        self.trajectories = np.zeros((n, e, M, 8, 3), dtype=np.float64)
        self.valid = np.zeros((n, e, M), dtype=bool)
        self.kinds = np.zeros((n, e, M), dtype=np.int64)
        self.kinds[..., self.group_size] = POSITIVE
        self.kinds[..., self.group_size + 1] = NEGATIVE
        self.rewards = np.zeros((n, e, M), dtype=np.float64)
        self.terms = {k: np.full((n, e, M), np.nan) for k in self.reward_terms}
        self.old_logp = np.zeros((n, e, M, S), dtype=np.float32)
        self.ref_logp = np.zeros((n, e, M, S), dtype=np.float32)
        self.loss_mask = np.zeros((n, e, M, S), dtype=bool)
        self.advantages = np.zeros((n, e, M), dtype=np.float32)
        self.zero_std = np.zeros((n, e), dtype=bool)
        self.online = np.zeros((n, e), dtype=bool)
        super().reset()

    def add(self, obs: Any, members: np.ndarray, trajectories: np.ndarray, valid: np.ndarray, rewards: np.ndarray,
            terms: Mapping[str, np.ndarray], old_logp: np.ndarray, ref_logp: np.ndarray, loss_mask: np.ndarray,
            online: np.ndarray | None = None) -> None:
        """Store one step of every env: arrays ``(n_envs, M, ...)``; ``obs`` as the VecEnv returned it."""
        if self.full:
            raise RuntimeError("GroupRolloutBuffer.add: the buffer is full; call reset()")
        p = self.pos
        if isinstance(self.observations, dict):
            for k in self.observations:
                self.observations[k][p] = np.asarray(obs[k]).reshape(self.observations[k][p].shape)
        else:
            self.observations[p] = np.asarray(obs).reshape(self.observations[p].shape)
        self.members[p] = members
        self.trajectories[p] = trajectories
        self.valid[p] = valid
        self.rewards[p] = np.where(valid, rewards, 0.0)
        for k in self.reward_terms:
            self.terms[k][p] = terms[k]
        self.old_logp[p] = old_logp
        self.ref_logp[p] = ref_logp
        self.loss_mask[p] = loss_mask & valid[..., None]
        if online is not None:
            self.online[p] = online
        self.pos += 1
        if self.pos == self.buffer_size:
            self.full = True

    def compute_advantages(self, scale: bool = True, eps: float = 1e-4, zero_std_tol: float = 1e-6) -> None:
        """Group-relative advantages of every stored group (:func:`agents.rl.grpo.loss.group_advantages`)."""
        n = self.pos
        rewards = torch.as_tensor(self.rewards[:n].reshape(-1, self.num_slots))
        valid = torch.as_tensor(self.valid[:n].reshape(-1, self.num_slots))
        adv, zero = group_advantages(rewards, valid, scale, eps, zero_std_tol)
        self.advantages[:n] = adv.numpy().reshape(n, self.n_envs, self.num_slots)
        self.zero_std[:n] = zero.numpy().reshape(n, self.n_envs)

    def shuffle_advantages(self, rng: np.random.Generator) -> None:
        """Permute each stored group's advantages at random among its valid slots (``GRPOConfig.shuffle_advantages``,
        a control); invalid slots keep 0."""
        n = self.pos
        adv = self.advantages[:n].reshape(-1, self.num_slots)
        valid = self.valid[:n].reshape(-1, self.num_slots)
        for row in range(len(adv)):
            slots = np.flatnonzero(valid[row])
            adv[row, slots] = adv[row, rng.permutation(slots)]
        self.advantages[:n] = adv.reshape(n, self.n_envs, self.num_slots)

    def _flat(self, arr: np.ndarray) -> np.ndarray:
        return arr[: self.pos].reshape(-1, *arr.shape[2:])

    def _obs(self, idx: np.ndarray) -> Any:
        if isinstance(self.observations, dict):
            return {k: self._flat(v)[idx] for k, v in self.observations.items()}
        return self._flat(self.observations)[idx]

    def get(self, batch_size: int | None = None, rng: np.random.Generator | None = None
            ) -> Generator[GroupBatch, None, None]:
        """Minibatches of ``batch_size`` groups in a random order (``rng``; all groups at once when None)."""
        total = self.pos * self.n_envs
        order = np.arange(total) if rng is None else rng.permutation(total)
        batch_size = batch_size or total
        for start in range(0, total, batch_size):
            yield self._get_samples(order[start : start + batch_size])

    def _get_samples(self, batch_inds: np.ndarray, env: Any = None) -> GroupBatch:
        """The groups ``batch_inds`` (SB3's signature; ``env`` is unused: no observation normalisation)."""

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(self._flat(a)[batch_inds], device=self.device)

        return GroupBatch(
            observations=self._obs(batch_inds),
            members=self._flat(self.members)[batch_inds],
            valid=t(self.valid),
            kinds=t(self.kinds),
            old_logp=t(self.old_logp),
            ref_logp=t(self.ref_logp),
            loss_mask=t(self.loss_mask),
            advantages=t(self.advantages),
        )

    # ------------------------------------------------------------------ statistics
    def stats(self) -> dict[str, float]:
        """Means over the stored groups: sampled-member reward and terms, zero-std share, anchor counts and their
        mean advantages (NaN where there is none)."""
        n = self.pos
        G = self.group_size
        out: dict[str, float] = {}
        sampled = np.zeros(self.num_slots, dtype=bool)
        sampled[:G] = True
        out["group/reward"] = float(self.rewards[:n][..., sampled].mean())
        for k, v in self.terms.items():
            vals = v[:n][..., sampled]
            out[f"group/{k}"] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
        out["group/reward_std"] = float(self.rewards[:n][..., sampled].std(axis=-1).mean())
        out["group/zero_std_share"] = float(self.zero_std[:n].mean())
        pos, neg = self.valid[:n, :, G], self.valid[:n, :, G + 1]
        has = pos | neg
        out["anchors/state_share"] = float(has.mean())
        out["anchors/states"] = float(has.sum())
        out["anchors/online_states"] = float((has & self.online[:n]).sum())
        for name, mask, slot in (("positive", pos, G), ("negative", neg, G + 1)):
            adv = self.advantages[:n, :, slot][mask]
            rew = self.rewards[:n, :, slot][mask]
            out[f"anchors/{name}_advantage"] = float(adv.mean()) if adv.size else float("nan")
            out[f"anchors/{name}_reward"] = float(rew.mean()) if rew.size else float("nan")
        return out

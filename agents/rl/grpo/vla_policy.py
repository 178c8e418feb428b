"""The VLA as a GRPO policy: :class:`VLAGroupPolicy` adapts :class:`agents.vla.policy.VLAPolicy` to
:class:`agents.rl.grpo.policies.GroupPolicy`.

* Construction: ``policy_kwargs={"path": <policy folder>}``, a folder written by ``VLAPolicy.save_pretrained`` (the
  SFT checkpoint, e.g. ``<out>/final`` of ``python -m agents.sft.train``); the model is registered as a sub-module, so
  SB3's ``save`` / ``load`` and the optimizer see its parameters (for a LoRA folder: the adapters only).
* A **member** is the generated token ids ``(max_len,)`` (label text, ``<action>``, action tokens, EOS; right-padded
  with the pad id), ``max_len = max_text_tokens + tokens_per_trajectory + 2``; its log-probability tokens are the
  same positions (``S = max_len``). Sampled members carry the loss on every generated token (with
  ``GRPOConfig.text_credit="kl_only"`` the advantage on their action tokens only, :meth:`action_token_mask`, and the
  KL on every token); anchors on their action tokens only (the pair's label text is the teacher-forced context; see
  :mod:`agents.rl.grpo.grpo`). :meth:`member_texts` reads a member's label sentence back (the label-consistency
  term, :mod:`agents.rl.grpo.label_consistency`).
* Anchors: :meth:`VLAPolicy.target_sequences` of ``(explanation, trajectory)``; the trajectory scored is the
  codebook's decoding of the encoded anchor (what the policy drives when it emits those tokens).
* Observations: the env's dict observation (``"bev"`` RGB, HWC or CHW after SB3's ``VecTransposeImage``), turned
  into :class:`agents.base.PolicyInput` with :func:`envs.observation.text_prompt` (with the ego's and agents'
  numbers of ``EnvConfig.prompt_state`` when the observation holds them). Env actions are trajectories
  ``(8, 3)`` (a raw replay env, ``GroupEnvConfig(normalized_actions=False)``).
* Forward passes per collection step: sampling the G members of every state (one generation call, each state's
  image and prompt prefilled once), pi_old of the anchors (one teacher-forced call over the anchor slots), the KL
  reference over all G + 2 slots (one call); per update minibatch one call over every valid slot. Each call runs
  every state's image and prompt once and the rows' outputs against its cache (:meth:`VLAPolicy.log_prob`);
  ``python -m benchmarks.bench_grpo_vla`` times each part.
* Reference (KL): rebuilt from the same folder (:meth:`make_reference`), never saved in GRPO's zip; loading a GRPO
  zip therefore needs the folder where it was at training time.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from gymnasium import spaces

from agents.base import PolicyInput
from agents.rl.grpo.policies import GroupPolicy, GroupSample, MemberEncoding
from envs.observation import text_prompt
from envs.prompt_state import STATE_KEYS
from envs.spaces import NUM_POSES, clip_trajectories


def observed_prompt_state(observation_space: spaces.Dict) -> tuple[str, int]:
    """``(prompt_state, prompt_agents)`` an env observation space states (:func:`envs.spaces.observation_space`:
    ``"agents"`` ``(K, 6)`` -> ``("agents", K)``, ``"ego_velocity"`` alone -> ``("ego", 4)``, else ``("none", 4)``;
    4 is the unused default)."""
    names = observation_space.spaces
    if "agents" in names:
        return "agents", int(names["agents"].shape[0])
    return ("ego" if "ego_velocity" in names else "none"), 4


def _numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


class VLAGroupPolicy(GroupPolicy):
    """A :class:`~agents.vla.policy.VLAPolicy` for GRPO (module docstring).

    Args:
        observation_space, action_space: the env's (actions: trajectory ``Box (8, 3)``).
        lr_schedule: learning-rate schedule (SB3).
        path: the policy folder to start from (and the KL reference).
        lora: passed to :meth:`VLAPolicy.from_pretrained` (add LoRA adapters to a full-model folder).
        name: label in results tables.
        optimizer_class, optimizer_kwargs: SB3's meanings (over the trainable parameters).
    """

    member_dtype = np.int64
    reference_in_checkpoint = False
    states_label = True

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Box, lr_schedule: Any, path: str,
                 lora: Any = False, name: str = "vla",
                 optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
                 optimizer_kwargs: dict[str, Any] | None = None) -> None:
        from agents.vla.policy import VLAPolicy

        if not isinstance(action_space, spaces.Box) or tuple(action_space.shape) != (NUM_POSES, 3):
            raise ValueError(f"VLAGroupPolicy: expects trajectory actions Box ({NUM_POSES}, 3) (make_group_env("
                             f"normalized_actions=False)), got {action_space}")
        if not isinstance(observation_space, spaces.Dict) or "bev" not in observation_space.spaces:
            raise ValueError("VLAGroupPolicy: the observation needs a 'bev' image (EnvConfig.bev in RGB mode)")
        super().__init__(observation_space, action_space, optimizer_class=optimizer_class,
                         optimizer_kwargs=optimizer_kwargs)
        self.path = str(path)
        self.lora = lora
        self.name = name
        self.vla = VLAPolicy.from_pretrained(self.path, lora=lora, name=name)
        observed = observed_prompt_state(observation_space)
        recorded = self.vla.prompt_state
        if observed[0] != recorded[0] or (observed[0] == "agents" and observed[1] != recorded[1]):
            raise ValueError(f"VLAGroupPolicy: {self.path} records prompt_state {recorded[0]!r} (prompt_agents "
                             f"{recorded[1]}), the env observation states {observed[0]!r} (prompt_agents "
                             f"{observed[1]}): set EnvConfig.prompt_state / prompt_agents (agent.prompt_state) to "
                             "the policy's")
        self.model = self.vla.model  # registered: parameters, state_dict, train/eval
        tokens_per_traj = self.vla.codebook.tokens_per_trajectory
        self.max_len = int(self.vla.processor.max_text_tokens) + tokens_per_traj + 2
        self.member_shape = (self.max_len,)
        self._code_ids = np.asarray(self.vla.tokens.codes, dtype=np.int64)
        params = [p for p in self.parameters() if p.requires_grad]
        self.optimizer = self.optimizer_class(params, lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(path=self.path, lora=self.lora, name=self.name, optimizer_class=self.optimizer_class,
                    optimizer_kwargs=self.optimizer_kwargs)
        return data

    def make_reference(self) -> "VLAGroupPolicy":
        """The SFT policy re-loaded from :attr:`path`, :meth:`frozen`."""
        ref = type(self)(self.observation_space, self.action_space, lambda _: 0.0, path=self.path, lora=self.lora,
                         name=f"{self.name}_ref")
        return ref.frozen().to(self.device)

    def save_pretrained(self, path: str) -> Any:
        """Write the current VLA as a policy folder (:meth:`VLAPolicy.save_pretrained`)."""
        return self.vla.save_pretrained(path)

    # ------------------------------------------------------------------ inputs
    def inputs(self, obs: Mapping[str, Any]) -> list[PolicyInput]:
        """:class:`PolicyInput` of each state of a batch of dict observations (numpy or tensors; BEV HWC or CHW)."""
        arrays = {k: _numpy(v) for k, v in obs.items()}
        bev = arrays["bev"]
        if bev.ndim == 3:
            arrays = {k: v[None] for k, v in arrays.items()}
            bev = arrays["bev"]
        if bev.shape[-1] != 3 and bev.shape[1] == 3:  # channels first (SB3's VecTransposeImage / obs_to_tensor)
            bev = bev.transpose(0, 2, 3, 1)
        out = []
        for i in range(len(bev)):
            o = {"bev": np.ascontiguousarray(bev[i]).astype(np.uint8), "ego_state": arrays["ego_state"][i],
                 "command": int(np.asarray(arrays["command"][i]).reshape(-1)[0]), "history": arrays["history"][i]}
            o.update({k: arrays[k][i] for k in STATE_KEYS if k in arrays})  # EnvConfig.prompt_state's numbers
            out.append(PolicyInput(observation=o, prompt=text_prompt(o)))
        return out

    def _pad(self, sequences: torch.Tensor, value: Any) -> np.ndarray:
        seq = _numpy(sequences)
        if seq.shape[1] > self.max_len:
            raise ValueError(f"VLAGroupPolicy: a sequence of {seq.shape[1]} tokens exceeds max_len={self.max_len}")
        out = np.full((seq.shape[0], self.max_len), value, dtype=seq.dtype)
        out[:, : seq.shape[1]] = seq
        return out

    # ------------------------------------------------------------------ group interface
    def trajectories_of(self, env_actions: np.ndarray) -> np.ndarray:
        return np.asarray(env_actions, dtype=np.float64).reshape(-1, NUM_POSES, 3)

    def env_actions_of(self, members: np.ndarray, trajectories: np.ndarray) -> np.ndarray:
        return clip_trajectories(trajectories)

    def sample_group(self, obs: Any, group_size: int, temperature: float = 1.0) -> GroupSample:
        inputs = self.inputs(obs)
        out = self.vla.sample(inputs, group_size, temperature)
        B, G = len(inputs), group_size
        members = self._pad(out.sequences, self.vla.tokens.pad).reshape(B, G, self.max_len)
        logp = self._pad(out.token_logprobs.float(), 0.0).astype(np.float32).reshape(B, G, self.max_len)
        mask = self._pad(out.mask, False).reshape(B, G, self.max_len)
        env_actions = clip_trajectories(np.asarray(out.trajectories).reshape(B, G, NUM_POSES, 3))
        return GroupSample(members=members, trajectories=env_actions.astype(np.float64), env_actions=env_actions,
                           logp=logp, loss_mask=mask)

    def greedy(self, obs: Any) -> tuple[np.ndarray, np.ndarray]:
        actions = clip_trajectories(self.vla.predict(self.inputs(obs)).trajectories)
        return actions, actions.astype(np.float64)

    def greedy_members(self, obs: Any) -> MemberEncoding:
        """The greedy output sequences (label text, action codes, EOS) as members; every output token carries the
        loss, as a sampled member's."""
        out = self.vla.predict(self.inputs(obs))
        return MemberEncoding(members=self._pad(out.sequences, self.vla.tokens.pad),
                              trajectories=clip_trajectories(np.asarray(out.trajectories)).astype(np.float64),
                              loss_mask=self._pad(out.mask, False))

    def encode_trajectories(self, trajectories: np.ndarray, explanations: list[str]) -> MemberEncoding:
        traj = np.asarray(trajectories, dtype=np.float64).reshape(-1, NUM_POSES, 3)
        seqs = self._pad(self.vla.target_sequences(list(explanations), traj), self.vla.tokens.pad)
        book = self.vla.codebook
        projected = clip_trajectories(np.asarray(book.decode(book.encode(traj))).reshape(-1, NUM_POSES, 3))
        projected = projected.astype(np.float64)
        return MemberEncoding(members=seqs, trajectories=projected, loss_mask=np.isin(seqs, self._code_ids))

    def member_texts(self, members: np.ndarray) -> list[str]:
        """The label sentence of each member ``(K, max_len)`` (:func:`agents.vla.format.parse_output`)."""
        from agents.vla.format import parse_output

        tpt = self.vla.codebook.tokens_per_trajectory
        return [parse_output(row, self.vla.processor.tokenizer, self.vla.tokens, tpt).text
                for row in np.asarray(members).reshape(-1, self.max_len)]

    def action_token_mask(self, members: np.ndarray) -> np.ndarray:
        """``(K, max_len)`` bool: the action (codeword) tokens; the label text, ``<action>`` and EOS are not."""
        return np.isin(np.asarray(members).reshape(-1, self.max_len), self._code_ids)

    def member_log_prob(self, obs: Any, members: np.ndarray, valid: np.ndarray | None = None,
                        temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        members = np.asarray(members)
        B, M = members.shape[:2]
        valid = np.ones((B, M), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
        logp = torch.zeros((B, M, self.max_len), device=self.device)
        mask = torch.zeros((B, M, self.max_len), dtype=torch.bool, device=self.device)
        states = np.flatnonzero(valid.any(axis=1))
        if len(states) == 0:
            return logp, mask
        arrays = {k: _numpy(v)[states] for k, v in obs.items()}
        rows_b, rows_m = np.nonzero(valid[states])
        seqs = torch.as_tensor(members[states][rows_b, rows_m], dtype=torch.long)
        lp = self.vla.log_prob(self.inputs(arrays), seqs, temperature, input_index=rows_b)
        width = lp.tokens.shape[1]
        index = (torch.as_tensor(states[rows_b]), torch.as_tensor(rows_m))
        logp = logp.index_put(index, torch.nn.functional.pad(lp.tokens, (0, self.max_len - width)))
        mask = mask.index_put(index, torch.nn.functional.pad(lp.mask, (0, self.max_len - width)))
        return logp, mask

    # ------------------------------------------------------------------ SB3 predict
    def forward(self, obs: Any, deterministic: bool = True) -> torch.Tensor:
        if deterministic:
            traj = self.greedy(obs)[1]
        else:
            traj = self.sample_group(obs, 1).trajectories[:, 0]
        return torch.as_tensor(clip_trajectories(traj))

    def _predict(self, observation: Any, deterministic: bool = False) -> torch.Tensor:
        return self.forward(observation, deterministic)

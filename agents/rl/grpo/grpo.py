"""Anchor-GRPO as a stable-baselines3 algorithm (sb3-contrib conventions: one package, ``_setup_model`` /
``collect_rollouts`` / ``train`` overridden, a dedicated rollout buffer, policy aliases).

Why ``OnPolicyAlgorithm``: its ``learn`` loop (collect ``n_steps`` per env, then ``train``), logger, progress bar,
callbacks, episode statistics, ``save`` / ``load`` and ``VecEnv`` handling fit GRPO unchanged; only the body of a
step differs (G samples + anchors scored per state, one of them stepped) and the update (no value function, no GAE:
``gamma``, ``gae_lambda``, ``vf_coef`` are unused and fixed). ``BaseAlgorithm`` would mean re-writing that loop.

One collection step, per env (all envs batched through the policy, the scorer calls run in parallel on a
``SubprocVecEnv``):

1. sample ``G`` members from pi_old for the current observation (:meth:`GroupPolicy.sample_group`);
   ``greedy_member=True``: ``G - 1`` samples and, in slot ``G - 1``, the policy's greedy decision
   (:meth:`GroupPolicy.greedy_members`, pi_old by teacher forcing, loss and KL as a sampled member's), so a sample
   gains only where it beats the mode the policy acts with; ``mean_fractions`` (K of them): the K slots before it
   hold the policy's mean trajectory at those fractions of its speed (the same treatment);
2. anchors (unless ``anchors=False``, vanilla GRPO): the pair that applies to the current state
   (:class:`agents.rl.grpo.anchors.AnchorBank`: the mined dataset and/or pairs mined online from this run's crashes),
   brought into the current ego frame, encoded as policy members (their log-probabilities under pi_old by teacher
   forcing), in slots ``G`` (positive) and ``G + 1`` (negative) (``anchor_members``: both, or one of them);
3. score every member from the current state without changing it (:meth:`envs.replay_env.ReplayEnv.score_group`);
   the group reward is the env's ``reward`` term, ``w_score * score + w_collision * collision`` with the env's
   :class:`envs.sim.reward.RewardConfig` (default: SP-PDMS + the collision term), so GRPO's group score and the env's
   step reward (PPO's) are one weighting;
4. step the env with the first sampled member (``step_with="sample"``), the policy's mode (``"greedy"``) or the
   best-scored sampled member (``"best"``);
5. label consistency (a policy that states a label, the VLA): each member's sentence against its own scored outcome
   and motion (:func:`agents.rl.grpo.label_consistency.label_consistency`, ``c in [0, 1]``), stored and logged as
   ``group/label_consistency``; with ``label_term = w > 0`` the member's group reward is ``reward + w * c``.

Update (:meth:`GRPO.train`): advantages per group over sampled members and anchors together
(:func:`agents.rl.grpo.loss.group_advantages`; ``scale_rewards=False``: Dr. GRPO), then ``n_epochs`` passes of the
clipped loss (the anchors' advantages times ``anchor_weight``) + beta x k3 KL to the frozen reference (:func:`agents.rl.grpo.loss.grpo_loss`, every term's equation
there), minibatches of whole groups, gradient-norm clip. ``text_credit="kl_only"``: the sampled members' label text
tokens carry no advantage, only the KL (:meth:`GroupPolicy.action_token_mask` selects the advantage's tokens).

**Anchors' ratio.** Anchors are not drawn from pi_old. They use the same clipped ratio ``pi_theta / pi_old`` as the
sampled members, with pi_old their teacher-forced probability at collection time: each update can raise the
positive's probability (A > 0) or lower the negative's (A < 0) by at most a factor ``1 +- clip_range``, the trust
region LUFFY's shaping ``f(p) = p / (p + 0.1)`` also aims at; that shaping is defined for token probabilities, not
for the Gaussian policy's densities, so one rule serves both policy kinds. Anchors carry no KL term (the k3
estimator assumes samples from the policy). For token policies only their action tokens carry the loss (the label
text is the context they are conditioned on: the negative is pushed down, not its correct explanation).

**Reference policy.** Frozen at construction by :meth:`GroupPolicy.make_reference` (:meth:`GRPO.reset_reference`
re-freezes the current weights, e.g. after loading a behaviour-cloned start). The Gaussian policy's reference is
saved in the zip (``ref_policy`` state dict) and restored by ``load``; the VLA adapter's reference is rebuilt from
its SFT checkpoint folder (``policy_kwargs["path"]``), so the zip does not carry a second copy of a large model.
Anchor pairs are not saved: pass them again (:meth:`GRPO.set_anchor_pairs`) after ``load``.

TensorBoard (``tensorboard_log``): ``group/*`` (mean reward and every scorer term of the sampled members, reward
std, zero-std share; for the VLA ``group/label_consistency``, and ``group/reward`` includes ``label_term * c``),
``anchors/*`` (share of states with anchors, mean advantage and reward of positives and negatives, online pairs;
cumulative ``anchors/states_seen`` / ``anchors/online_states_seen``, also in the pipeline's ``state.json``),
``rollout/*`` (stepped actions: PDMS, SP-PDMS, collision term per step; per finished episode: collision rate, route
completion, driving score, stopped share), ``train/*`` (loss, policy loss, KL, clip fraction, approx. KL to pi_old,
std), and ``group/bev`` images every ``log_images_every`` updates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, TypeVar

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Image
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback
from stable_baselines3.common.vec_env import VecEnv

from agents.rl.grpo.anchors import AnchorBank, AnchorTolerance
from agents.rl.grpo.buffer import SAMPLED, GroupRolloutBuffer
from agents.rl.grpo.config import GRPOConfig
from agents.rl.env import call_each, decision_contexts
from agents.rl.grpo.label_consistency import label_consistency
from agents.rl.grpo.loss import grpo_loss
from agents.rl.grpo.policies import GroupPolicy, TrajectoryGaussianPolicy
from agents.rl.metrics import DrivingMetrics
from agents.rl.sb3_logger import NoTempLogDir
from envs.sim.scoring import slowed
from counterfactual.dataset import AnchorPair, load_anchor_pairs

SelfGRPO = TypeVar("SelfGRPO", bound="GRPO")

SCORED_TERMS = ("score", "pdms", "sp_pdms", "collision", "nc", "dac", "ddc", "ttc", "ep", "sp_ep", "comfort")
"""Scorer terms stored per member and logged as ``group/<term>`` (means over sampled members); the group reward
(:meth:`GRPO.group_reward`, logged as ``group/reward``) is the env's ``reward`` term (its RewardConfig)."""
LABEL_TERM = "label_consistency"
"""Stored and logged beside :data:`SCORED_TERMS` for a policy that states a label (the VLA): each member's
label-consistency ``c in [0, 1]`` (:mod:`agents.rl.grpo.label_consistency`; in the group reward with weight
``GRPOConfig.label_term``, logged also when that weight is 0)."""
POSITIVE_COLOR, NEGATIVE_COLOR = (0, 160, 255), (255, 0, 255)
"""Colours of the anchors in the group images (sampled members go from red, worst, to green, best)."""


def greedy_member_stats(rewards: np.ndarray, group_size: int) -> dict[str, float]:
    """TensorBoard terms of the greedy member (``GRPOConfig.greedy_member``, slot ``G - 1``) from stored group rewards
    ``(n_steps, n_envs, M)``: ``group/greedy_reward`` (its mean reward), ``group/greedy_minus_sampled`` (its reward
    minus the mean of the ``G - 1`` sampled members, per state, averaged) and ``group/greedy_best_share`` (the share
    of states where it scores at least as well as every sampled member). Does the mode the policy acts with climb
    the training score as its samples do?"""
    G = int(group_size)
    r = np.asarray(rewards, dtype=np.float64).reshape(-1, rewards.shape[-1])
    if len(r) == 0 or G < 2:
        return {}
    greedy, sampled = r[:, G - 1], r[:, : G - 1]
    return {"group/greedy_reward": float(greedy.mean()),
            "group/greedy_minus_sampled": float((greedy - sampled.mean(axis=1)).mean()),
            "group/greedy_best_share": float((greedy >= sampled.max(axis=1)).mean())}


class GRPO(NoTempLogDir, OnPolicyAlgorithm):
    """Group Relative Policy Optimisation with anchor pairs, on SB3 (module docstring).

    Args:
        policy: ``"MlpPolicy"`` / ``"MultiInputPolicy"`` (:class:`~agents.rl.grpo.policies.TrajectoryGaussianPolicy`,
            normalised actions), ``"VLAPolicy"`` (:class:`~agents.rl.grpo.vla_policy.VLAGroupPolicy`, trajectory
            actions; ``policy_kwargs={"path": SFT checkpoint folder}``) or a :class:`GroupPolicy` class.
        env: a closed-loop env whose infos carry ``decision_context`` and that has ``score_group``
            (:func:`agents.rl.env.make_group_env` / :func:`~agents.rl.env.make_group_vec_env`).
        config: :class:`~agents.rl.grpo.config.GRPOConfig` (or a mapping of its fields).
        anchor_pairs: mined pairs (:class:`counterfactual.dataset.AnchorPair` records or a parquet path) for
            ``anchor_source`` ``"dataset"`` / ``"both"``.
        tensorboard_log, policy_kwargs, verbose, seed, device: SB3's meanings (device default ``"cpu"``; without
            ``tensorboard_log`` no temp folder is made, :mod:`agents.rl.sb3_logger`).
    """

    policy_aliases = {"MlpPolicy": TrajectoryGaussianPolicy, "MultiInputPolicy": TrajectoryGaussianPolicy}
    policy: GroupPolicy
    rollout_buffer: GroupRolloutBuffer

    def __init__(self, policy: str | type[GroupPolicy], env: GymEnv | str | None,
                 config: GRPOConfig | Mapping[str, Any] | None = None,
                 anchor_pairs: Iterable[AnchorPair] | str | Path | None = None, tensorboard_log: str | None = None,
                 policy_kwargs: dict[str, Any] | None = None, verbose: int = 0, seed: int | None = None,
                 device: torch.device | str = "cpu", _init_setup_model: bool = True) -> None:
        self.config = GRPOConfig.coerce(config)
        cfg = self.config
        super().__init__(
            policy, env, learning_rate=cfg.learning_rate, n_steps=cfg.n_steps, gamma=1.0, gae_lambda=1.0,
            ent_coef=0.0, vf_coef=0.0, max_grad_norm=cfg.max_grad_norm, use_sde=False, sde_sample_freq=-1,
            tensorboard_log=tensorboard_log, monitor_wrapper=True, policy_kwargs=policy_kwargs, verbose=verbose,
            seed=seed, device=device, _init_setup_model=False, supported_action_spaces=(spaces.Box,),
        )
        self.anchor_bank = AnchorBank(tolerance=self._tolerance(), negative_only=cfg.anchor_negative_only)
        if anchor_pairs is not None:
            self.set_anchor_pairs(anchor_pairs)
        if _init_setup_model:
            self._setup_model()

    def _get_policy_from_name(self, policy_name: str) -> type:
        """SB3's alias lookup, plus ``"VLAPolicy"`` (imported on demand: it needs ``transformers``)."""
        if policy_name == "VLAPolicy":
            from agents.rl.grpo.vla_policy import VLAGroupPolicy

            return VLAGroupPolicy
        return super()._get_policy_from_name(policy_name)

    # ------------------------------------------------------------------ setup
    def _tolerance(self) -> AnchorTolerance:
        cfg = self.config
        return AnchorTolerance(cfg.anchor_position_tol, cfg.anchor_speed_tol, cfg.anchor_heading_tol,
                               cfg.anchor_frame_tol)

    def set_anchor_pairs(self, pairs: Iterable[AnchorPair] | str | Path) -> int:
        """Replace the dataset anchors (records or a parquet path); online pairs already mined are kept. Returns the
        number of pairs indexed."""
        if isinstance(pairs, (str, Path)):
            pairs = load_anchor_pairs(pairs)
        online = getattr(self, "_online_pairs", [])
        self.anchor_bank = AnchorBank(tolerance=self._tolerance(), negative_only=self.config.anchor_negative_only)
        self.anchor_bank.add(pairs)
        self.anchor_bank.add(online, online=True)
        return len(self.anchor_bank)

    def _setup_model(self) -> None:
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        if not hasattr(self, "_online_pairs"):
            self._online_pairs: list[AnchorPair] = []
        if not hasattr(self, "anchor_bank") or len(self.anchor_bank) == 0:  # after load: the loaded config's tolerance
            self.anchor_bank = AnchorBank(tolerance=self._tolerance(), negative_only=self.config.anchor_negative_only)
        kwargs = dict(self.policy_kwargs)
        if issubclass(self.policy_class, TrajectoryGaussianPolicy) and self.env is not None:
            # The policy maps actions to trajectories exactly as the env's NormalizedTrajectoryAction does.
            for name in ("max_speed", "max_yaw_rate"):
                try:
                    value = float(self.env.get_attr(name)[0])
                except AttributeError:
                    raise ValueError("GRPO with the Gaussian trajectory policy needs an env wrapped in "
                                     "envs.wrappers.NormalizedTrajectoryAction (make_group_env(normalized_actions="
                                     "True))") from None
                if name in kwargs and abs(float(kwargs[name]) - value) > 1e-9:
                    raise ValueError(f"policy_kwargs[{name!r}]={kwargs[name]} differs from the env's {value}")
                kwargs[name] = value
            self.policy_kwargs = kwargs
        self.policy = self.policy_class(self.observation_space, self.action_space, self.lr_schedule, **kwargs)
        self.policy = self.policy.to(self.device)
        if not isinstance(self.policy, GroupPolicy):
            raise ValueError(f"GRPO: the policy must be a GroupPolicy, got {type(self.policy).__name__}")
        cfg = self.config
        if cfg.label_term > 0 and not self.policy.states_label:
            raise ValueError(f"GRPOConfig.label_term={cfg.label_term}: {type(self.policy).__name__} states no safety "
                             "label (the label-consistency term needs a policy that writes one, the VLA)")
        if cfg.mean_fractions and self.policy.states_label:
            raise ValueError(f"GRPOConfig.mean_fractions: {type(self.policy).__name__} states a label; its mean members "
                             "would need a label text (the Gaussian policy only)")
        if cfg.teacher_anchor and self.policy.states_label:
            raise ValueError(f"GRPOConfig.teacher_anchor: {type(self.policy).__name__} states a label and conditions "
                             "its anchors' actions on a label text, which the teacher does not give (the Gaussian "
                             "policy only)")
        self.ref_policy = self.policy.make_reference()
        terms = SCORED_TERMS + ((LABEL_TERM,) if self.policy.states_label else ())
        self.rollout_buffer = GroupRolloutBuffer(
            cfg.n_steps, self.observation_space, self.action_space, cfg.group_size, self.policy.member_shape,
            self.policy.member_dtype, self.policy.max_len, terms, device=self.device, n_envs=self.n_envs)
        self._last_infos: list[dict] | None = None
        self._last_dones: np.ndarray | None = None
        self._metrics = DrivingMetrics(episode_window=cfg.metrics_window)
        self._n_rollouts = 0
        self.anchor_states_seen = getattr(self, "anchor_states_seen", 0)
        """States whose group had anchors, over the model's life."""
        self.online_anchor_states_seen = getattr(self, "online_anchor_states_seen", 0)
        """... of them, states whose anchors were mined online (this run's crashes)."""
        self.teacher_states_seen = getattr(self, "teacher_states_seen", 0)
        """... of them, states whose positive was the teacher's (``GRPOConfig.teacher_anchor``)."""

    def reset_reference(self) -> None:
        """Freeze the current policy as the KL reference (e.g. after loading behaviour-cloned weights)."""
        if self.policy.reference_in_checkpoint:
            self.ref_policy = self.policy.make_reference()
        else:
            raise ValueError(f"{type(self.policy).__name__}: the reference is rebuilt from the policy's checkpoint "
                             "folder; it cannot be re-frozen from the current weights")

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        names = ["policy", "policy.optimizer"]
        if self.policy.reference_in_checkpoint:
            names.append("ref_policy")
        return names, []

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "ref_policy", "anchor_bank", "_online_pairs", "_last_infos",
                "_last_dones", "_metrics"]

    def _setup_learn(self, total_timesteps: int, callback: MaybeCallback = None, reset_num_timesteps: bool = True,
                     tb_log_name: str = "run", progress_bar: bool = False) -> tuple[int, BaseCallback]:
        if reset_num_timesteps or self._last_obs is None:
            self._last_infos, self._last_dones = None, None  # contexts come from the reset infos
        return super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)

    # ------------------------------------------------------------------ rewards
    @staticmethod
    def group_reward(terms: Mapping[str, np.ndarray]) -> np.ndarray:
        """``(K,)`` group rewards: the ``reward`` term of the scored members (the env's
        :class:`envs.sim.reward.RewardConfig` weighting; NaN counts as 0)."""
        return np.nan_to_num(np.asarray(terms["reward"], dtype=np.float64), nan=0.0)

    # ------------------------------------------------------------------ collection
    def _anchors_for(self, contexts: list[dict]) -> list[Any]:
        cfg = self.config
        if not cfg.anchors or len(self.anchor_bank) == 0:
            return [None] * len(contexts)
        out = []
        for ctx in contexts:
            a = self.anchor_bank.lookup(ctx)
            if a is not None and ((a.online and cfg.anchor_source == "dataset")
                                  or (not a.online and cfg.anchor_source == "online")):
                a = None
            out.append(a)
        return out

    def collect_rollouts(self, env: VecEnv, callback: BaseCallback, rollout_buffer: GroupRolloutBuffer,
                         n_rollout_steps: int) -> bool:
        """Fill ``rollout_buffer`` with ``n_rollout_steps`` groups per env (module docstring, steps 1-4)."""
        assert self._last_obs is not None, "No previous observation was provided"
        cfg = self.config
        policy = self.policy
        G, M, S = cfg.group_size, cfg.group_size + 2, policy.max_len
        policy.set_training_mode(False)
        rollout_buffer.reset()
        callback.on_rollout_start()
        image_due = bool(cfg.log_images_every) and self._n_rollouts % cfg.log_images_every == 0
        image: tuple[np.ndarray, bool] | None = None
        n_envs = env.num_envs
        n_steps = 0
        while n_steps < n_rollout_steps:
            obs = self._last_obs
            contexts = decision_contexts(env, self._last_infos, self._last_dones)
            K = len(cfg.mean_fractions)
            n_sampled = G - K - (1 if cfg.greedy_member else 0)
            sample = policy.sample_group(obs, n_sampled, cfg.temperature)
            members = np.zeros((n_envs, M, *policy.member_shape), dtype=policy.member_dtype)
            trajectories = np.zeros((n_envs, M, 8, 3))
            valid = np.zeros((n_envs, M), dtype=bool)
            old_logp = np.zeros((n_envs, M, S), dtype=np.float32)
            loss_mask = np.zeros((n_envs, M, S), dtype=bool)
            members[:, :n_sampled], trajectories[:, :n_sampled] = sample.members, sample.trajectories
            old_logp[:, :n_sampled], loss_mask[:, :n_sampled] = sample.logp, sample.loss_mask
            valid[:, :G] = True
            env_actions = sample.env_actions
            greedy = policy.greedy_members(obs) if cfg.greedy_member or K else None
            if cfg.greedy_member:  # slot G - 1: the policy's mode (pi_old by teacher forcing, below)
                members[:, G - 1], trajectories[:, G - 1] = greedy.members, greedy.trajectories
                loss_mask[:, G - 1] = greedy.loss_mask
                greedy_actions = policy.env_actions_of(greedy.members, greedy.trajectories)
                env_actions = np.concatenate([env_actions, greedy_actions[:, None]], axis=1)
            if K:  # slots n_sampled .. n_sampled + K - 1: the mean at each fraction of its speed
                mean = greedy.trajectories  # (B, 8, 3)
                slots = list(range(n_sampled, n_sampled + K))
                enc = policy.encode_trajectories(
                    np.stack([[slowed(t, f) for f in cfg.mean_fractions] for t in mean]).reshape(-1, 8, 3),
                    [""] * (len(mean) * K))
                members[:, slots] = enc.members.reshape(n_envs, K, *policy.member_shape)
                trajectories[:, slots] = enc.trajectories.reshape(n_envs, K, 8, 3)
                loss_mask[:, slots] = enc.loss_mask.reshape(n_envs, K, -1)
                mean_actions = policy.env_actions_of(enc.members, enc.trajectories)
                env_actions = np.concatenate([env_actions[:, :n_sampled], mean_actions.reshape(
                    n_envs, K, *env_actions.shape[2:]), env_actions[:, n_sampled:]], axis=1)
            anchors = self._anchors_for(contexts)
            online = np.array([a is not None and a.online for a in anchors])
            for i, a in enumerate(anchors):
                if a is None:
                    continue
                use_pos = a.positive is not None and cfg.anchor_members != "negative"
                use_neg = cfg.anchor_members != "positive"
                if not (use_pos or use_neg):
                    continue
                slots = ([G] if use_pos else []) + ([G + 1] if use_neg else [])
                trajs = np.stack(([a.positive] if use_pos else []) + ([a.negative] if use_neg else []))
                enc = policy.encode_trajectories(trajs, [a.explanation] * len(slots))
                members[i, slots], trajectories[i, slots] = enc.members, enc.trajectories
                loss_mask[i, slots], valid[i, slots] = enc.loss_mask, True
            if cfg.teacher_anchor:  # the group score's best response where no pair gives a positive
                self._add_teacher(env, policy, np.flatnonzero(~valid[:, G]), members, trajectories, loss_mask, valid)
            anchor_valid = valid.copy()
            anchor_valid[:, :G] = False
            has_anchor = anchor_valid.any(axis=1)
            online &= has_anchor
            self.anchor_states_seen += int(has_anchor.sum())
            self.online_anchor_states_seen += int(online.sum())
            forced = anchor_valid.copy()
            forced[:, G - 1] = cfg.greedy_member
            forced[:, n_sampled:n_sampled + K] = True
            with torch.no_grad():
                if forced.any():  # pi_old of the anchors (and the greedy member) by teacher forcing
                    lp, _ = policy.member_log_prob(obs, members, forced, cfg.temperature)
                    old_logp[forced] = lp.cpu().numpy()[forced]
                ref_logp = np.zeros_like(old_logp)
                if cfg.beta > 0:
                    lp, _ = self.ref_policy.member_log_prob(obs, members, valid, cfg.temperature)
                    ref_logp = lp.cpu().numpy().astype(np.float32)
            scored = call_each(env, "score_group", [(trajectories[i][valid[i]],) for i in range(n_envs)])
            rewards = np.zeros((n_envs, M))
            terms = {k: np.full((n_envs, M), np.nan) for k in rollout_buffer.terms}
            for i, s in enumerate(scored):
                rewards[i, valid[i]] = self.group_reward(s)
                for k in SCORED_TERMS:
                    if k in s:
                        terms[k][i, valid[i]] = s[k]
                if LABEL_TERM in terms:
                    terms[LABEL_TERM][i, valid[i]] = label_consistency(
                        policy.member_texts(members[i][valid[i]]), trajectories[i][valid[i]],
                        float(contexts[i].get("speed", 0.0)), s)
            if cfg.step_with == "sample":
                actions = env_actions[:, 0]
            elif cfg.step_with == "greedy":
                actions = env_actions[:, G - 1] if cfg.greedy_member else policy.greedy(obs)[0]
            else:
                best = rewards[:, :G].argmax(axis=1)
                actions = env_actions[np.arange(n_envs), best]
            if image_due and (image is None or (not image[1] and anchor_valid.any())):
                image = self._group_image(env, trajectories, valid, rewards, G)
            if cfg.label_term > 0:  # after the stepped member's choice: "best" is the best-driving member
                rewards = rewards + cfg.label_term * np.where(valid, terms[LABEL_TERM], 0.0)
            new_obs, env_rewards, dones, infos = env.step(actions)
            self.num_timesteps += n_envs
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)
            self._track(infos, dones)
            rollout_buffer.add(obs, members, trajectories, valid, rewards, terms, old_logp, ref_logp, loss_mask,
                               online)
            self._last_obs, self._last_infos, self._last_dones = new_obs, list(infos), np.asarray(dones)
            self._last_episode_starts = dones
            n_steps += 1
        rollout_buffer.compute_advantages(cfg.scale_rewards, cfg.advantage_eps, cfg.zero_std_tol)
        if cfg.shuffle_advantages:  # the control: advantages with no link to the rewards
            if getattr(self, "_shuffle_rng", None) is None:
                self._shuffle_rng = np.random.default_rng([int(self.seed or 0), 7919])
            rollout_buffer.shuffle_advantages(self._shuffle_rng)
        self._log_rollout(rollout_buffer, image)
        self._n_rollouts += 1
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def _add_teacher(self, env: VecEnv, policy: GroupPolicy, envs: np.ndarray, members: np.ndarray,
                     trajectories: np.ndarray, loss_mask: np.ndarray, valid: np.ndarray) -> None:
        """Slot ``G`` (the positive) of each state in ``envs`` gets the env's group-score best response
        (``best_response``, :attr:`GRPOConfig.teacher_anchor`) unless its plan collides; arrays changed in place."""
        if len(envs) == 0:
            return
        G = self.config.group_size
        try:
            best = call_each(env, "best_response", [(self.config.teacher_fractions,)] * len(envs),
                             indices=[int(i) for i in envs])
        except AttributeError as exc:
            raise ValueError("GRPOConfig.teacher_anchor: the training env has no best_response (the replay env "
                             f"envs.replay_env.ReplayEnv has; {exc})") from None
        for i, b in zip(envs, best):
            if b["is_collision"]:
                continue
            enc = policy.encode_trajectories(np.asarray(b["trajectory"])[None], [""])
            members[i, G], trajectories[i, G] = enc.members[0], enc.trajectories[0]
            loss_mask[i, G], valid[i, G] = enc.loss_mask[0], True
            self.teacher_states_seen += 1

    def _group_image(self, env: VecEnv, trajectories: np.ndarray, valid: np.ndarray, rewards: np.ndarray,
                     G: int) -> tuple[np.ndarray, bool]:
        """BEV image of the first env with anchors (else env 0): sampled members red (worst) to green (best),
        positive blue, negative magenta."""
        has = valid[:, G:].any(axis=1)
        i = int(np.argmax(has)) if has.any() else 0
        r = rewards[i, :G]
        span = max(float(r.max() - r.min()), 1e-9)
        colors = [(int(255 * (1 - (x - r.min()) / span)), int(255 * (x - r.min()) / span), 0) for x in r]
        slots = list(range(G))
        if valid[i, G]:
            slots.append(G)
            colors.append(POSITIVE_COLOR)
        if valid[i, G + 1]:
            slots.append(G + 1)
            colors.append(NEGATIVE_COLOR)
        img = call_each(env, "render_group", [(trajectories[i, slots], colors)], indices=[i])[0]
        return np.asarray(img), bool(has.any())

    def _track(self, infos: Iterable[Mapping[str, Any]], dones: np.ndarray) -> None:
        """Per-step and per-episode driving metrics of the stepped actions (:class:`agents.rl.metrics.DrivingMetrics`);
        online-mined pairs into the bank."""
        self._metrics.update(infos, dones)
        for info in infos:
            pairs = info.get("anchor_pairs")
            if pairs:
                self._online_pairs.extend(pairs)
                self.anchor_bank.add(pairs, online=True)

    def _log_rollout(self, buffer: GroupRolloutBuffer, image: tuple[np.ndarray, bool] | None) -> None:
        for k, v in buffer.stats().items():
            self.logger.record(k, v)
        if self.config.greedy_member:
            for k, v in greedy_member_stats(buffer.rewards[: buffer.pos], self.config.group_size).items():
                self.logger.record(k, v)
        self.logger.record("anchors/bank_pairs", len(self.anchor_bank))
        self.logger.record("anchors/online_pairs", len(self._online_pairs))
        self.logger.record("anchors/states_seen", self.anchor_states_seen)
        self.logger.record("anchors/online_states_seen", self.online_anchor_states_seen)
        self.logger.record("anchors/teacher_states_seen", self.teacher_states_seen)
        self._metrics.record(self.logger)
        if image is not None:
            self.logger.record("group/bev", Image(image[0], "HWC"), exclude=("stdout", "log", "json", "csv"))

    # ------------------------------------------------------------------ update
    def train(self) -> None:
        """``n_epochs`` passes of the GRPO loss over the rollout's groups (minibatches of ``batch_size`` groups)."""
        cfg = self.config
        policy = self.policy
        policy.set_training_mode(True)
        self._update_learning_rate(policy.optimizer)
        buf = self.rollout_buffer
        rng = np.random.default_rng(int(np.random.randint(0, 2**31 - 1)))
        sums: dict[str, list[float]] = {k: [] for k in ("loss", "policy_loss", "kl", "clip_fraction",
                                                          "approx_kl_old")}
        for _ in range(cfg.n_epochs):
            for batch in buf.get(cfg.batch_size, rng):
                valid = batch.valid
                logp, _ = policy.member_log_prob(batch.observations, batch.members, valid.cpu().numpy(),
                                                 cfg.temperature)
                rows = valid.reshape(-1)
                S = logp.shape[-1]
                advantage_mask = None
                if cfg.text_credit == "kl_only":  # label text: KL only; action tokens: advantage as before
                    members = np.asarray(batch.members).reshape(-1, *policy.member_shape)
                    advantage_mask = torch.as_tensor(policy.action_token_mask(members), device=logp.device)[rows]
                terms = grpo_loss(
                    logp.reshape(-1, S)[rows], batch.old_logp.reshape(-1, S)[rows],
                    batch.ref_logp.reshape(-1, S)[rows] if cfg.beta > 0 else None,
                    self._weighted_advantages(batch.advantages, batch.kinds).reshape(-1)[rows],
                    batch.loss_mask.reshape(-1, S)[rows],
                    (batch.kinds.reshape(-1) == 0)[rows], cfg.clip_range, cfg.beta, cfg.loss_aggregation,
                    policy.max_len, cfg.kl_log_ratio_clip, advantage_mask)
                policy.optimizer.zero_grad()
                terms.loss.backward()
                torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
                policy.optimizer.step()
                for k in sums:
                    sums[k].append(float(getattr(terms, k).detach()))
        self._n_updates += cfg.n_epochs
        for k, v in sums.items():
            self.logger.record(f"train/{k}", float(np.mean(v)) if v else float("nan"))
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if hasattr(policy, "log_std"):
            self.logger.record("train/std", float(policy.log_std.detach().exp().mean()))

    def _weighted_advantages(self, advantages: torch.Tensor, kinds: torch.Tensor) -> torch.Tensor:
        """``(B, M)`` advantages with the anchors' (``kinds != SAMPLED``) multiplied by ``anchor_weight``; the
        sampled members' unchanged (:attr:`GRPOConfig.anchor_weight`)."""
        w = self.config.anchor_weight
        if w == 1.0:
            return advantages
        return torch.where(kinds == SAMPLED, advantages, advantages * w)

    def learn(self: SelfGRPO, total_timesteps: int, callback: MaybeCallback = None, log_interval: int = 1,
              tb_log_name: str = "GRPO", reset_num_timesteps: bool = True, progress_bar: bool = False) -> SelfGRPO:
        """Train for ``total_timesteps`` env steps (SB3's ``learn``)."""
        return super().learn(total_timesteps=total_timesteps, callback=callback, log_interval=log_interval,
                             tb_log_name=tb_log_name, reset_num_timesteps=reset_num_timesteps,
                             progress_bar=progress_bar)

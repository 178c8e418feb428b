"""Typed configuration of :class:`agents.rl.grpo.GRPO` (one documented field per option; Hydra-friendly dataclass).

Variants chosen (see ``../shared/specs/grpo.md``): group-relative advantages over the union of the sampled members
and the anchors (LUFFY), divided by the group's std unless ``scale_rewards=False`` (Dr. GRPO); PPO-style clipped
ratio; k3 KL to a frozen reference on the sampled members; loss averaged per sequence then over sequences
(DeepSeekMath) by default, ``"token_mean"`` (DAPO / TRL) or ``"constant"`` (Dr. GRPO) on request.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

from envs.configuration import coerce_config
from envs.sim.scoring import BEST_RESPONSE_FRACTIONS

STEP_WITH = ("sample", "greedy", "best")
"""Which action advances the env (:attr:`GRPOConfig.step_with`)."""
LOSS_AGGREGATIONS = ("sequence_mean", "token_mean", "constant")
"""How token losses are averaged (:attr:`GRPOConfig.loss_aggregation`)."""
ANCHOR_SOURCES = ("dataset", "online", "both")
"""Where anchors come from (:attr:`GRPOConfig.anchor_source`)."""
ANCHOR_MEMBERS = ("both", "positive", "negative")
"""Which members of an applying pair join the group (:attr:`GRPOConfig.anchor_members`)."""
TEXT_CREDITS = ("advantage", "kl_only")
"""What the label-text tokens of a token policy learn from (:attr:`GRPOConfig.text_credit`)."""


@dataclass
class GRPOConfig:
    """Hyperparameters of :class:`agents.rl.grpo.GRPO` (units in brackets)."""

    # ---- optimisation
    learning_rate: float = 3e-4
    """Adam learning rate (constant)."""
    n_steps: int = 64
    """Env steps per environment per rollout (states collected before each update = ``n_steps * n_envs``)."""
    batch_size: int = 32
    """States per minibatch (each with its whole group)."""
    n_epochs: int = 4
    """Passes over the rollout per update."""
    max_grad_norm: float = 0.5
    """Gradient-norm clip."""
    # ---- groups
    group_size: int = 8
    """G: trajectories sampled from the policy per state (>= 2)."""
    temperature: float = 1.0
    """Sampling temperature (token policies; the Gaussian policy samples at its own std)."""
    shuffle_advantages: bool = False
    """A control, not a method: after the group-relative advantages are computed, each group's advantages are
    permuted at random among its valid members (the same magnitudes and the same KL and clipping, no link to the
    rewards). Does an update of this size lower the greedy decision whatever the scores say? docs/grpo_ablation.md."""
    greedy_member: bool = False
    """The last of the ``G`` members is the policy's greedy decision (its mode; pi_old by teacher forcing), the other
    ``G - 1`` sampled: a sample gains only where it beats the mode the policy acts with (the greedy decision's
    reward enters the group's baseline, as in self-critical sequence training, Rennie et al. 2017). False (default):
    ``G`` samples. docs/grpo_ablation.md, "Greedy or sampled decisions"."""
    mean_fractions: tuple = ()
    """The last ``K = len(mean_fractions)`` of the ``G`` members are the policy's mean trajectory
    (:meth:`GroupPolicy.greedy_members`) driven at each of these fractions of its speed (in [0, 1],
    :func:`envs.sim.scoring.slowed`, encoded back into the policy's action space; pi_old by teacher forcing, loss and
    KL as a sampled member's, as ``greedy_member``'s), the first ``G - K`` sampled: the group compares the speed
    choice along the policy's own path. Empty (default): ``G`` samples. The Gaussian policy only (the VLA's members
    carry a label text). docs/grpo_ablation.md, "The policy's own mean, slowed, in its group"."""
    step_with: str = "sample"
    """Action that advances the env: ``"sample"`` (the first sampled member: on-policy states), ``"greedy"`` (the
    policy's mode / greedy decode, not a group member) or ``"best"`` (the sampled member with the highest group
    reward: privileged states, for ablations)."""
    # ---- advantages
    scale_rewards: bool = True
    """Divide ``r - mean`` by the group's std + ``advantage_eps`` (GRPO); False: do not (Dr. GRPO)."""
    advantage_eps: float = 1e-4
    """Added to the group std in the division."""
    zero_std_tol: float = 1e-6
    """A group whose reward std is below this is a zero-std group: advantages 0, counted and logged."""
    # ---- loss
    clip_range: float = 0.2
    """PPO clip epsilon of the ratio ``pi_theta / pi_old``."""
    beta: float = 0.04
    """Weight of the k3 KL to the reference policy (DeepSeekMath / AutoVLA: 0.04; 0 disables it)."""
    loss_aggregation: str = "sequence_mean"
    """``"sequence_mean"``: mean over a member's tokens, then over members (DeepSeekMath); ``"token_mean"``: mean
    over all tokens of the minibatch (DAPO / TRL); ``"constant"``: sum over tokens / the policy's maximum length,
    mean over members (Dr. GRPO). Identical for the Gaussian policy (one "token" per trajectory)."""
    text_credit: str = "advantage"
    """Token policies (the VLA) only: ``"advantage"`` (every generated token, the label text included, carries the
    member's advantage: today's behaviour) or ``"kl_only"`` (the label text tokens, everything before the action
    tokens, carry no advantage, only the KL to the reference; the action tokens as before). Issue 30; measured in
    docs/vla.md ("The label text under GRPO")."""
    label_term: float = 0.0
    """Weight ``w`` of the label-consistency term: each member's group reward gains ``w * c``, ``c in [0, 1]`` the
    consistency of its stated safety label with the scorer's outcome and its own motion
    (:mod:`agents.rl.grpo.label_consistency`), before the group-relative advantage. 0: off (today's rewards). Needs a
    policy that states a label (the VLA)."""
    kl_log_ratio_clip: float = 10.0
    """|log(pi_ref / pi_theta)| is clamped to this in the k3 estimator (numerical guard for Gaussian densities; it
    never binds near the reference)."""
    # ---- anchors
    anchors: bool = True
    """Add anchor pairs (positive + negative) to the group where available; False: vanilla GRPO."""
    anchor_source: str = "both"
    """``"dataset"`` (pairs given to GRPO), ``"online"`` (pairs mined from this run's closed-loop crashes, received
    in ``info["anchor_pairs"]``) or ``"both"``."""
    anchor_members: str = "both"
    """Which of an applying pair's members join the group: ``"both"`` (today: the positive, where the pair has one,
    and the negative), ``"positive"`` (the verified-safe positive only; a pair without one adds nothing) or
    ``"negative"`` (the crash only). The anchors' count per group: 2, 1 or 1 (issue 30's progress ablation,
    docs/grpo_ablation.md)."""
    anchor_weight: float = 1.0
    """Multiplier of the anchors' advantages in the clipped surrogate (1: today; 0: the anchors still enter the
    group's mean and std, i.e. the sampled members' baseline, but get no gradient of their own; > 1: a stronger
    pull towards the positive / push from the negative). Sampled members are unaffected (docs/grpo_ablation.md)."""
    teacher_anchor: bool = False
    """A teacher in the positive slot (anchor-GRPO; docs/grpo_ablation.md, "The group score's best response as the
    positive anchor"): at every state whose group has no positive anchor from the pairs, the env's group-score best
    response
    (:meth:`envs.replay_env.ReplayEnv.best_response`: the logged path at the fraction of its speed the group score
    rates highest) joins the group as the positive, unless its 4 s plan collides. Privileged at training time only,
    as the mined anchors are (it reads the other agents' logged futures); the trained policy sees its observation
    alone. Needs ``anchors``, an
    ``anchor_members`` with the positive, the replay env and a policy that states no label (the Gaussian policy; the
    VLA conditions its anchors' actions on a label text the teacher does not give)."""
    teacher_fractions: tuple = BEST_RESPONSE_FRACTIONS
    """``teacher_anchor``: the fractions of the logged speed the teacher chooses among (in [0, 1])."""
    anchor_negative_only: bool = True
    """Use pairs without a verified positive too (only their negative joins the group)."""
    anchor_position_tol: float = 2.0
    """An anchor applies while the ego's rear axle is within this of the pair's decision pose [m]."""
    anchor_speed_tol: float = 2.0
    """... and its speed within this of the decision speed [m/s]."""
    anchor_heading_tol: float = 0.35
    """... and its heading within this of the decision heading [rad]."""
    anchor_frame_tol: int = 2
    """Online pairs (off the 0.5 s grid) match within this many frames of their decision frame, time-aligned
    (:mod:`agents.rl.grpo.anchors`)."""
    # ---- logging
    log_images_every: int = 0
    """Log a BEV image of a group (anchors drawn) every this many updates (0: never)."""
    metrics_window: int = 100
    """Finished episodes in the rolling driving-metric means (route completion, collision rate ...)."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in ("float", float) and (isinstance(value, bool) or not isinstance(value, (int, float))
                                               or not math.isfinite(value)):
                raise ValueError(f"GRPOConfig.{f.name}: expected a finite number, got {value!r}")
        for name, low in (("n_steps", 1), ("batch_size", 1), ("n_epochs", 1), ("group_size", 2),
                          ("log_images_every", 0), ("metrics_window", 1),
                          ("anchor_frame_tol", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"GRPOConfig.{name}: expected an int >= {low}, got {value!r}")
        for name in ("learning_rate", "temperature", "clip_range", "advantage_eps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"GRPOConfig.{name}: expected > 0, got {getattr(self, name)!r}")
        for name in ("beta", "max_grad_norm", "zero_std_tol", "anchor_position_tol", "anchor_speed_tol",
                     "anchor_heading_tol", "kl_log_ratio_clip", "label_term", "anchor_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"GRPOConfig.{name}: expected >= 0, got {getattr(self, name)!r}")
        for name, may_be_empty in (("teacher_fractions", False), ("mean_fractions", True)):
            value = getattr(self, name)
            fractions = tuple(value) if isinstance(value, (list, tuple)) else None
            if fractions is None or (not fractions and not may_be_empty) or any(
                    isinstance(f, bool) or not isinstance(f, (int, float)) or not 0.0 <= f <= 1.0 for f in fractions):
                raise ValueError(f"GRPOConfig.{name}: expected a {'' if may_be_empty else 'non-empty '}list of numbers "
                                 f"in [0, 1], got {value!r}")
            setattr(self, name, tuple(float(f) for f in fractions))
        if len(self.mean_fractions) + int(self.greedy_member) > self.group_size - 1:
            raise ValueError(f"GRPOConfig.mean_fractions: {len(self.mean_fractions)} mean members"
                             f"{' and the greedy member' if self.greedy_member else ''} leave no sampled member in a "
                             f"group of {self.group_size}")
        if self.teacher_anchor and (not self.anchors or self.anchor_members == "negative"):
            raise ValueError("GRPOConfig.teacher_anchor: the teacher is a positive anchor; it needs anchors=True and "
                             f"anchor_members 'both' or 'positive' (got anchors={self.anchors}, anchor_members="
                             f"{self.anchor_members!r})")
        for name, choices in (("step_with", STEP_WITH), ("loss_aggregation", LOSS_AGGREGATIONS),
                              ("text_credit", TEXT_CREDITS), ("anchor_members", ANCHOR_MEMBERS),
                              ("anchor_source", ANCHOR_SOURCES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"GRPOConfig.{name}: expected one of {choices}, got {getattr(self, name)!r}")

    @classmethod
    def coerce(cls, config: "GRPOConfig | Mapping[str, Any] | None") -> "GRPOConfig":
        """None -> defaults, a mapping -> ``GRPOConfig(**mapping)`` (unknown keys named), a config -> itself
        (:func:`envs.configuration.coerce_config`)."""
        return coerce_config(cls, config)

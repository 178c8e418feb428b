"""GRPO's math as pure tensor functions: group-relative advantages, the k3 KL estimator, the clipped loss.

Shapes: ``B`` states (groups), ``M`` member slots per group (G sampled + anchors; absent anchors are invalid slots),
``N`` member rows of a minibatch, ``S`` tokens per member (1 for the Gaussian trajectory policy: its "token" is the
whole trajectory, log-probability summed over the 16 action dimensions).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def group_advantages(rewards: torch.Tensor, valid: torch.Tensor, scale: bool = True, eps: float = 1e-4,
                     zero_std_tol: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Group-relative advantages (outcome supervision: one value per member, shared by its tokens).

    ``A_i = (r_i - mean_j r_j) / (std_j r_j + eps)`` over the valid members ``j`` of the group (sampled members and
    anchors together: LUFFY's union of on- and off-policy rewards); ``scale=False`` drops the division (Dr. GRPO).
    ``std`` is the unbiased sample std (as TRL's GRPOTrainer). A group whose std is below ``zero_std_tol`` teaches
    nothing: its advantages are exactly 0 and it is flagged.

    Args:
        rewards: ``(B, M)`` member rewards (values at invalid slots are ignored).
        valid: ``(B, M)`` bool, the slots that hold a member.

    Returns:
        ``(advantages (B, M), zero_std (B,) bool)``; advantages are 0 at invalid slots.
    """
    if rewards.shape != valid.shape or rewards.ndim != 2:
        raise ValueError(f"group_advantages: rewards {tuple(rewards.shape)} and valid {tuple(valid.shape)} must be "
                         "the same (B, M) shape")
    valid = valid.bool()
    n = valid.sum(dim=1, keepdim=True)
    if bool((n < 2).any()):
        raise ValueError("group_advantages: every group needs at least 2 valid members")
    r = torch.where(valid, rewards, torch.zeros_like(rewards))
    mean = r.sum(dim=1, keepdim=True) / n
    centred = torch.where(valid, rewards - mean, torch.zeros_like(rewards))
    std = torch.sqrt((centred ** 2).sum(dim=1, keepdim=True) / (n - 1))
    zero_std = (std < zero_std_tol).squeeze(1)
    adv = centred / (std + eps) if scale else centred
    adv = torch.where(zero_std[:, None] | ~valid, torch.zeros_like(adv), adv)
    return adv, zero_std


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor, log_ratio_clip: float | None = None) -> torch.Tensor:
    """Per-token k3 estimator of KL(pi_theta || pi_ref) at tokens sampled from pi_theta (Schulman's unbiased,
    non-negative estimator; DeepSeekMath eq. 4):

    ``KL = pi_ref / pi_theta - log(pi_ref / pi_theta) - 1`` with ``log(pi_ref / pi_theta) = ref_logp - logp``.
    Zero iff the two log-probabilities are equal, positive otherwise. ``log_ratio_clip`` clamps the log-ratio
    (a guard for continuous densities far from the reference).
    """
    log_ratio = ref_logp - logp
    if log_ratio_clip is not None:
        log_ratio = log_ratio.clamp(-log_ratio_clip, log_ratio_clip)
    return torch.exp(log_ratio) - log_ratio - 1.0


@dataclass
class LossTerms:
    """The loss and its parts (scalars; statistics detached)."""

    loss: torch.Tensor
    """Total loss to minimise (with gradients)."""
    policy_loss: torch.Tensor
    """The clipped-surrogate part."""
    kl: torch.Tensor
    """Mean k3 KL over the sampled members' tokens."""
    clip_fraction: torch.Tensor
    """Share of loss tokens whose ratio left ``[1 - eps, 1 + eps]``."""
    approx_kl_old: torch.Tensor
    """Mean of ``(ratio - 1) - log ratio`` over loss tokens (k3 KL to pi_old: how far this update moved)."""


def _aggregate(per_token: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor, how: str, max_len: int) -> torch.Tensor:
    """Average masked token values ``(N, S)`` over the rows ``rows (N,)`` bool, per :data:`LOSS_AGGREGATIONS`."""
    m = mask & rows[:, None]
    if not bool(m.any()):
        return per_token.new_zeros(())
    per_token = torch.where(m, per_token, torch.zeros_like(per_token))
    if how == "token_mean":  # DAPO / TRL: every token of the batch counts equally
        return per_token.sum() / m.sum()
    counts = m.sum(dim=1)
    keep = counts > 0
    if how == "sequence_mean":  # DeepSeekMath: mean over a sequence's tokens, then over sequences
        per_row = per_token.sum(dim=1)[keep] / counts[keep]
    elif how == "constant":  # Dr. GRPO: sum over tokens / a constant (the maximum length), then over sequences
        per_row = per_token.sum(dim=1)[keep] / float(max_len)
    else:
        raise ValueError(f"loss aggregation: unknown {how!r}")
    return per_row.mean()


LOG_RATIO_GUARD = 20.0
"""Upper bound on the surrogate's log-ratio ``logp - old_logp`` (ratio <= 4.9e8) in :func:`grpo_loss`: beyond the clip
range by orders of magnitude, so no ordinary update reaches it; it keeps a member sampled far in the tails of a
narrow Gaussian from turning the loss into inf / nan."""


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor | None, advantages: torch.Tensor,
              loss_mask: torch.Tensor, sampled: torch.Tensor, clip_range: float, beta: float,
              aggregation: str = "sequence_mean", max_len: int | None = None,
              kl_log_ratio_clip: float | None = None, advantage_mask: torch.Tensor | None = None) -> LossTerms:
    """The GRPO loss of ``N`` member rows.

    Per token ``t`` of member ``i`` (the same advantage ``A_i`` on every token):

    * ratio ``rho_{i,t} = exp(logp_{i,t} - old_logp_{i,t}) = pi_theta / pi_old``;
    * clipped surrogate ``l^clip_{i,t} = -min(rho A_i, clip(rho, 1 - eps, 1 + eps) A_i)`` (PPO);
    * KL ``l^KL_{i,t} = beta * k3(pi_theta, pi_ref)`` on sampled members only (the estimator assumes tokens drawn
      from the policy; anchors are not);
    * ``L = agg_i,t(l^clip_{i,t}) + agg_{i sampled},t(l^KL_{i,t})`` with ``agg`` the chosen aggregation; the
      clipped surrogate over the tokens of ``advantage_mask`` (default: ``loss_mask``), the KL over ``loss_mask``.

    ``advantage_mask`` narrower than ``loss_mask`` (``GRPOConfig.text_credit="kl_only"``: the action tokens) leaves
    the other tokens (the VLA's label text) with the KL to the reference only: their gradient carries no advantage.

    Anchors (``sampled=False``) use the same clipped ratio against their teacher-forced ``pi_old`` (see
    :mod:`agents.rl.grpo.grpo`: each update moves their probability by at most a factor ``1 +- eps``).

    Args:
        logp: ``(N, S)`` current log-probabilities (with gradients).
        old_logp: ``(N, S)`` log-probabilities at collection time (pi_old).
        ref_logp: ``(N, S)`` reference log-probabilities, or None when ``beta == 0``.
        advantages: ``(N,)``.
        loss_mask: ``(N, S)`` bool, the tokens that carry the loss.
        sampled: ``(N,)`` bool, members sampled from pi_old (the KL's rows).
        clip_range: eps.
        beta: KL weight.
        aggregation: ``"sequence_mean"``, ``"token_mean"`` or ``"constant"``.
        max_len: the constant of ``"constant"`` (default ``S``).
        advantage_mask: ``(N, S)`` bool, the tokens that carry the clipped surrogate (None: ``loss_mask``; it is
            intersected with ``loss_mask``).
    """
    loss_mask = loss_mask.bool()
    adv_mask = loss_mask if advantage_mask is None else loss_mask & advantage_mask.bool()
    sampled = sampled.bool()
    every = torch.ones_like(sampled)
    S = logp.shape[1]
    log_ratio = logp - old_logp
    # A guard, not a clip: ratios past e^LOG_RATIO_GUARD overflow float32 sums (inf * 0 = nan) and only arise for
    # members far in the policy's tails (e.g. anchors under a narrow std); they keep the bound's value, no gradient.
    ratio = torch.exp(log_ratio.clamp(max=LOG_RATIO_GUARD))
    adv = advantages[:, None]
    surrogate = torch.min(ratio * adv, torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range) * adv)
    policy_loss = _aggregate(-surrogate, adv_mask, every, aggregation, max_len or S)
    if beta > 0 and ref_logp is not None:
        kl_tok = k3_kl(logp, ref_logp, kl_log_ratio_clip)
        kl = _aggregate(kl_tok, loss_mask, sampled, aggregation, max_len or S)
        loss = policy_loss + beta * kl
    else:
        kl = (_aggregate(k3_kl(logp, ref_logp, kl_log_ratio_clip), loss_mask, sampled, aggregation, max_len or S)
              if ref_logp is not None else logp.new_zeros(()))
        loss = policy_loss
    with torch.no_grad():
        m = loss_mask
        n = m.sum().clamp(min=1)
        clipped = ((ratio - 1.0).abs() > clip_range) & m
        clip_fraction = clipped.sum() / n
        approx = torch.where(m, ratio - 1.0 - log_ratio, torch.zeros_like(ratio)).sum() / n
    return LossTerms(loss=loss, policy_loss=policy_loss.detach(), kl=kl.detach(), clip_fraction=clip_fraction,
                     approx_kl_old=approx)

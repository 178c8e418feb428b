"""GRPO and the VLA's label text (issue 30): the label-consistency term on hand-built members (exact values), the
members' own motion, ``text_credit="kl_only"`` (the text tokens' gradient carries no advantage), and both options in
a GRPO rollout with the tiny VLA (the term enters the stored group reward exactly; the default adds nothing).
Small sizes (seconds)."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch

from agents.rl.grpo import GRPO, GRPOConfig
from agents.rl.grpo.label_consistency import candidate_motion, label_consistency, measured_risk
from agents.rl.grpo.loss import grpo_loss
from tests.test_grpo import rear_end, tiny_vla, toy_vec_env, vla_env  # noqa: F401  (fixtures)

NO_RISK = "The road is clear with no immediate risk, so the ego should keep the lane."
HIGH_KEEP = ("A vehicle ahead, 6.0 m away, in a rear-end conflict with high collision risk, so the ego should keep "
             "the lane.")
HIGH_BRAKE = "A vehicle ahead, 6.0 m away, in a rear-end conflict with high collision risk, so the ego should brake."
NO_RISK_BRAKE = "A vehicle ahead, 6.0 m away, in a rear-end conflict with no immediate risk, so the ego should brake."
LOW_KEEP = ("A vehicle ahead, 30 m away, in a rear-end conflict with low collision risk, so the ego should keep "
            "the lane.")
GIBBERISH = "vehicle vehicle ahead"

V0 = 10.0
"""Current speed of the hand-built members [m/s]."""
T = np.arange(1, 9) * 0.5


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield
    gc.collect()


def _keep() -> np.ndarray:
    """(8, 3) keeps 10 m/s straight ahead."""
    return np.stack([V0 * T, 0 * T, 0 * T], axis=-1)


def _brake() -> np.ndarray:
    """(8, 3) slows from 9 to 1 m/s along the lane."""
    return np.stack([np.cumsum(np.linspace(9.0, 1.0, 8)) * 0.5, 0 * T, 0 * T], axis=-1)


def _terms(collision_time: list[float], ttc_time: list[float] | None = None) -> dict[str, np.ndarray]:
    ct = np.asarray(collision_time, dtype=np.float64)
    return {"is_collision": np.isfinite(ct), "collision_time": ct,
            "ttc_time": np.full(len(ct), np.nan) if ttc_time is None else np.asarray(ttc_time, dtype=np.float64)}


def test_colliding_member_that_states_no_risk_scores_below_the_one_that_states_high():
    """Two members keep their speed and collide 1.0 s ahead (measured: high): the one saying "no immediate risk"
    gets risk 0 and action 1 (0.5); the one saying "high collision risk" gets 1.0."""
    c = label_consistency([NO_RISK, HIGH_KEEP], np.stack([_keep(), _keep()]), V0, _terms([1.0, 1.0]))
    np.testing.assert_allclose(c, [0.5, 1.0], atol=1e-12)


def test_consistency_rule_exact_values():
    """Each branch of the rule (label_consistency module docstring) on hand-built members."""
    keep, brake = _keep(), _brake()
    cases = [  # (text, trajectory, collision time, TTC failure time, expected)
        (NO_RISK, keep, np.nan, np.nan, 1.0),          # safe, says none + keep: all consistent
        (HIGH_KEEP, keep, np.nan, np.nan, 0.5),        # passive, says high, nothing happens: risk 1 - 3/3 = 0
        (LOW_KEEP, keep, 2.0, np.nan, 0.5 * (1 - 1 / 3) + 0.5),  # contact at 2 s (medium) stated low
        (HIGH_BRAKE, brake, np.nan, np.nan, 1.0),      # evasive and safe: the high risk it answers is no overstatement
        (HIGH_BRAKE, keep, 1.0, np.nan, 0.5 + 0.5 * 0.5),  # says brake, keeps its speed (lon wrong, lat right)
        (NO_RISK_BRAKE, brake, np.nan, np.nan, 0.0 + 0.5),  # evasive with risk none: schema-inconsistent
        (NO_RISK, brake, np.nan, np.nan, 0.5 + 0.25),  # says keep the lane, brakes
        (NO_RISK, keep, np.nan, 2.5, 0.5 * (1 - 2 / 3) + 0.5),  # TTC failure at 2.5 s: medium, stated none
        (GIBBERISH, keep, np.nan, np.nan, 0.0),        # no risk, no action parsed
    ]
    texts = [c[0] for c in cases]
    trajs = np.stack([c[1] for c in cases])
    terms = _terms([c[2] for c in cases], [c[3] for c in cases])
    np.testing.assert_allclose(label_consistency(texts, trajs, V0, terms), [c[4] for c in cases], atol=1e-12)
    np.testing.assert_array_equal(measured_risk(_terms([1.0, 1.6, 3.0, 3.2, np.nan])), [3, 2, 2, 1, 0])


def test_candidate_motion_follows_the_label_vocabulary():
    """Keeping speed, braking, following a 50 m bend, a 3.5 m lane change left, a swerve right and back,
    accelerating: longitudinal -1 / 0 / +1 and lateral -1 / 0 / +1 (a bend is no swerve)."""
    R = 50.0
    phi = V0 * T / R
    bend = np.stack([R * np.sin(phi), R * (1 - np.cos(phi)), phi], axis=-1)
    change = _keep()
    change[:, 1] = np.clip((T - 1.0) * 1.5, 0.0, 3.5)
    swerve = _keep()
    swerve[:, 1] = -np.sin(np.pi * T / 4.0)
    fast = np.stack([np.cumsum(np.linspace(11.0, 15.0, 8)) * 0.5, 0 * T, 0 * T], axis=-1)
    lon, lat = candidate_motion(np.stack([_keep(), _brake(), bend, change, swerve, fast]), V0)
    np.testing.assert_array_equal(lon, [0, -1, 0, 0, 0, 1])
    np.testing.assert_array_equal(lat, [0, 0, 0, 1, -1, 0])
    with pytest.raises(ValueError, match="trajectories must be"):
        candidate_motion(np.zeros((8, 3)), V0)
    with pytest.raises(ValueError, match="2 texts for 1 trajectories"):
        label_consistency([NO_RISK, NO_RISK], _keep()[None], V0, _terms([np.nan]))


def test_kl_only_text_tokens_get_no_advantage_gradient():
    """Per-token gradients of the loss: with the advantage on the action tokens only, the text tokens' gradient is
    the KL's alone (the same for any advantages, zero without the KL); the action tokens' depends on the advantage."""
    torch.manual_seed(0)
    N, S = 4, 6
    old = -torch.rand(N, S) - 0.1
    ref = old + 0.05 * torch.randn(N, S)
    mask = torch.ones(N, S, dtype=torch.bool)
    action = torch.zeros(N, S, dtype=torch.bool)
    action[:, 4:] = True  # tokens 0-3: label text, 4-5: action tokens
    sampled = torch.ones(N, dtype=torch.bool)

    def grads(advantages: torch.Tensor, beta: float, advantage_mask) -> torch.Tensor:
        logp = (old + 0.03 * torch.randn(N, S, generator=torch.Generator().manual_seed(1))).requires_grad_(True)
        grpo_loss(logp, old, ref if beta else None, advantages, mask, sampled, 0.2, beta,
                  advantage_mask=advantage_mask).loss.backward()
        return logp.grad

    a1, a2 = torch.tensor([1.0, -1.0, 0.5, -0.5]), torch.tensor([-2.0, 0.3, 1.0, 0.7])
    g0 = grads(a1, 0.0, action)
    assert torch.all(g0[:, :4] == 0) and torch.all(g0[:, 4:].abs() > 0)
    g1, g2 = grads(a1, 0.04, action), grads(a2, 0.04, action)
    torch.testing.assert_close(g1[:, :4], g2[:, :4], rtol=0, atol=0)  # text: the KL's gradient only
    assert torch.all(g1[:, :4].abs() > 0)  # ... which is there
    assert not torch.allclose(g1[:, 4:], g2[:, 4:])
    full = grads(a1, 0.04, None)  # today: the advantage on the text tokens too
    assert not torch.allclose(full[:, :4], g1[:, :4])


def test_config_and_policy_errors():
    with pytest.raises(ValueError, match="text_credit"):
        GRPOConfig(text_credit="text")
    with pytest.raises(ValueError, match="label_term"):
        GRPOConfig(label_term=-1.0)
    with pytest.raises(ValueError, match="states no safety label"):
        GRPO("MlpPolicy", toy_vec_env(), dict(label_term=1.0, anchors=False))


def _rollout(tiny_vla, scene, pairs, **options) -> GRPO:  # noqa: F811
    cfg = GRPOConfig(n_steps=2, batch_size=2, n_epochs=1, group_size=4, learning_rate=3e-3, beta=0.04, **options)
    model = GRPO("VLAPolicy", vla_env(scene), cfg, anchor_pairs=pairs, policy_kwargs={"path": str(tiny_vla)}, seed=0)
    model.learn(2)
    return model


def test_vla_rollout_label_term_and_kl_only(tiny_vla, rear_end):  # noqa: F811
    """One rollout of the tiny VLA three ways from the same seed: the label term adds exactly ``w * c`` to every
    member's stored reward (the samples are the same: the term draws no random numbers); the default stores the
    consistency but leaves the rewards alone; ``kl_only`` trains and logs."""
    scene, pairs = rear_end
    base = _rollout(tiny_vla, scene, pairs)
    with_term = _rollout(tiny_vla, scene, pairs, label_term=0.5)
    b, w = base.rollout_buffer, with_term.rollout_buffer
    np.testing.assert_array_equal(b.members, w.members)
    c = b.terms["label_consistency"]
    valid = b.valid
    assert np.all((c[valid] >= 0) & (c[valid] <= 1)) and np.all(np.isnan(c[~valid]))
    np.testing.assert_allclose(w.rewards[valid], b.rewards[valid] + 0.5 * c[valid], atol=1e-12)
    texts = base.policy.member_texts(b.members[0, 0])
    assert len(texts) == b.members.shape[2] and all(isinstance(t, str) for t in texts)
    mask = base.policy.action_token_mask(b.members[0, 0])
    assert mask.any(axis=1).all() and not mask.all()  # action tokens only
    kl_only = _rollout(tiny_vla, scene, pairs, text_credit="kl_only")
    np.testing.assert_array_equal(kl_only.rollout_buffer.members, b.members)  # same samples, another update:
    moved = [not torch.equal(p, q) for p, q in zip(kl_only.policy.parameters(), base.policy.parameters())]
    assert any(moved)


def test_hydra_options_reach_the_grpo_config():
    """``train.grpo.label_term`` / ``train.grpo.text_credit`` on the command line become the typed GRPOConfig's; the
    defaults are today's (0, ``advantage``)."""
    from hydra import compose, initialize_config_module

    from experiments.run import typed_config

    def typed(*overrides: str):
        with initialize_config_module(config_module="experiments.conf", version_base=None):
            return typed_config(compose(config_name="config", overrides=list(overrides)))

    default = typed().train.grpo
    assert isinstance(default, GRPOConfig) and default.label_term == 0.0 and default.text_credit == "advantage"
    chosen = typed("train.grpo.label_term=0.5", "train.grpo.text_credit=kl_only").train.grpo
    assert chosen.label_term == 0.5 and chosen.text_credit == "kl_only"
    with pytest.raises(SystemExit, match="GRPOConfig.text_credit: expected one of"):
        typed("train.grpo.text_credit=words")

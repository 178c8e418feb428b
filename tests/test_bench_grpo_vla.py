"""Smoke test of ``benchmarks.bench_grpo_vla`` (GRPO with a tiny VLA on SYNTHETIC bank scenes, 2 env steps): every
part of the breakdown is measured, and the two decoders run the same rollout (same outputs, same seed)."""

from __future__ import annotations

import pytest

from benchmarks import bench_grpo_vla as bench

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_breakdown_covers_the_run_for_both_decoders(tmp_path):
    from agents.vla.codebook import CodebookConfig, TrajectoryCodebook, log_trajectories
    from agents.vla.model import VLAConfig
    from agents.vla.policy import VLAPolicy
    from agents.vla.tokenizer import TokenizerConfig
    from envs.scenes.bank import ScenarioBank

    bank = ScenarioBank(6, seed=0)
    book = TrajectoryCodebook.fit(log_trajectories([bank[i] for i in range(len(bank))], stride=2),
                                  CodebookConfig(size=16, mode="segment"))
    path = VLAPolicy.build(book, VLAConfig.tiny(), TokenizerConfig(corpus_size=300), max_text_tokens=12
                           ).save_pretrained(tmp_path / "vla")
    results = {d: bench.run_grpo(str(path), None, d, steps=2, group_size=2, seed=0)
               for d in ("fast", "transformers")}
    for r in results.values():
        assert set(r["ms"]) == set(bench.PARTS) and r["steps_per_s"] > 0 and r["cpu_steps_per_s"] > 0
        for part in ("sample", "ref logp", "score", "env step", "update fwd", "update bwd+opt"):
            assert r["ms"][part] > 0, part
        assert r["ms"]["other"] >= 0
    assert results["fast"]["rollout_rewards"] == results["transformers"]["rollout_rewards"]

"""The whole method from one command, end to end with a tiny budget: every stage, both SFT modes, both GRPO
variants, PPO; every table cell finite or an explained n/a; a killed run resumes without redoing finished stages."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_module

import experiments.stages  # noqa: F401  (registers the stages)
from experiments.results import check_cells
from experiments.run import run

TINY = ["env.num_scenes=6", "env.eval_num_scenes=2", "train.sft.max_steps=4", "train.sft.batch_size=4",
        "train.bc.steps=50", "train.rl_budget=4", "train.grpo.n_steps=4", "train.grpo.batch_size=4",
        "train.grpo.group_size=2", "train.ppo.n_steps=4", "train.ppo.batch_size=4", "agent.codebook_scenes=4",
        "agent.codebook_size=16", "render.num_scenes=2", "progress=false", "mine.lead_times=[2.0]"]


def _cfg(tmp_path, *overrides):
    with initialize_config_module(config_module="experiments.conf", version_base=None):
        return compose(config_name="config", overrides=[*TINY, f"out_dir={tmp_path}", *overrides])


def test_the_whole_method_end_to_end_with_a_tiny_budget(tmp_path):
    ctx = run(_cfg(tmp_path), tmp_path)
    data = json.loads((tmp_path / "results.json").read_text())
    methods = [row["method"] for row in data["rows"]]
    for name in ("pdm_closed_like", "safe_oracle", "sft_positive", "sft_negative", "ppo", "grpo", "anchor_grpo",
                 "majority (trivial)", "type+lead lookup (trivial)"):
        assert name in methods, methods
    assert check_cells(data["rows"]) == []
    table = (tmp_path / "results.md").read_text()
    assert "SYNTHETIC" in table and "n/a" in table and (tmp_path / "results.csv").is_file()
    assert set(ctx.outputs) == {"collect", "mine", "sft", "grpo", "eval"}
    assert (tmp_path / "sft" / "negative" / "final").is_dir() and (tmp_path / "rl" / "ppo.zip").is_file()
    assert any((tmp_path / "tb").iterdir())


def test_a_killed_run_resumes_without_redoing_finished_stages(tmp_path, monkeypatch, capsys):
    cfg = _cfg(tmp_path, "algo=sft_negative", "evaluate.planners=[stand_still]")
    from experiments import pipeline

    real = pipeline.REGISTRY["sft"]

    def killed(ctx):
        raise KeyboardInterrupt("killed during sft")

    monkeypatch.setitem(pipeline.REGISTRY, "sft", pipeline.Stage("sft", killed, real.requires, real.config_keys))
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path)
    monkeypatch.setitem(pipeline.REGISTRY, "sft", real)
    capsys.readouterr()
    run(cfg, tmp_path)
    out = capsys.readouterr().out
    assert "== collect: done in an earlier run, skipped" in out and "== mine: done in an earlier run, skipped" in out
    assert "== sft: positive-only" in out and (tmp_path / "results.md").is_file()


def test_bad_selections_fail_before_any_stage(tmp_path):
    with pytest.raises(SystemExit, match="stage 'sft' reads the outputs of 'mine'"):
        run(_cfg(tmp_path, "stages=[sft]"), tmp_path)
    with pytest.raises(SystemExit, match="env.eval_seed=0 equals env.seed"):
        run(_cfg(tmp_path, "env.eval_seed=0"), tmp_path)
    with pytest.raises(SystemExit, match=r"algo.methods: unknown \['dqn'\]"):
        run(_cfg(tmp_path, "algo.methods=[dqn]"), tmp_path)
    assert not (tmp_path / "state.json").exists()

"""``benchmarks.bench_decoder`` on world v2 (issue #29): the ``--env world_v2`` split is the ``env=world_v2``
preset's (same scenes, same decision rule and observation as the pipeline builds), held-out seeds are checked, and
the selection summary (mean lead over the majority) is computed from the runs."""

from __future__ import annotations

import json

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module

from benchmarks.bench_decoder import build_parser, codebook_scenes, summarize, world_v2_sources


def _cfg(*overrides: str):
    with initialize_config_module(config_module="experiments.conf", version_base=None):
        return compose(config_name="config", overrides=list(overrides))


def test_world_v2_split_is_the_pipelines():
    """Same training and held-out scenes as ``env=world_v2`` with the same sizes and seeds, and the SFT sample
    settings the pipeline's SFT stage uses for that run (hazard_dense decisions, the VLA agent's observation)."""
    from agents.sft.data import SampleConfig
    from experiments.builders import env_config, sources
    from experiments.pipeline import Context
    from experiments.run import typed_config

    typed = typed_config(_cfg("env=world_v2", "env.num_scenes=3", "env.eval_num_scenes=2", "env.eval_seed=4242",
                              "tensorboard=false"))
    ctx = Context(out=Path("."), cfg=typed)
    want_train, want_held, _ = sources(ctx)
    train, held, samples = world_v2_sources(3, 0, 2, 4242)
    for got, want in ((train, want_train), (held, want_held)):
        assert got.description == want.description and len(got) == len(want)
        for i in range(len(want)):
            assert got[i].scene_id == want[i].scene_id
            assert np.array_equal(got[i].ego_poses, want[i].ego_poses)
    assert "curve" not in train.collection.road_families and "curve" in held.collection.road_families
    assert samples == SampleConfig(expert_frames_per_scene=int(typed.train.expert_frames),
                                   frame_sampling=typed.env.frame_sampling, observation=env_config(ctx).observation)
    assert samples.frame_sampling == "hazard_dense"


def test_world_v2_held_out_seed_must_differ_from_the_training_seed():
    with pytest.raises(SystemExit, match="--eval-seed: 7 is the training seed"):
        world_v2_sources(2, 7, 2, 7)


def test_cli_options_reach_the_run():
    args = build_parser().parse_args(["--env", "world_v2", "--eval-seed", "4242,9191", "--label-balance", "risk"])
    assert args.eval_seed == "4242,9191" and args.label_balance == "risk" and codebook_scenes(args) == 100
    assert codebook_scenes(build_parser().parse_args([])) == 120
    assert codebook_scenes(build_parser().parse_args(["--env", "world_v2", "--codebook-scenes", "7"])) == 7
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--env", "world_v3"])


def test_summary_means_over_run_seeds_and_leads_over_the_majority():
    def scores(language, risk):
        return {"language": language, "risk": risk, "fields": {}, "risk_experts": 0.0}

    runs = [{"eval": {"4242": {"real": scores(0.6, 0.5), "blank": scores(0.2, 0.3)}}},
            {"eval": {"4242": {"real": scores(0.4, 0.7), "blank": scores(0.4, 0.1)}}}]
    ceilings = {"4242": {"majority": scores(0.45, 0.4)}}
    row = summarize(runs, ceilings)["4242"]
    assert row["real_language"] == pytest.approx(0.5) and row["real_risk"] == pytest.approx(0.6)
    assert row["blank_language"] == pytest.approx(0.3) and row["blank_risk"] == pytest.approx(0.2)
    assert row["language_lead"] == pytest.approx(0.05) and row["risk_lead"] == pytest.approx(0.2)
    assert row["lead"] == pytest.approx(0.125)
    assert "lead" not in summarize(runs, {})["4242"]


def test_head_lever_options_and_paired_differences():
    """``--label-source head`` reaches the run; the paired differences read the runs' per-row hits: a head right on
    every row against a text policy right on none gives +100 points with a degenerate interval, and the head against
    itself (its blank pass given the same rows) gives exactly 0."""
    from benchmarks.bench_decoder import paired_differences

    args = build_parser().parse_args(["--label-source", "head", "--label-head-read", "tower_mean", "--no-text"])
    assert (args.label_source, args.label_head_read, args.no_text) == ("head", "tower_mean", True)

    def report(hit: float) -> dict:
        rows = [{"sample_id": f"s{i}", "scene_id": f"scene{i // 2}", "kind": "expert", "risk": bool(hit),
                 "fields": {f: hit for f in ("risk_agent_class", "sector", "risk_level", "conflict_type", "action")}}
                for i in range(8)]
        return {"language": hit, "risk": hit, "fields": {}, "no_hazard": hit, "per_row": rows}

    runs = [{"label_source": "head", "eval": {"4242": {"real": report(1.0), "blank": report(1.0)}},
             "text_eval": {"4242": {"real": report(0.0), "blank": None}}} for _ in range(2)]
    paired = paired_differences({"runs": runs, "ceiling": {"4242": {"majority": report(0.0)}}}, resamples=200)
    for name in ("head - text", "head - majority", "text - majority"):
        assert name in paired["4242"]
    d = paired["4242"]["head - text"]["language"]
    assert (d["diff"], d["low"], d["high"]) == (1.0, 1.0, 1.0)
    assert paired["4242"]["head - head blank BEV"]["risk"]["diff"] == 0.0
    assert paired["4242"]["text - majority"]["risk"]["diff"] == 0.0


def test_merge_joins_runs_and_ceiling_rows(tmp_path):
    from benchmarks.bench_decoder import merge

    def out(seed, ceiling):
        return {"args": {"label_source": "head"}, "runs": [{"seed": seed}], "ceiling": {"4242": ceiling}}

    major = {"majority": {"language": 0.5}}
    (tmp_path / "a.json").write_text(json.dumps(out(0, major)))
    (tmp_path / "b.json").write_text(json.dumps(out(1, {**major, "probe": {"language": 0.7}})))
    merged = merge([str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert [r["seed"] for r in merged["runs"]] == [0, 1] and set(merged["ceiling"]["4242"]) == {"majority", "probe"}
    (tmp_path / "c.json").write_text(json.dumps(out(2, {"majority": {"language": 0.6}})))
    with pytest.raises(SystemExit, match="another majority row"):
        merge([str(tmp_path / "a.json"), str(tmp_path / "c.json")])
    text = {"args": {"label_source": "text", "max_steps": 250}, "runs": [{"seed": 0, "eval": {"4242": "text0"}}],
            "ceiling": {}}
    (tmp_path / "t.json").write_text(json.dumps(text))
    joined = merge([str(tmp_path / "a.json")], [str(tmp_path / "t.json")])
    assert joined["runs"][0]["text_eval"] == {"4242": "text0"}
    with pytest.raises(SystemExit, match="no text run of run seed 1"):
        merge([str(tmp_path / "b.json")], [str(tmp_path / "t.json")])


def test_mined_pairs_are_cached_and_the_same(tmp_path, monkeypatch):
    """The second call reads the cached pairs (the miner is not run again) and they key the same rendered rows."""
    import agents.vla.evaluate as evaluate
    from agents.sft.data import cache_key
    from benchmarks.bench_decoder import mined_pairs

    train, _, samples = world_v2_sources(3, 0, 2, 4242)
    first = mined_pairs(train, str(tmp_path))
    assert first and len(list(tmp_path.glob("pairs-*.parquet"))) == 1
    monkeypatch.setattr(evaluate, "heldout_pairs", lambda *a, **k: pytest.fail("mined again"))
    again = mined_pairs(train, str(tmp_path))
    origins = [train.origin(i) for i in range(len(train))]
    assert cache_key(origins, again, samples) == cache_key(origins, first, samples)

"""Paired comparisons between methods on the same held-out scenes (:mod:`experiments.compare`) and the per-scene
records they read (:mod:`experiments.per_scene`)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from omegaconf import OmegaConf

from experiments.compare import ComparePairs, _statistic, _sums, compare, main, paired_bootstrap
from experiments.per_scene import decision_records, read_per_scene, scene_records, write_per_scene


def _scene_sums(values: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {f"s{k:03d}": (np.array([v]), np.ones(1)) for k, v in enumerate(values)}


def test_paired_bootstrap_covers_a_known_difference_and_zero():
    """b = a + 0.10 + noise on 96 scenes: the interval covers 0.10 and excludes 0; b = a + symmetric noise of mean
    exactly 0: the interval covers 0; identical inputs: exactly 0, a zero-width interval."""
    rng = np.random.default_rng(7)
    a = rng.uniform(0.2, 0.8, 96)
    noise = rng.normal(0.0, 0.05, 48)
    shift = paired_bootstrap([_scene_sums(a)], [_scene_sums(a + 0.10 + np.concatenate([noise, -noise]))], 2000)
    assert shift["diff"] == pytest.approx(0.10, abs=1e-12)
    assert shift["low"] < 0.10 < shift["high"] and shift["low"] > 0.05  # excludes 0 with margin
    zero = paired_bootstrap([_scene_sums(a)], [_scene_sums(a + np.concatenate([noise, -noise]))], 2000)
    assert zero["diff"] == pytest.approx(0.0, abs=1e-12) and zero["low"] < 0.0 < zero["high"]
    same = paired_bootstrap([_scene_sums(a)], [_scene_sums(a.copy())], 2000)
    assert same["diff"] == 0.0 and same["low"] == 0.0 and same["high"] == 0.0
    # pairing: the same draw for both methods, so the paired interval is far narrower than the scene spread
    assert shift["high"] - shift["low"] < 0.05 < a.std()


def test_shared_scenes_are_resampled_once_across_seeds():
    """Runs evaluated on the same scenes share one scene draw per replicate: three identical runs give the one
    run's interval, not a narrower one (as if they were 3 x 96 independent scenes); the hierarchical scheme (the
    default) adds the spread between runs."""
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 1, 96)
    b = a + rng.normal(0.05, 0.2, 96)
    one = paired_bootstrap([_scene_sums(a)], [_scene_sums(b)], 2000, seed=1, scheme="scenes")
    three = paired_bootstrap([_scene_sums(a)] * 3, [_scene_sums(b)] * 3, 2000, seed=1, scheme="scenes")
    assert (three["low"], three["high"]) == pytest.approx((one["low"], one["high"]), abs=1e-12)
    hier = paired_bootstrap([_scene_sums(a), _scene_sums(a)], [_scene_sums(b), _scene_sums(b + 0.3)], 2000,
                            scheme="hierarchical")
    flat = paired_bootstrap([_scene_sums(a), _scene_sums(a)], [_scene_sums(b), _scene_sums(b + 0.3)], 2000,
                            scheme="scenes")
    assert hier["high"] - hier["low"] > flat["high"] - flat["low"]  # the seed level adds its spread
    with pytest.raises(ValueError, match="scheme"):
        paired_bootstrap([_scene_sums(a)], [_scene_sums(b)], 100, scheme="seeds")


def _accuracy_rows():
    from counterfactual.schema import RISK_LEVELS

    rng = np.random.default_rng(0)
    rows = []
    for k in range(40):
        pair = k % 3 != 0
        rows.append({"kind": "pair" if pair else "expert", "scenario_type": "cut_in", "lead_time_s": 2.0 if pair
                     else float("nan"), "prompt": "", "sample_id": f"s{k // 4}@{k}", "scene_id": f"s{k // 4}",
                     "risk_agent_class": "vehicle" if pair else "", "sector": rng.choice(["front", "left"]) if pair
                     else "", "risk_level": rng.choice(RISK_LEVELS), "conflict_type": "cut_in" if pair else "",
                     "action": rng.choice(["none", "yield", "brake"]) if pair else "none"})
    predicted = [{"risk_agent_class": "vehicle", "sector": rng.choice(["front", "left"]),
                  "risk_level": rng.choice(RISK_LEVELS), "conflict_type": rng.choice(["cut_in", None]),
                  "action": rng.choice(["yield", "brake"])} for _ in rows]
    return rows, predicted


def test_records_average_back_to_the_table_values(tmp_path):
    """The per-scene / per-decision records, written and read back, give the results table's values exactly (the
    statistic at unit weights): language accuracy (mean of per-field means over pairs), risk accuracy, PDMS,
    collision rate, route completion and driving score (NaN left out)."""
    from agents.evaluation import EvalResult
    from agents.vla.evaluate import accuracy_report

    rows, predicted = _accuracy_rows()
    report = accuracy_report("vla", predicted, rows)
    ol = EvalResult("p", "open_loop", 3, 0.5, "pdms", 1 / 3, per_scene=[
        {"scene_id": f"s{i}", "scenario_type": "cut_in", "score": s, "collision": c}
        for i, (s, c) in enumerate([(0.2, True), (0.9, False), (float("nan"), False)])])
    cl = EvalResult("p", "closed_loop", 3, 0.5, "pdms", 2 / 3, per_scene=[
        {"scene_id": f"s{i}", "scenario_type": "cut_in", "score": 0.5, "collision": c, "route_completion": rc,
         "driving_score": ds} for i, (c, rc, ds) in enumerate([(True, 0.4, 0.2), (False, 1.0, 1.0),
                                                                (True, 0.6, float("nan"))])])
    path = write_per_scene(tmp_path / "per_scene.jsonl", scene_records("vla", ol, cl) +
                           decision_records("vla", report), seed=0, description="SYNTHETIC test")
    header, records = read_per_scene(path)
    assert header["seed"] == 0 and "SYNTHETIC" in header["description"]
    expected = {"language_accuracy": report.language_accuracy, "risk_accuracy": report.risk_accuracy,
                "pdms": (0.2 + 0.9) / 2, "collision_rate": 2 / 3, "route_completion": 2.0 / 3,
                "driving_score": 0.6}
    for column, value in expected.items():
        sums = _sums(records, column)
        num = np.stack([n for n, _ in sums.values()])
        den = np.stack([d for _, d in sums.values()])
        assert _statistic(np.ones((1, len(sums))), num, den)[0] == pytest.approx(value, abs=1e-12), column
    assert 0.0 < report.language_accuracy < 1.0 and len({r["scene_id"] for r in report.per_row}) == 10


def test_bad_per_scene_files_and_unpaired_records_are_named(tmp_path):
    bad = tmp_path / "per_scene.jsonl"
    bad.write_text('{"schema": "safealign.per_scene", "version": 1}\n{"unit": "scene", "method": "x"}\n')
    with pytest.raises(ValueError, match=r"per_scene.jsonl:2: scene record without"):
        read_per_scene(bad)
    with pytest.raises(ValueError, match="no per-scene records"):
        read_per_scene(tmp_path / "missing.jsonl")
    rec = [{"unit": "scene", "method": m, "scene_id": sid, "pdms": 0.5, "collision_open_loop": 0.0,
            "collision": 0.0, "route_completion": 1.0, "driving_score": 1.0}
           for m, ids in (("a", ("s1", "s2")), ("b", ("s1", "s3"))) for sid in ids]
    with pytest.raises(ValueError, match="not on the same units"):
        compare([({}, rec)], "a", "b", ["pdms"], 100)
    with pytest.raises(ValueError, match="no per-scene records of method 'c'"):
        compare([({}, rec)], "a", "c", ["pdms"], 100)
    with pytest.raises(ValueError, match="unknown"):
        compare([({}, rec)], "a", "b", ["speed"], 100)
    # a label column only b states (a planner against a VLA row) is left out, not an error
    ok = [r for r in rec if r["scene_id"] == "s1"] + [{"unit": "decision", "method": "b", "scene_id": "s1",
                                                       "sample_id": "s1@0", "kind": "pair", "fields": {"sector": 1.0},
                                                       "risk": 1.0}]
    assert [c.column for c in compare([({}, ok)], "a", "b", resamples=100)] == [
        "pdms", "collision_rate", "route_completion", "driving_score"]


def test_cli_and_callback_on_two_tiny_run_folders(tmp_path, capsys):
    """A planners-only tiny pipeline writes ``per_scene.jsonl`` beside ``results.json``; the CLI over two run folders
    gives ``b - a`` equal to the tables' difference, with its interval, in markdown and JSON; the multirun callback
    writes the pairs of ``evaluate.compare``."""
    from hydra import compose, initialize_config_module

    from experiments.run import run

    with initialize_config_module(config_module="experiments.conf", version_base=None):
        cfg = compose(config_name="config", overrides=[
            "env.num_scenes=4", "env.eval_num_scenes=6", "env.scenario_types=[rear_end,normal]", "render.enabled=false",
            "mine.lead_times=[2.0]", "algo.methods=[]", "evaluate.planners=[log_replay,stand_still]",
            "progress=false", "tensorboard=false", f"out_dir={tmp_path / 'sweep' / '0'}"])
    run(cfg, tmp_path / "sweep" / "0")
    shutil.copytree(tmp_path / "sweep" / "0", tmp_path / "sweep" / "1")
    runs = [str(tmp_path / "sweep" / s) for s in ("0", "1")]
    table = {r["method"]: r for r in json.loads((tmp_path / "sweep" / "0" / "results.json").read_text())["rows"]}
    assert main([*runs, "--a", "stand_still", "--b", "log_replay", "--bootstrap", "500",
                 "--out", str(tmp_path / "cmp")]) == 0
    data = json.loads((tmp_path / "cmp" / "compare_stand_still_vs_log_replay.json").read_text())
    cols = {c["column"]: c for c in data["columns"]}
    assert set(cols) == {"pdms", "collision_rate", "route_completion", "driving_score"}  # planners state no label
    for key, c in cols.items():
        assert c["diff"] == pytest.approx(100 * (table["log_replay"][key] - table["stand_still"][key]), abs=1e-9)
        assert c["low"] <= c["diff"] <= c["high"] and c["scenes"] == 6 and c["per_run"] == [c["diff"]] * 2
    assert "| collision_rate |" in (tmp_path / "cmp" / "compare_stand_still_vs_log_replay.md").read_text()
    with pytest.raises(SystemExit, match="no per-scene records of method 'ppo'"):
        main([*runs, "--a", "ppo", "--b", "log_replay", "--bootstrap", "100"])
    callback_cfg = OmegaConf.create({"evaluate": {"compare": [["stand_still", "log_replay"]], "bootstrap": 200},
                                     "hydra": {"sweep": {"dir": str(tmp_path / "sweep")}}})
    ComparePairs().on_multirun_end(callback_cfg)
    assert (tmp_path / "sweep" / "compare_stand_still_vs_log_replay.md").is_file()
    assert "log_replay - stand_still" in capsys.readouterr().out


@pytest.mark.parametrize("experiment", ["paper", "sft_compare"])
def test_the_powered_experiments_evaluate_96_scenes_and_name_their_comparisons(experiment):
    from hydra import compose, initialize_config_module

    from experiments.registry import method_names
    from experiments.run import typed_config

    with initialize_config_module(config_module="experiments.conf", version_base=None):
        typed = typed_config(compose(config_name="config", overrides=[f"+experiment={experiment}"]))
    assert typed.env.eval_num_scenes >= 96 and typed.evaluate.blank_bev
    assert ["sft_positive", "sft_negative"] in typed.evaluate.compare
    assert all(m in method_names() for pair in typed.evaluate.compare for m in pair)


def test_tiny_vla_run_writes_label_records_and_the_blank_bev_row(tmp_path):
    """The tiny pipeline (``tests/test_pipeline.py``'s budget) with ``evaluate.blank_bev=true``: the VLA row's records
    give its table values exactly (language / risk accuracy included), the blank-BEV row has label records only, and
    the trivial rows' label records compare against the VLA row on language and risk."""
    from hydra import compose, initialize_config_module

    from experiments.run import run
    from tests.test_pipeline import TINY

    with initialize_config_module(config_module="experiments.conf", version_base=None):
        cfg = compose(config_name="config", overrides=[*TINY, "algo=sft_negative", "evaluate.planners=[]",
                                                       "evaluate.blank_bev=true", "tensorboard=false",
                                                       f"out_dir={tmp_path}"])
    run(cfg, tmp_path)
    rows = {r["method"]: r for r in json.loads((tmp_path / "results.json").read_text())["rows"]}
    terms = rows["sft_negative"]["open_loop_terms"]  # the open-loop PDMS's terms, in results.json only
    assert {"nc", "ttc", "ep", "comfort"} <= set(terms) and all(0.0 <= v <= 1.0 for v in terms.values())
    assert 1 <= rows["sft_negative"]["open_loop_distinct_decisions"] <= 2  # two held-out decisions
    blank = rows["sft_negative (blank BEV)"]
    assert blank["kind"] == "ablation" and blank["pdms"] is None and blank["language_accuracy"] is not None
    _, records = read_per_scene(tmp_path / "per_scene.jsonl")
    for method in ("sft_negative", "majority (trivial)", "sft_negative (blank BEV)"):
        mine = [r for r in records if r["method"] == method]
        for column in ("language_accuracy", "risk_accuracy", "pdms", "collision_rate"):
            sums = _sums(mine, column)
            if rows[method][column] is None:
                assert not sums, (method, column)
                continue
            num = np.stack([n for n, _ in sums.values()])
            den = np.stack([d for _, d in sums.values()])
            assert _statistic(np.ones((1, len(sums))), num, den)[0] == pytest.approx(rows[method][column],
                                                                                      abs=1e-12), (method, column)
    result = compare([({}, records)], "sft_negative (blank BEV)", "sft_negative", resamples=200)
    assert [c.column for c in result] == ["language_accuracy", "risk_accuracy"]
    assert result[0].diff == pytest.approx(100 * (rows["sft_negative"]["language_accuracy"]
                                                  - blank["language_accuracy"]), abs=1e-9)


def test_cross_run_comparison_pairs_one_row_of_two_configurations(tmp_path):
    """``--b-runs``: the same row (``anchor_grpo``) of two configurations trained in separate run folders, paired run
    by run: ``b - a`` is the difference of the two folders' values, the rows are renamed by the labels; a seed
    mismatch, an unequal number of runs or equal labels are errors naming the fault."""
    def folder(name: str, seed: int, pdms: list[float]) -> str:
        rec = [{"unit": "scene", "method": m, "scene_id": f"s{k}", "pdms": v, "collision_open_loop": 0.0,
                "collision": 0.0, "route_completion": v, "driving_score": v}
               for m in ("anchor_grpo", "sft_negative") for k, v in enumerate(pdms)]
        write_per_scene(tmp_path / name / "per_scene.jsonl", rec, seed=seed)
        return str(tmp_path / name)

    a = [folder("a0", 0, [0.2, 0.4, 0.6]), folder("a1", 1, [0.3, 0.3, 0.3])]
    b = [folder("b0", 0, [0.3, 0.5, 0.7]), folder("b1", 1, [0.5, 0.5, 0.5])]
    assert main([*a, "--b-runs", *b, "--a", "anchor_grpo", "--b", "anchor_grpo", "--a-label", "today",
                 "--b-label", "beta0", "--bootstrap", "200", "--columns", "pdms,route_completion",
                 "--out", str(tmp_path / "cmp")]) == 0
    data = json.loads((tmp_path / "cmp" / "compare_today_vs_beta0.json").read_text())
    assert data["b_runs"] == b and data["a"] == "today" and data["b"] == "beta0"
    for c in data["columns"]:
        assert c["per_run"] == pytest.approx([10.0, 20.0]) and c["diff"] == pytest.approx(15.0)
        assert c["excludes_zero"] and c["scenes"] == 3
    with pytest.raises(SystemExit, match="give --a-label / --b-label"):
        main([*a, "--b-runs", *b, "--a", "anchor_grpo", "--b", "anchor_grpo"])
    with pytest.raises(SystemExit, match="1 run\\(s\\) against 2"):
        main([*a, "--b-runs", b[0], "--a", "anchor_grpo", "--b", "anchor_grpo", "--b-label", "x"])
    with pytest.raises(SystemExit, match="pair 0: seed 0 against 1"):
        main([*a, "--b-runs", *reversed(b), "--a", "anchor_grpo", "--b", "anchor_grpo", "--b-label", "x"])
    # the same folders, different rows: sft_negative of a against anchor_grpo of b
    assert main([*a, "--b-runs", *b, "--a", "sft_negative", "--b", "anchor_grpo", "--bootstrap", "100",
                 "--columns", "pdms", "--out", str(tmp_path / "cmp2")]) == 0

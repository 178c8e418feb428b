"""Language accuracy on every decision row (pairs and expert decisions, like risk), the trivial predictors on exactly
the VLA's rows, and the prompt state recorded in a policy folder (save / load, CLI defaults, conflicting values)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from agents.vla.evaluate import accuracy_report, language_accuracy, trivial_baselines
from counterfactual.language import NO_HAZARD_EXPLANATION, NO_HAZARD_FIELDS

FIELDS = ("risk_agent_class", "sector", "risk_level", "conflict_type", "action")


def _row(sample_id, kind, typ, lead, cls, sector, risk, conflict, action):
    return {"sample_id": sample_id, "scene_id": sample_id.split("@")[0], "kind": kind, "scenario_type": typ,
            "lead_time_s": lead, "prompt": sample_id, "risk_agent_class": cls, "sector": sector, "risk_level": risk,
            "conflict_type": conflict, "action": action}


# Two pair rows (mined labels) and two expert rows (geometry labels: one no-hazard, one hazard in view).
ROWS = [
    _row("a@20", "pair", "rear_end", 2.0, "vehicle", "front", "high", "rear_end", "brake"),
    _row("b@30", "pair", "right_turn_vru", 1.0, "pedestrian", "left", "medium", "crossing", "none"),
    _row("c@40", "expert", "normal", math.nan, "", "", "none", "", "keep_lane"),
    _row("d@50", "expert", "cut_in", math.nan, "vehicle", "front", "low", "cut_in", "yield"),
]
NO_HAZARD = dict(NO_HAZARD_FIELDS)
PREDICTED = [
    {"risk_agent_class": "vehicle", "sector": "front", "risk_level": "high", "conflict_type": "rear_end",
     "action": "brake"},                                     # all five right
    {"risk_agent_class": "pedestrian", "sector": "front", "risk_level": "low", "conflict_type": "crossing",
     "action": "brake"},                                     # class, conflict right; sector, risk wrong; action n/s
    NO_HAZARD,                                               # the no-hazard answer on a no-hazard row: all right
    NO_HAZARD,                                               # ... on a row with a hazard in view: all wrong
]


def test_language_is_scored_on_every_decision_row():
    """Exact values on a hand-built set where the pair-only and the all-rows scores differ."""
    report = accuracy_report("vla", PREDICTED, ROWS)
    # every row: class 3/4, sector 2/4, risk 2/4, conflict 3/4, action 2/3 (the pair with true action "none" is
    # not scored) -> mean 19/30; the pair rows alone: 1, 1/2, 1/2, 1, 1/1 -> 4/5
    assert report.fields == pytest.approx({"risk_agent_class": 3 / 4, "sector": 1 / 2, "risk_level": 1 / 2,
                                           "conflict_type": 3 / 4, "action": 2 / 3}, abs=1e-12)
    assert report.language_accuracy == pytest.approx(19 / 30, abs=1e-12)
    assert report.language_accuracy_pairs == pytest.approx(4 / 5, abs=1e-12)
    assert (report.risk_accuracy, report.risk_accuracy_pairs, report.risk_accuracy_experts) == (0.5, 0.5, 0.5)
    assert report.risk_accuracy == report.fields["risk_level"]
    assert (report.pairs, report.experts) == (2, 2)
    # every row carries its per-field hits (expert rows too), what per_scene.jsonl and the comparison read
    assert [r["fields"] for r in report.per_row][2:] == [dict.fromkeys(FIELDS, 1.0), dict.fromkeys(FIELDS, 0.0)]
    assert report.per_row[1]["fields"]["action"] is None
    with pytest.raises(ValueError, match="3 predictions for 4 rows"):
        accuracy_report("vla", PREDICTED[:3], ROWS)
    with pytest.raises(ValueError, match="row kind 'frame'"):
        accuracy_report("vla", PREDICTED, [{**ROWS[0], "kind": "frame"}, *ROWS[1:]])


def _same(a, b):
    """Equal reports (compared as JSON text: NaN != NaN, and the file's keys are sorted)."""
    return json.dumps(a.to_dict(), sort_keys=True) == json.dumps(b.to_dict(), sort_keys=True)


def test_results_json_round_trips_and_reads_the_old_key(tmp_path, capsys):
    """``--out`` JSON back into a report (:func:`load_report`); a file written while risk on the expert rows was
    called ``no_hazard_accuracy`` reads it as ``risk_accuracy_experts``; ``--table`` prints saved reports."""
    from agents.evaluation import EvalResult
    from agents.vla.evaluate import VLAEvalReport, load_report, main as evaluate_main, report_table, write_report

    ol = EvalResult(policy="vla", mode="open_loop", num_scenes=4, score=0.5, score_kind="pdms", collision_rate=0.25)
    report = VLAEvalReport("vla", ol, None, [accuracy_report("vla", PREDICTED, ROWS),
                                             *trivial_baselines(ROWS, ROWS)])
    write_report(tmp_path / "new.json", report)
    saved = json.loads((tmp_path / "new.json").read_text())
    assert saved["accuracy"][0]["risk_accuracy_experts"] == 0.5 and "no_hazard_accuracy" not in saved["accuracy"][0]
    again = load_report(tmp_path / "new.json")
    assert isinstance(again.open_loop, EvalResult) and again.closed_loop is None
    assert _same(again, report)
    assert report_table([again]) == report_table([report])
    assert "risk acc experts" in report_table([report]) and "no-hazard" not in report_table([report])
    # an older file: the old key, read as the new name
    old = {**saved, "accuracy": [{("no_hazard_accuracy" if k == "risk_accuracy_experts" else k): v
                                  for k, v in a.items()} for a in saved["accuracy"]]}
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert _same(load_report(tmp_path / "old.json"), report)
    assert evaluate_main(["--table", str(tmp_path / "old.json"), str(tmp_path / "new.json")]) == 0
    printed = capsys.readouterr().out
    assert printed.count("\nvla ") == 2 and "risk acc experts" in printed
    # both names, or a key no report has: an error naming the file and the key
    both = {**saved, "accuracy": [{**saved["accuracy"][0], "no_hazard_accuracy": 0.5}]}
    (tmp_path / "both.json").write_text(json.dumps(both))
    with pytest.raises(ValueError, match=r"both.json: accuracy\[0\]: both 'no_hazard_accuracy' \(the old name\) "
                                         r"and 'risk_accuracy_experts'"):
        load_report(tmp_path / "both.json")
    (tmp_path / "odd.json").write_text(json.dumps({**saved, "accuracy": [{**saved["accuracy"][0], "colour": 1}]}))
    with pytest.raises(ValueError, match=r"odd.json: accuracy\[0\]: unknown key 'colour'"):
        load_report(tmp_path / "odd.json")


def test_decision_records_average_to_the_all_rows_language(tmp_path):
    from experiments.compare import _statistic, _sums, _units
    from experiments.per_scene import decision_records, read_per_scene, write_per_scene

    report = accuracy_report("vla", PREDICTED, ROWS)
    path = write_per_scene(tmp_path / "per_scene.jsonl", decision_records("vla", report), seed=0,
                           description="SYNTHETIC test")
    _, records = read_per_scene(path)
    sums = _sums(records, "language_accuracy")
    num, den = np.stack([n for n, _ in sums.values()]), np.stack([d for _, d in sums.values()])
    assert _statistic(np.ones((1, len(sums))), num, den)[0] == pytest.approx(19 / 30, abs=1e-12)
    assert _units(records, "language_accuracy") == {r["sample_id"] for r in ROWS}
    # a file written before (expert records without fields) still reads as its own table did: pairs only
    old = [{**r, "fields": None} if r["kind"] == "expert" else r for r in records]
    sums = _sums(old, "language_accuracy")
    num, den = np.stack([n for n, _ in sums.values()]), np.stack([d for _, d in sums.values()])
    assert _statistic(np.ones((1, len(sums))), num, den)[0] == pytest.approx(4 / 5, abs=1e-12)


TRAIN = [
    _row("t1@20", "pair", "rear_end", 2.0, "vehicle", "front", "high", "rear_end", "brake"),
    _row("t2@20", "pair", "rear_end", 2.0, "vehicle", "front", "high", "rear_end", "brake"),
    _row("t3@30", "expert", "normal", math.nan, "", "", "none", "", "keep_lane"),
    _row("t4@30", "expert", "normal", math.nan, "", "", "none", "", "keep_lane"),
    _row("t5@30", "expert", "cut_in", math.nan, "", "", "none", "", "keep_lane"),
]


def test_trivial_predictors_are_scored_on_the_same_rows():
    """Majority (fitted on every training row: the no-hazard answer here) and lookup, every field on every row."""
    majority, lookup = trivial_baselines(TRAIN, ROWS)
    for report in (majority, lookup):
        assert [r["sample_id"] for r in report.per_row] == [r["sample_id"] for r in ROWS]
        assert all(set(r["fields"]) == set(FIELDS) for r in report.per_row)
    # the majority answers "no hazard" everywhere: right on the no-hazard row only; class 1/4, sector 1/4, risk 1/4,
    # conflict 1/4, action 1/3 -> 4/15
    assert majority.language_accuracy == pytest.approx(4 / 15, abs=1e-12)
    assert majority.language_accuracy_pairs == 0.0 and majority.risk_accuracy == 0.25
    # the lookup: (rear_end, 2 s) -> the pair label, (normal, expert) and (cut_in, expert) -> no hazard, unseen
    # (right_turn_vru, 1 s) -> the majority: rows a and c right, b and d wrong -> 2/4 per field, action 2/3
    assert lookup.fields == pytest.approx({"risk_agent_class": 1 / 2, "sector": 1 / 2, "risk_level": 1 / 2,
                                           "conflict_type": 1 / 2, "action": 2 / 3}, abs=1e-12)
    assert lookup.language_accuracy == pytest.approx(8 / 15, abs=1e-12)


class _TextPolicy:
    """A stand-in policy that states the no-hazard sentence for every row (``VLAPolicy.predict``'s ``texts``)."""

    name = "no-hazard speaker"

    def predict(self, inputs):
        class _Out:
            texts = [NO_HAZARD_EXPLANATION] * len(inputs)
        return _Out()


def test_policy_and_trivial_rows_through_language_accuracy():
    """``language_accuracy`` (what the pipeline and the CLI call) scores the policy and both trivial predictors on the
    same rows: a policy that always states the no-hazard sentence scores exactly as the majority answer."""
    from datasets import Dataset

    def table(rows):
        return Dataset.from_list([{**r, "bev": np.zeros((4, 4, 3), dtype=np.uint8)} for r in rows])

    vla, majority, lookup = language_accuracy(_TextPolicy(), table(ROWS), table(TRAIN))
    assert vla.per_row == majority.per_row and vla.language_accuracy == pytest.approx(4 / 15, abs=1e-12)
    assert [r["sample_id"] for r in lookup.per_row] == [r["sample_id"] for r in ROWS]


# ------------------------------------------------------------------------------------------------ prompt state
@pytest.fixture(scope="module")
def tiny_policy():
    from agents.vla.codebook import CodebookConfig, TrajectoryCodebook, log_trajectories
    from agents.vla.model import VLAConfig
    from agents.vla.policy import VLAPolicy
    from agents.vla.tokenizer import TokenizerConfig
    from envs.scenes.bank import ScenarioBank

    bank = ScenarioBank(3, seed=0)
    book = TrajectoryCodebook.fit(log_trajectories([bank[i] for i in range(3)], stride=4),
                                  CodebookConfig(size=16, mode="segment"))
    return VLAPolicy.build(book, VLAConfig.tiny(), TokenizerConfig(corpus_size=100, prompt_state="agents",
                                                                   prompt_agents=3), max_text_tokens=24)


def test_prompt_state_round_trips_through_a_policy_folder(tiny_policy, tmp_path):
    from agents.vla.policy import VLAPolicy
    from agents.vla.processor import VLA_FILE, recorded_prompt_state

    assert tiny_policy.prompt_state == ("agents", 3)  # built for the tokenizer's prompts
    tiny_policy.save_pretrained(tmp_path / "p")
    assert recorded_prompt_state(tmp_path / "p") == ("agents", 3)
    assert VLAPolicy.from_pretrained(tmp_path / "p").prompt_state == ("agents", 3)
    # a folder written before the prompt state was recorded loads as "none"
    settings = json.loads((tmp_path / "p" / VLA_FILE).read_text())
    (tmp_path / "p" / VLA_FILE).write_text(json.dumps({k: v for k, v in settings.items()
                                                       if k not in ("prompt_state", "prompt_agents")}))
    assert VLAPolicy.from_pretrained(tmp_path / "p").prompt_state == ("none", 4)
    (tmp_path / "p" / VLA_FILE).write_text(json.dumps({**settings, "prompt_state": "speeds"}))
    # one validator (envs.prompt_state.check_prompt_options), one message, naming the file / attribute and value
    with pytest.raises(ValueError, match=r"safealign_vla.json.prompt_state: expected one of .*, got 'speeds'"):
        VLAPolicy.from_pretrained(tmp_path / "p")
    (tmp_path / "p" / VLA_FILE).write_text(json.dumps({**settings, "prompt_agents": -2}))
    with pytest.raises(ValueError, match=r"safealign_vla.json.prompt_agents: expected an int >= 1, got -2"):
        recorded_prompt_state(tmp_path / "p")
    with pytest.raises(ValueError, match=r"VLAPolicy.prompt_state.prompt_agents: expected an int >= 1, got 0"):
        tiny_policy.prompt_state = ("agents", 0)


def _folder(path, state, agents=4):
    from agents.vla.processor import VLA_FILE

    path.mkdir(parents=True)
    (path / VLA_FILE).write_text(json.dumps({"format_version": "1", "prompt_state": state, "prompt_agents": agents}))
    return path


def test_clis_default_to_the_recorded_prompt_state_and_refuse_another(tmp_path, capsys):
    from agents.sft.train import main as train_main
    from agents.sft.train import training_prompt_state
    from agents.vla.evaluate import main as evaluate_main
    from agents.vla.processor import resolve_prompt_state

    folder = _folder(tmp_path / "policy", "agents", 3)
    assert resolve_prompt_state(folder) == ("agents", 3)
    assert resolve_prompt_state(folder, "agents", 3) == ("agents", 3)
    assert resolve_prompt_state(_folder(tmp_path / "ego", "ego"), None, 6) == ("ego", 4)  # agents unused there
    assert resolve_prompt_state(tmp_path) == ("none", 4)  # a folder recording nothing
    with pytest.raises(SystemExit):
        evaluate_main(["--model", str(folder), "--prompt-state", "none", "--no-progress"])
    err = capsys.readouterr().err
    assert "policy/safealign_vla.json: the policy was trained with prompt_state 'agents', got 'none'" in err
    with pytest.raises(SystemExit):
        evaluate_main(["--model", str(folder), "--prompt-agents", "4", "--no-progress"])
    assert "prompt_agents 3, got 4" in capsys.readouterr().err
    # training: --resume must agree with the checkpoint; --init's state is the default and may be changed
    out = tmp_path / "sft"
    _folder(out / "checkpoint-5", "ego")
    (out / "checkpoint-5" / "trainer_state.json").write_text("{}")
    with pytest.raises(SystemExit):
        train_main(["--mode", "positive", "--pairs", str(tmp_path / "missing.parquet"), "--out", str(out), "--resume",
                    "--prompt-state", "agents"])
    assert "checkpoint-5/safealign_vla.json: the policy was trained with prompt_state 'ego'" in \
        capsys.readouterr().err
    assert training_prompt_state(None, None, out / "checkpoint-5") == ("ego", 4)
    assert training_prompt_state(None, None, init=folder) == ("agents", 3)
    assert training_prompt_state("none", None, init=folder) == ("none", 3)
    assert training_prompt_state(None, None) == ("none", 4)
    # the pipeline: a run whose agent.prompt_state differs from the folder it loads is refused, naming both
    from types import SimpleNamespace

    from experiments.agents import _check_prompt_state

    _check_prompt_state(folder, SimpleNamespace(prompt_state="agents", prompt_agents=3))
    with pytest.raises(ValueError, match=r"agent.prompt_state / agent.prompt_agents: .* prompt_state 'agents', got "
                                         r"'none'"):
        _check_prompt_state(folder, SimpleNamespace(prompt_state="none", prompt_agents=4))


def test_grpo_refuses_an_env_that_states_another_prompt(tiny_policy, tmp_path):
    from gymnasium import spaces

    from agents.rl.grpo.vla_policy import VLAGroupPolicy, observed_prompt_state
    from envs.observation import ObservationConfig
    from envs.render import BEVConfig
    from envs.spaces import observation_space

    tiny_policy.prompt_state = ("agents", 3)
    tiny_policy.save_pretrained(tmp_path / "p")
    bev = BEVConfig(height=32, width=32, meters_per_pixel=2.0, antialias=False)
    action = spaces.Box(-100.0, 100.0, (8, 3), dtype=np.float32)
    stated = observation_space(ObservationConfig(bev=bev, prompt_state="agents", prompt_agents=3))
    assert observed_prompt_state(stated) == ("agents", 3)
    VLAGroupPolicy(stated, action, lambda _: 1e-4, path=str(tmp_path / "p"))
    for config in (ObservationConfig(bev=bev), ObservationConfig(bev=bev, prompt_state="agents", prompt_agents=4)):
        with pytest.raises(ValueError, match="records prompt_state 'agents'"):
            VLAGroupPolicy(observation_space(config), action, lambda _: 1e-4, path=str(tmp_path / "p"))

"""``python -m experiments.reevaluate``: a finished run's trained rows on another bank without retraining (the
source's SFT / RL folders are the ones evaluated), the overrides checked against the run's configuration, and the
training-bank diagnostic labelled as such. A tiny MLP run (seconds)."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_module

from experiments.reevaluate import RECORD, differences, main
from experiments.run import run
from tests.test_pipeline import TINY

RUN = [*(o for o in TINY if not o.startswith("agent.")), "agent=mlp", "agent.bev=none", "algo.methods=[sft_negative,anchor_grpo]", "evaluate.planners=[]",
       "tensorboard=false"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    src = tmp_path_factory.mktemp("run")
    with initialize_config_module(config_module="experiments.conf", version_base=None):
        cfg = compose(config_name="config", overrides=[*RUN, f"out_dir={src}"])
    run(cfg, src)
    return src


def _rows(folder):
    return {r["method"]: r for r in json.loads((folder / "results.json").read_text())["rows"]}


def test_a_second_held_out_bank_reuses_the_trained_stages(finished, tmp_path):
    state = json.loads((finished / "state.json").read_text())
    out = main(["--from", str(finished), *RUN, f"out_dir={tmp_path / 'new'}", "env.eval_seed=4321",
                "env.eval_num_scenes=3"])
    rows = _rows(out)
    assert set(rows) == {"sft_negative", "anchor_grpo"}
    record = json.loads((out / RECORD).read_text())
    assert record["source"] == str(finished.resolve()) and not record["training_bank"]
    assert record["stages"]["grpo"]["anchor_grpo"] == str(finished / state["stages"]["grpo"]["outputs"]["anchor_grpo"]["path"])
    new_state = json.loads((out / "state.json").read_text())
    assert set(new_state["stages"]) == {"collect", "mine"}  # nothing was trained in the new folder
    assert not (out / "rl").exists() and not (out / "sft").exists()
    scenes = json.loads((out / "scenes.json").read_text())
    assert len(scenes["eval"]) == 3 and all("s4321-" in s["scene_id"] for s in scenes["eval"])
    assert "never trained on" in json.loads((out / "results.json").read_text())["title"]
    # the source's own held-out scenes through the tool give the source's table (the same trained rows)
    same = main(["--from", str(finished), *RUN, f"out_dir={tmp_path / 'same'}"])
    for method, row in _rows(finished).items():
        for key in ("pdms", "collision_rate", "route_completion", "driving_score"):
            assert _rows(same)[method][key] == pytest.approx(row[key], abs=1e-12), (method, key)


def test_training_bank_and_mismatched_overrides(finished, tmp_path):
    out = main(["--from", str(finished), "--training-bank", *RUN, f"out_dir={tmp_path / 'train'}"])
    scenes_src = json.loads((finished / "scenes.json").read_text())
    scenes = json.loads((out / "scenes.json").read_text())
    assert scenes["eval"] == scenes_src["train"]  # the very scenes the run trained on
    assert "TRAINING seed" in json.loads((out / "results.json").read_text())["title"]
    with pytest.raises(SystemExit, match=r"differing: .*\bseed: run 0, given 1"):
        main(["--from", str(finished), *RUN, "seed=1", f"out_dir={tmp_path / 'x'}"])
    with pytest.raises(SystemExit, match="is the source run"):
        main(["--from", str(finished), *RUN, f"out_dir={finished}"])
    with pytest.raises(SystemExit, match="stage 'mine' is not done"):
        main(["--from", str(tmp_path), *RUN, f"out_dir={tmp_path / 'y'}"])


def test_differences_skip_the_free_keys_and_list_new_ones():
    given = {"env": {"eval_seed": 5, "seed": 0, "new_knob": 1}, "evaluate": {"decisions": "sampled"}, "seed": 2}
    source = {"env": {"eval_seed": 4, "seed": 0}, "evaluate": {}, "seed": 1}
    assert differences(given, source) == (["seed: run 1, given 2"], ["env.new_knob"])


def test_behaviour_cloning_weights_of_the_other_vector_scale_are_refused_by_name(finished, tmp_path):
    """``agent.normalize_vectors`` became the MLP's default on 2026-12-07: BC weights of one setting loaded into a
    model of the other fail with the option named (not a state-dict key error), so older runs are restated."""
    from experiments.agents import _mlp_rl_model
    from experiments.pipeline import Context
    from experiments.run import typed_config

    state = json.loads((finished / "state.json").read_text())
    outputs = {stage: {k: (str(finished / v["path"]) if isinstance(v, dict) and "path" in v else v)
                       for k, v in entry["outputs"].items()}
               for stage, entry in state["stages"].items()}
    weights = outputs["sft"]["negative"]
    with initialize_config_module(config_module="experiments.conf", version_base=None):
        default = typed_config(compose(config_name="config", overrides=[*RUN, f"out_dir={tmp_path}"]))
        raw = typed_config(compose(config_name="config", overrides=[*RUN, f"out_dir={tmp_path}",
                                                                     "agent.normalize_vectors=false"]))
    assert default.agent.normalize_vectors  # the run was trained with the default: scaled vectors
    model = _mlp_rl_model(Context(tmp_path, default, outputs=outputs), anchors=False, start=weights)
    assert type(model.policy.features_extractor).__name__ == "BoundedCombinedExtractor"
    with pytest.raises(ValueError, match="normalize_vectors=true.*restate agent.normalize_vectors=true"):
        _mlp_rl_model(Context(tmp_path, raw, outputs=outputs), anchors=False, start=weights)

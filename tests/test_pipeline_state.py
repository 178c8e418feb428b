"""The pipeline's stage registry and run directory: selection checks, outputs, resume after a kill, reruns on a
changed configuration."""

from __future__ import annotations

import json

import pytest

from experiments.pipeline import STATE_FILE, PipelineError, Stage, load_state, plan, run_stages


def _registry(calls: list[str], fail_at: str | None = None) -> dict[str, Stage]:
    def make(name: str):
        def run(ctx):
            calls.append(name)
            if name == fail_at:
                raise KeyboardInterrupt(f"killed in {name}")
            path = ctx.path(f"{name}.txt")
            upstream = {k: v["value"] for k, v in ctx.outputs.items()}
            path.write_text(json.dumps(upstream))
            return {"file": path, "value": len(upstream) + ctx.cfg["knob"].get(name, 0)}
        return run

    return {"collect": Stage("collect", make("collect"), (), ("knob.collect",)),
            "mine": Stage("mine", make("mine"), ("collect",), ("knob.mine",)),
            "train": Stage("train", make("train"), ("mine",), ("knob.train",))}


def test_resume_after_a_kill_skips_finished_stages(tmp_path):
    cfg = {"knob": {}}
    calls: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_stages(["collect", "mine", "train"], tmp_path, cfg, registry=_registry(calls, fail_at="train"),
                   log=lambda _: None)
    assert calls == ["collect", "mine", "train"]
    state = load_state(tmp_path)
    assert state["stages"]["mine"]["status"] == "done" and state["stages"]["train"]["status"] == "running"
    calls.clear()
    ctx = run_stages(["collect", "mine", "train"], tmp_path, cfg, registry=_registry(calls), log=lambda _: None)
    assert calls == ["train"]  # the rerun does only what was not finished
    assert ctx.outputs["train"]["value"] == 2 and ctx.outputs["collect"]["file"] == tmp_path / "collect.txt"


def test_a_changed_config_reruns_the_stage_and_its_readers(tmp_path):
    calls: list[str] = []
    run_stages(["collect", "mine", "train"], tmp_path, {"knob": {}}, registry=_registry(calls), log=lambda _: None)
    calls.clear()
    run_stages(["collect", "mine", "train"], tmp_path, {"knob": {"mine": 5}}, registry=_registry(calls),
               log=lambda _: None)
    assert calls == ["mine", "train"]
    calls.clear()
    (tmp_path / "train.txt").unlink()  # an output that disappeared: the stage is not done
    run_stages(["train"], tmp_path, {"knob": {"mine": 5}}, registry=_registry(calls), log=lambda _: None)
    assert calls == ["train"]


def test_selection_errors_name_the_stage_and_its_missing_input(tmp_path):
    with pytest.raises(PipelineError, match=r"unknown \['sft'\]"):
        plan(["sft"], tmp_path, {"knob": {}}, _registry([]))
    with pytest.raises(PipelineError, match="stage 'train' reads the outputs of 'mine', which is not selected"):
        plan(["train"], tmp_path, {"knob": {}}, _registry([]))
    (tmp_path / STATE_FILE).write_text("{not json")
    with pytest.raises(PipelineError, match="cannot be read"):
        plan(["collect"], tmp_path, {"knob": {}}, _registry([]))

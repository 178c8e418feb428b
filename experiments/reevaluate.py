"""Evaluate the trained rows of a finished run on another scene bank, without retraining.

``python -m experiments.reevaluate --from RUN_DIR [the run's own overrides] out_dir=NEW env.eval_seed=S
[env.eval_num_scenes=N] [evaluate.*=...]``

The run's SFT and RL stages are used as they are (their folders in ``RUN_DIR``); in ``NEW`` the stages ``collect``
and ``mine`` run for the new held-out bank (the training pairs are mined again: the trivial label predictors are
fitted on them) and then ``eval`` (the results table, ``results.*``, ``per_scene.jsonl``: ``experiments.compare``
reads ``NEW`` as any run folder; ``--b-runs`` pairs it with the source runs when the scenes are the same).
``NEW/reevaluated_from.json`` records the source folders. What serves "report what holds on a second held-out seed"
for runs that took an hour to train.

The overrides must restate the source run's configuration: the tool composes the configuration from them (as
``experiments.run`` does) and stops, naming every key, where it differs from the source's ``results.json`` on
anything but the held-out bank (:data:`FREE_KEYS`), ``evaluate.*`` and the run's bookkeeping (``out_dir``,
``stages``, ``progress``, ``tensorboard``). Keys the source's configuration does not hold (added to the framework
since it ran) are listed, not compared.

``--training-bank`` evaluates on the scenes the run trained on instead (``env.eval_seed`` / ``eval_num_scenes`` /
``eval_road_families`` set to the training bank's): a diagnostic of fitting against generalising; its table says
"TRAINING scenes, not held out" (:func:`experiments.builders.sources`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

FREE_KEYS = ("env.eval_seed", "env.eval_num_scenes", "env.eval_road_families", "env.eval_split",
             "env.eval_num_episodes", "evaluate", "out_dir", "stages", "progress", "tensorboard")
"""Dotted keys (and everything under them) that may differ from the source run's configuration."""

RECORD = "reevaluated_from.json"
"""The record written into the new folder."""


def differences(given: Mapping[str, Any], source: Mapping[str, Any], prefix: str = "") -> tuple[list[str], list[str]]:
    """``(differing, not_in_source)`` dotted keys of two plain configurations, skipping :data:`FREE_KEYS`."""
    differing: list[str] = []
    missing: list[str] = []
    for key, value in given.items():
        path = f"{prefix}{key}"
        if any(path == free or path.startswith(free + ".") for free in FREE_KEYS):
            continue
        if key not in source:
            missing.append(path)
        elif isinstance(value, Mapping) and isinstance(source[key], Mapping):
            d, m = differences(value, source[key], path + ".")
            differing += d
            missing += m
        elif json.dumps(value, sort_keys=True, default=str) != json.dumps(source[key], sort_keys=True, default=str):
            differing.append(f"{path}: run {source[key]!r}, given {value!r}")
    return differing, missing


def _source_state(src: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(state, saved config)`` of a finished run; ``SystemExit`` naming what is missing."""
    from experiments.pipeline import PipelineError, load_state

    try:
        state = load_state(src)
    except PipelineError as exc:
        raise SystemExit(str(exc)) from None
    stages = state.get("stages", {})
    for name in ("mine", "sft", "grpo"):
        if stages.get(name, {}).get("status") != "done":
            raise SystemExit(f"--from {src}: stage {name!r} is not done there (state.json); finish the run first")
    results = src / "results.json"
    if not results.is_file():
        raise SystemExit(f"--from {src}: no results.json (the run's configuration is read from it)")
    return state, json.loads(results.read_text())["config"]


def restated_config(src: Path, saved: Mapping[str, Any], overrides: Sequence[str], check_banks: bool = True) -> Any:
    """The typed run configuration composed from ``overrides`` (as ``experiments.run`` does: plugins imported, the
    banks checked unless ``check_banks`` is False), which must restate the finished run ``src`` whose saved
    configuration is ``saved``: ``SystemExit`` naming every key that differs (:data:`FREE_KEYS` aside); keys the
    run's configuration does not hold are printed, not compared."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from experiments.pipeline import plain
    from experiments.run import import_plugins, typed_config, validate

    with initialize_config_module(config_module="experiments.conf", version_base=None):
        cfg = compose(config_name="config", overrides=list(overrides))
    import_plugins(cfg.get("imports") or [])
    if check_banks:
        validate(OmegaConf.to_container(cfg, resolve=True))
    typed = typed_config(cfg)
    differing, missing = differences(plain(typed), saved)
    if differing:
        raise SystemExit(f"the overrides do not restate the run {src} (its results.json), so its trained stages "
                         "would not be the ones this configuration names; differing: " + "; ".join(differing))
    if missing:
        print(f"not in the source run's configuration (added to the framework since; not compared): {missing}")
    return typed


def main(argv: Sequence[str] | None = None) -> Path:
    """Command-line entry point (module docstring); returns the new folder."""
    from experiments.pipeline import PipelineError, _absolute, plain, run_stages
    from experiments.stages import evaluate

    p = argparse.ArgumentParser(prog="python -m experiments.reevaluate", description=__doc__.splitlines()[0])
    p.add_argument("--from", dest="source", required=True, help="the finished run folder")
    p.add_argument("--training-bank", action="store_true",
                   help="evaluate on the run's training scenes (a diagnostic; the table says so)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides: the run's own, out_dir=NEW and the new held-out bank")
    args = p.parse_args(argv)
    src = Path(args.source)
    state, saved = _source_state(src)
    overrides = list(args.overrides)
    if args.training_bank:
        env = saved["env"]
        if env.get("name") != "bank":
            raise SystemExit("--training-bank: only for env.name=bank runs")
        families = env.get("road_families")
        overrides += [f"env.eval_seed={env['seed']}", f"env.eval_num_scenes={env['num_scenes']}",
                      "env.eval_road_families=" + ("null" if families is None else
                                                   "[" + ",".join(families) + "]")]
    typed = restated_config(src, saved, overrides, check_banks=not args.training_bank)
    if not typed.out_dir:
        raise SystemExit("out_dir: give the new folder (out_dir=...)")
    out = Path(typed.out_dir)
    if out.resolve() == src.resolve():
        raise SystemExit(f"out_dir: {out} is the source run; give a new folder")
    out.mkdir(parents=True, exist_ok=True)
    try:
        ctx = run_stages(["collect", "mine"], out, typed)
    except PipelineError as exc:
        raise SystemExit(str(exc)) from None
    for name in ("sft", "grpo"):
        ctx.outputs[name] = _absolute(src, state["stages"][name].get("outputs", {}))
    print(f"== eval: the trained rows of {src} on {'its training scenes' if args.training_bank else 'the new bank'}")
    evaluate(ctx)
    from envs.atomic import atomic_write_text

    atomic_write_text(out / RECORD, json.dumps({
        "source": str(src.resolve()), "training_bank": bool(args.training_bank),
        "stages": {name: plain(ctx.outputs[name]) for name in ("sft", "grpo")},
        "overrides": overrides}, indent=2, default=str))
    print(f"outputs in {out} (the source's trained stages: {out / RECORD})")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])

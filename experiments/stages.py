"""The pipeline's stages: ``collect -> mine -> sft -> grpo -> eval`` (registered in :mod:`experiments.pipeline`).

Each stage reads the resolved configuration (:mod:`experiments.config`) and earlier stages' outputs from the run
folder, and writes its own there:

* ``collect``: the training and held-out scene sources (bank seeds / DeepAccident splits / CARLA recordings), a
  summary and BEV renders (``render/``), ``scenes.json`` (how to re-create every scene: origins);
* ``mine``: anchor pairs of the training scenes (``pairs_train.parquet``) and of the held-out scenes
  (``pairs_eval.parquet``, for language / risk accuracy), the mining table and the label baselines;
* ``sft``: the agent's SFT (:attr:`experiments.registry.Agent.train_sft`) on every data view a selected method
  needs (:attr:`~experiments.registry.Method.sft_views`). Agent ``vla``: the rendered SFT samples (``sft/cache``),
  the action codebook, positive-only and negative-enhanced SFT (``sft/<view>/final``; the Trainer checkpoints in
  ``sft/<view>`` let an interrupted stage resume); agent ``mlp``: behaviour cloning of the Gaussian policy in the same
  two views (``sft/<view>.pt``);
* ``grpo``: every selected method with a training function (:attr:`~experiments.registry.Method.train`): SB3 PPO
  (from scratch), vanilla GRPO and anchor-GRPO (both from the negative-enhanced SFT policy, its KL reference) for
  ``train.rl_budget`` env steps each (``rl/<method>.zip``, or a policy folder for the VLA);
* ``eval``: every selected method and the planners on the held-out scenes, each loaded by its registry entry:
  open-loop PDMS (NAVSIM), closed-loop collision rate, route completion, driving score, language and risk accuracy
  with the trivial baselines as rows (``results.md`` / ``results.csv`` / ``results.json``, :mod:`experiments.results`)
  and every row's per-scene / per-decision values (``per_scene.jsonl``, :mod:`experiments.per_scene`; paired
  comparisons: :mod:`experiments.compare`).

TensorBoard: everything under ``<run>/tb`` (SFT under ``<run>/sft/<mode>/runs``): ``tensorboard --logdir <run>``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from experiments.pipeline import Context, Stage, register_stage
from experiments.builders import sources
from experiments.registry import get_agent, get_method


def summarize_scenes(scenes: Any) -> str:
    """A short text summary: scenes per type, accident share, agents, duration, sources."""
    types: Counter = Counter()
    accidents: Counter = Counter()
    kinds: Counter = Counter()
    agents, durations = [], []
    for i in range(len(scenes)):
        s = scenes[i]
        types[s.meta.scenario_type] += 1
        accidents[s.meta.scenario_type] += int(s.meta.is_accident)
        kinds[s.meta.source] += 1
        agents.append(s.num_agents)
        durations.append(s.duration)
    lines = [f"{len(scenes)} scenes (sources: {dict(kinds)}), {sum(accidents.values())} with a logged ego collision; "
             f"agents per scene {np.mean(agents):.1f} (min {min(agents)}, max {max(agents)}); "
             f"{np.mean(durations):.1f} s per log"]
    for name in sorted(types):
        lines.append(f"  {name:<26} {types[name]:>4} scenes, {accidents[name]:>4} accidents")
    return "\n".join(lines)


def _threads(ctx: Context) -> None:
    """Torch threads and seed of a learning stage; quiet per-file progress bars of ``transformers`` (the stages
    load and save small models many times)."""
    import torch
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(max(1, int(ctx.cfg.train.threads)))
    torch.manual_seed(int(ctx.cfg.seed))
    hf_logging.disable_progress_bar()


def _writer(ctx: Context, name: str):
    """A TensorBoard writer under ``<run>/tb/<name>`` (None with ``tensorboard=false``)."""
    if not ctx.cfg.tensorboard:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(ctx.path("tb", name, ".keep").parent))


# ------------------------------------------------------------------------------------------------------ collect
def collect(ctx: Context) -> dict[str, Any]:
    """Scene sources, summary, renders and the scene manifest."""
    train, held, text = sources(ctx)
    print(text)
    print(f"training scenes: {summarize_scenes(train)}")
    outputs: dict[str, Any] = {"train_scenes": len(train), "eval_scenes": len(held), "description": text}
    render = ctx.cfg.render
    if render.enabled:
        outputs["contact_sheet"] = render_scenes(train, render, ctx.path("render", "contact_sheet.png"))
        print(f"BEV renders: {outputs['contact_sheet']}")
    manifest = {"description": text,
                "train": [train.origin(i).to_dict() for i in range(len(train))],
                "eval": [held.origin(i).to_dict() for i in range(len(held))]}
    path = ctx.path("scenes.json")
    _write_text(path, json.dumps(manifest, indent=1))
    outputs["manifest"] = path
    return outputs


def render_scenes(scenes: Any, render: Mapping[str, Any], sheet: Path) -> Path:
    """BEV PNGs 2 s before contact / mid-log for the first scenes, and a contact sheet; returns the sheet path."""
    from envs.render import BEVConfig, BEVRenderer, caption, contact_sheet, logged_future, write_png

    renderer = BEVRenderer(BEVConfig(height=int(render.size), width=int(render.size),
                                     meters_per_pixel=float(render.meters_per_pixel),
                                     colliding_agent_color=(255, 40, 40)))
    tiles = []
    for i in range(min(int(render.num_scenes), len(scenes))):
        scene = scenes[i]
        cf = scene.meta.collision_frame
        t = max(0, cf - int(round(2.0 / scene.dt))) if cf is not None else scene.num_frames // 2
        future = logged_future(scene, t)
        image = renderer.render(scene, t, future if len(future) else None, [(255, 235, 60)] if len(future) else None)
        rel = "" if cf is None else f" ({(t - cf) * scene.dt:+.1f} s to contact)"
        tile = caption(image, [scene.scene_id, f"type={scene.meta.scenario_type}", f"t={t}{rel} {scene.meta.source}"])
        write_png(str(sheet.parent / f"{scene.scene_id.replace('/', '_')}_t{t:03d}.png"), tile)
        tiles.append(tile)
    write_png(str(sheet), contact_sheet(tiles, 3))
    return sheet


# --------------------------------------------------------------------------------------------------------- mine
def mine(ctx: Context) -> dict[str, Any]:
    """Anchor pairs of the training and held-out scenes."""
    from tqdm import tqdm

    from counterfactual.accuracy import baseline_accuracies, format_accuracy_table
    from counterfactual.dataset import collect_provenance, write_anchor_pairs
    from counterfactual.distributed import mine_source, stats_and_pairs
    from counterfactual.miner import MinerConfig

    train, held, _ = sources(ctx)
    backend, workers = str(ctx.cfg.mine.backend), int(ctx.cfg.mine.workers)
    config = MinerConfig(seed=int(ctx.cfg.seed), near_miss_rule=str(ctx.cfg.mine.near_miss_rule))
    config = dataclasses.replace(config, moments=dataclasses.replace(
        config.moments, lead_times=tuple(float(x) for x in ctx.cfg.mine.lead_times)))
    outputs: dict[str, Any] = {}
    mined: dict[str, list] = {}
    for split, scenes in (("train", train), ("eval", held)):
        start = time.perf_counter()
        with tqdm(total=len(scenes), desc=f"mining {split}", unit="scene", disable=not ctx.cfg.progress) as bar:
            stats, pairs = stats_and_pairs(mine_source(scenes, config, backend, workers,
                                                       getattr(ctx.cfg.env, "ray_address", None),
                                                       on_scenes=bar.update))
        elapsed = time.perf_counter() - start
        path = write_anchor_pairs(pairs, ctx.path(f"pairs_{split}.parquet"),
                                  collect_provenance(config, source=getattr(scenes, "description", None)))
        where = f" on {workers} Ray workers" if backend == "ray" else ""
        print(f"{split} scenes: {stats.table()}\n{len(pairs)} pairs in {elapsed:.1f} s{where} -> {path}")
        outputs[f"pairs_{split}"] = path
        outputs[f"num_pairs_{split}"] = len(pairs)
        mined[split] = pairs
    if mined["train"] and mined["eval"]:
        print(format_accuracy_table(baseline_accuracies(mined["train"], mined["eval"]),
                                    "label baselines (fitted on the training pairs, scored on the held-out pairs):"))
    return outputs


# ---------------------------------------------------------------------------------------------------------- sft
def needed_sft_views(methods: Sequence[str]) -> list[str]:
    """SFT data views the selected methods need (their :attr:`~experiments.registry.Method.sft_views`, in order)."""
    views: list[str] = []
    for name in methods:
        views += [v for v in get_method(name).sft_views if v not in views]
    return views


def sft(ctx: Context) -> dict[str, Any]:
    """The agent's SFT (VLA) or behaviour cloning (MLP) on every data view a selected method needs."""
    _threads(ctx)
    views = needed_sft_views(ctx.cfg.algo.methods)
    if not views:
        print("no SFT row selected (algo.methods); nothing to train")
        return {}
    return get_agent(ctx.cfg.agent.name).train_sft(ctx, views)


# --------------------------------------------------------------------------------------------------------- grpo
def grpo(ctx: Context) -> dict[str, Any]:
    """Every selected method with an RL training function (SB3 PPO, vanilla GRPO, anchor-GRPO), same env budget."""
    _threads(ctx)
    outputs: dict[str, Any] = {}
    for name in ctx.cfg.algo.methods:
        method = get_method(name)
        if method.train is not None:
            outputs.update(method.train(ctx))
    return outputs


# --------------------------------------------------------------------------------------------------------- eval
def evaluate(ctx: Context) -> dict[str, Any]:
    """Every selected method and the planners on the held-out scenes; the results table."""
    from experiments.results import evaluate_methods, write_results

    _threads(ctx)
    records: list[dict[str, Any]] = []
    rows = evaluate_methods(ctx, records)
    paths = write_results(ctx, rows, records)
    print(paths["table"].read_text())
    return {k: v for k, v in paths.items()}


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` atomically (temp file + rename)."""
    from envs.atomic import atomic_write_text

    atomic_write_text(path, text)


register_stage(Stage("collect", collect, (), ("env", "render"), "scene sources, summary, BEV renders"))
register_stage(Stage("mine", mine, ("collect",), ("env", "mine", "seed"), "counterfactual anchor pairs"))
register_stage(Stage("sft", sft, ("mine",), ("env", "agent", "algo", "train.sft", "train.bc", "train.expert_frames",
                                             "seed"),
                     "positive-only and negative-enhanced SFT"))
register_stage(Stage("grpo", grpo, ("mine", "sft"), ("env", "agent", "algo", "train", "reward", "seed"),
                     "SB3 PPO, vanilla GRPO and anchor-GRPO"))
register_stage(Stage("eval", evaluate, ("mine", "sft", "grpo"), ("env", "agent", "algo", "reward", "evaluate", "seed"),
                     "held-out evaluation and the results table"))

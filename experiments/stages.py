"""The pipeline's stages: ``collect -> mine -> sft -> grpo -> eval`` (registered in :mod:`experiments.pipeline`).

Each stage reads the resolved configuration (:mod:`experiments.config`) and earlier stages' outputs from the run
folder, and writes its own there:

* ``collect``: the training and held-out scene sources (bank seeds / DeepAccident splits / CARLA recordings), a
  summary and BEV renders (``render/``), ``scenes.json`` (how to re-create every scene: origins);
* ``mine``: anchor pairs of the training scenes (``pairs_train.parquet``) and of the held-out scenes
  (``pairs_eval.parquet``, for language / risk accuracy), the mining table and the label baselines;
* ``sft``: agent ``vla``: the rendered SFT samples (``sft/cache``), the action codebook, positive-only and
  negative-enhanced SFT (``sft/<mode>/final``; the Trainer checkpoints in ``sft/<mode>`` let an interrupted stage
  resume); agent ``mlp``: behaviour cloning of the Gaussian policy in the same two views (``sft/<mode>.pt``);
* ``grpo``: SB3 PPO (from scratch), vanilla GRPO and anchor-GRPO (both from the negative-enhanced SFT policy, its
  KL reference) for ``train.rl_budget`` env steps each (``rl/<method>.zip``);
* ``eval``: every method and the planners on the held-out scenes: open-loop PDMS (NAVSIM), closed-loop collision
  rate, route completion, driving score, language and risk accuracy with the trivial baselines as rows
  (``results.md`` / ``results.csv`` / ``results.json``, :mod:`experiments.results`).

TensorBoard: everything under ``<run>/tb`` (SFT under ``<run>/sft/<mode>/runs``): ``tensorboard --logdir <run>``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from experiments.pipeline import Context, Stage, register_stage
from experiments.builders import RL_METHODS, SFT_MODES, env_config, grpo_model, group_env, sources


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
    from counterfactual.miner import MinerConfig, MiningStats, mine_scene

    train, held, _ = sources(ctx)
    config = MinerConfig(seed=int(ctx.cfg.seed))
    config = dataclasses.replace(config, moments=dataclasses.replace(
        config.moments, lead_times=tuple(float(x) for x in ctx.cfg.mine.lead_times)))
    outputs: dict[str, Any] = {}
    mined: dict[str, list] = {}
    for split, scenes in (("train", train), ("eval", held)):
        stats, pairs = MiningStats(), []
        start = time.perf_counter()
        for i in tqdm(range(len(scenes)), desc=f"mining {split}", unit="scene", disable=not ctx.cfg.progress):
            result = mine_scene(scenes[i], config, scenes.origin(i))
            stats.add(result, scenes[i].meta.is_accident)
            pairs.extend(result.pairs)
        elapsed = time.perf_counter() - start
        path = write_anchor_pairs(pairs, ctx.path(f"pairs_{split}.parquet"),
                                  collect_provenance(config, source=getattr(scenes, "description", None)))
        print(f"{split} scenes: {stats.table()}\n{len(pairs)} pairs in {elapsed:.1f} s -> {path}")
        outputs[f"pairs_{split}"] = path
        outputs[f"num_pairs_{split}"] = len(pairs)
        mined[split] = pairs
    if mined["train"] and mined["eval"]:
        print(format_accuracy_table(baseline_accuracies(mined["train"], mined["eval"]),
                                    "label baselines (fitted on the training pairs, scored on the held-out pairs):"))
    return outputs


# ---------------------------------------------------------------------------------------------------------- sft
def _needed_sft_modes(ctx: Context) -> list[str]:
    """SFT views to train: the selected SFT rows, plus the negative-enhanced start of any GRPO row."""
    methods = list(ctx.cfg.algo.methods)
    modes = [SFT_MODES[m] for m in methods if m in SFT_MODES]
    if any(m in ("grpo", "anchor_grpo") for m in methods) and "negative" not in modes:
        modes.append("negative")
    return modes


def sft(ctx: Context) -> dict[str, Any]:
    """Positive-only and negative-enhanced SFT (VLA) or behaviour cloning (MLP)."""
    _threads(ctx)
    modes = _needed_sft_modes(ctx)
    if not modes:
        print("no SFT row selected (algo.methods); nothing to train")
        return {}
    if ctx.cfg.agent.name == "mlp":
        return _bc(ctx, modes)
    from agents.sft.data import SampleConfig, SFTDataset, load_or_build_samples
    from agents.sft.trainer import latest_checkpoint, train_sft
    from agents.vla.codebook import CodebookConfig, TrajectoryCodebook, fit_on_logs_and_positives
    from agents.vla.model import VLAConfig
    from agents.vla.policy import VLAPolicy
    from counterfactual.dataset import load_anchor_pairs

    cfg, agent, train_cfg = ctx.cfg, ctx.cfg.agent, ctx.cfg.train
    progress = bool(cfg.progress)
    train, _, _ = sources(ctx)
    pairs = load_anchor_pairs(ctx.outputs["mine"]["pairs_train"])
    cache = ctx.path("sft", "cache", ".keep").parent
    table = load_or_build_samples(train, pairs, cache, SampleConfig(
        expert_frames_per_scene=int(train_cfg.expert_frames), observation=env_config(ctx).observation),
        progress=progress)
    book_path = ctx.path("sft", "codebook.npz")
    if book_path.is_file():
        codebook = TrajectoryCodebook.load(book_path)
    else:
        codebook = fit_on_logs_and_positives(
            pairs, CodebookConfig(size=int(agent.codebook_size), mode=agent.codebook_mode),
            int(agent.codebook_scenes), int(getattr(cfg.env, "seed", 0) or 0))
        codebook.save(book_path)
    outputs: dict[str, Any] = {"codebook": book_path, "samples": len(table)}
    model_config = _instantiate(agent.model, seed=int(cfg.seed))
    for mode in modes:
        run = ctx.path("sft", mode, ".keep").parent
        name = f"vla_sft_{mode}"
        last = latest_checkpoint(run)
        if last is not None:
            policy = VLAPolicy.from_pretrained(last, name=name)
        elif agent.init:
            policy = VLAPolicy.from_pretrained(agent.init, codebook=codebook, lora=bool(agent.lora), name=name)
        else:
            policy = VLAPolicy.build(codebook, model_config if isinstance(model_config, VLAConfig) else VLAConfig(),
                                     name=name)
        result = train_sft(policy, SFTDataset(table, mode), run, train_cfg.sft,
                           resume=last if last is not None else False)
        print(f"SFT {mode}: loss {result.losses[0][1]:.3f} -> {result.losses[-1][1]:.3f} in {result.train_seconds:.0f} s"
              f" -> {result.final_dir}")
        outputs[mode] = result.final_dir
        outputs[f"{mode}_seconds"] = result.train_seconds
    return outputs


def _instantiate(node: Mapping[str, Any], **overrides: Any) -> Any:
    """``hydra.utils.instantiate`` of a ``_target_`` node with overrides for fields it has."""
    from hydra.utils import get_class, instantiate

    node = dict(node)
    cls = get_class(node["_target_"])
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    node.update({k: v for k, v in overrides.items() if k in fields and k not in node})
    return instantiate(node)


def _bc(ctx: Context, modes: list[str]) -> dict[str, Any]:
    """The MLP agent's SFT analogue: behaviour cloning of the Gaussian trajectory policy in both views."""
    import torch

    from agents.rl.bc import build_bc_data, train_bc
    from counterfactual.dataset import load_anchor_pairs

    train, _, _ = sources(ctx)
    outputs: dict[str, Any] = {}
    for mode in modes:
        start = time.perf_counter()
        model = grpo_model(ctx, anchors=False, start=None)
        data = build_bc_data([train[i] for i in range(len(train))],
                             load_anchor_pairs(ctx.outputs["mine"]["pairs_train"]), env_config(ctx).observation,
                             model.policy.max_speed, model.policy.max_yaw_rate)
        train_bc(model.policy, data, mode, ctx.cfg.train.bc, seed=int(ctx.cfg.seed))
        path = ctx.path("sft", f"{mode}.pt")
        torch.save(model.policy.state_dict(), path)
        outputs[mode] = path
        outputs[f"{mode}_seconds"] = time.perf_counter() - start
        print(f"BC {mode}: {len(data)} samples in {outputs[f'{mode}_seconds']:.0f} s -> {path}")
    return outputs


# --------------------------------------------------------------------------------------------------------- grpo
def grpo(ctx: Context) -> dict[str, Any]:
    """SB3 PPO, vanilla GRPO and anchor-GRPO for the same env budget."""
    _threads(ctx)
    methods = [m for m in ctx.cfg.algo.methods if m in RL_METHODS]
    budget = int(ctx.cfg.train.rl_budget)
    outputs: dict[str, Any] = {}
    for method in methods:
        path = ctx.path("rl", f"{method}.zip")
        start = time.perf_counter()
        if method == "ppo":
            from agents.rl.ppo import make_ppo

            model = make_ppo(group_env(ctx, normalized=True), ctx.cfg.train.ppo, seed=int(ctx.cfg.seed),
                             tensorboard_log=str(ctx.path("tb", "rl", ".keep").parent) if ctx.cfg.tensorboard else None)
        else:
            sft_out = ctx.outputs.get("sft", {})
            if "negative" not in sft_out:
                raise SystemExit(f"{method}: needs the negative-enhanced SFT policy (stage sft with algo.methods "
                                 "including sft_negative or a GRPO row)")
            model = grpo_model(ctx, anchors=method == "anchor_grpo", start=sft_out["negative"])
        model.learn(budget, progress_bar=bool(ctx.cfg.progress), tb_log_name=method)
        if method != "ppo" and ctx.cfg.agent.name == "vla":  # the trained VLA as a policy folder
            path = model.policy.vla.save_pretrained(ctx.path("rl", method, ".keep").parent)
        else:
            model.save(path)
        outputs[method] = path
        outputs[f"{method}_seconds"] = time.perf_counter() - start
        outputs[f"{method}_anchor_states"] = int(getattr(model, "anchor_states_seen", 0))
        print(f"{method}: {budget} env steps in {outputs[f'{method}_seconds']:.0f} s -> {path}")
        model.get_env().close()
    return outputs


# --------------------------------------------------------------------------------------------------------- eval
def evaluate(ctx: Context) -> dict[str, Any]:
    """Every selected method and the planners on the held-out scenes; the results table."""
    from experiments.results import evaluate_methods, write_results

    _threads(ctx)
    rows = evaluate_methods(ctx)
    paths = write_results(ctx, rows)
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

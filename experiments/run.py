"""The main job: ``python -m experiments.run`` (Hydra; no arguments = the embedded default configuration).

Stages (each switchable, see :mod:`experiments.config`):

1. **scenes**: the ``env`` source (default: the built-in *synthetic* accident scenario bank) and a summary;
2. **render**: BEV PNGs and a contact sheet of a few scenes;
3. **mine**: counterfactual anchor pairs (negative = the logged trajectory into the risk, positive = a scorer-verified
   safe counterfactual, structured safety label) written to ``pairs.parquet`` with the mining summary;
4. **evaluate**: the baselines in the replay environment (open and closed loop) and the paper-style results table
   (PDMS, collision rate, language accuracy, risk accuracy), also written to ``results.md`` / ``results.json`` and
   TensorBoard (``<out>/tb``).

The learning stages (negative-enhanced SFT, anchor-GRPO) extend this pipeline in later releases.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from experiments.config import register_configs

register_configs()


def build_source(cfg: DictConfig, out: Path | None = None):
    """The :class:`envs.sources.SceneSource` of ``cfg.env`` (any registered source; its fields are the source's
    options); errors name the offending field. ``env=carla`` first checks the servers and records episodes into
    ``out`` (:mod:`experiments.carla`)."""
    from envs.sources import SourceError, open_source

    env = cfg.env
    if env.name == "carla":
        from experiments.carla import carla_source

        return carla_source(cfg, out)
    if env.name == "deepaccident" and not env.root:
        raise SystemExit("env.root: set it to your DeepAccident folder, e.g. env=deepaccident env.root=/data/DA")
    options: dict[str, Any] = {"bank": {"num_scenes": int(env.num_scenes), "seed": int(env.seed),
                                        "scenario_types": list(env.scenario_types) if env.scenario_types else None},
                               "deepaccident": {"root": env.root, "split": env.split, "strict": False}}.get(env.name, {})
    try:
        return open_source(env.name, **options)
    except SourceError as exc:
        raise SystemExit(f"env: {exc}") from None


def summarize_scenes(scenes) -> str:
    """A short text summary: scenes per type, accident share, agents, duration, sources."""
    types: Counter = Counter()
    accidents: Counter = Counter()
    sources: Counter = Counter()
    agents, durations = [], []
    for i in range(len(scenes)):
        s = scenes[i]
        types[s.meta.scenario_type] += 1
        accidents[s.meta.scenario_type] += int(s.meta.is_accident)
        sources[s.meta.source] += 1
        agents.append(s.num_agents)
        durations.append(s.duration)
    lines = [f"{len(scenes)} scenes (sources: {dict(sources)}), {sum(accidents.values())} with a logged ego "
             f"collision; agents per scene {np.mean(agents):.1f} (min {min(agents)}, max {max(agents)}); "
             f"{np.mean(durations):.1f} s per log"]
    for name in sorted(types):
        lines.append(f"  {name:<26} {types[name]:>4} scenes, {accidents[name]:>4} accidents")
    return "\n".join(lines)


def render_stage(scenes, cfg: DictConfig, out: Path) -> Path:
    """BEV PNGs 2 s before contact / mid-log for the first scenes, and a contact sheet; returns the sheet path."""
    from envs.render import BEVConfig, BEVRenderer, caption, contact_sheet, logged_future, write_png

    rc = cfg.render
    renderer = BEVRenderer(BEVConfig(height=rc.size, width=rc.size, meters_per_pixel=rc.meters_per_pixel,
                                     colliding_agent_color=(255, 40, 40)))
    folder = out / "render"
    folder.mkdir(parents=True, exist_ok=True)
    tiles = []
    for i in range(min(int(rc.num_scenes), len(scenes))):
        scene = scenes[i]
        cf = scene.meta.collision_frame
        t = max(0, cf - int(round(2.0 / scene.dt))) if cf is not None else scene.num_frames // 2
        future = logged_future(scene, t)
        image = renderer.render(scene, t, future if len(future) else None, [(255, 235, 60)] if len(future) else None)
        rel = "" if cf is None else f" ({(t - cf) * scene.dt:+.1f} s to contact)"
        tile = caption(image, [scene.scene_id, f"type={scene.meta.scenario_type}", f"t={t}{rel} {scene.meta.source}"])
        write_png(str(folder / f"{scene.scene_id.replace('/', '_')}_t{t:03d}.png"), tile)
        tiles.append(tile)
    sheet = folder / "contact_sheet.png"
    write_png(str(sheet), contact_sheet(tiles, 3))
    return sheet


def mine_stage(scenes, cfg: DictConfig, out: Path) -> tuple[str, Path, int]:
    """Mine anchor pairs from every scene; returns (summary table, parquet path, number of pairs)."""
    from tqdm import tqdm

    from counterfactual.accuracy import baseline_accuracies, format_accuracy_table, split_by_scene
    from counterfactual.dataset import collect_provenance, write_anchor_pairs
    from counterfactual.miner import MinerConfig, MiningStats, mine_scene

    config = MinerConfig(seed=int(cfg.env.get("seed", 0) or 0))
    config = dataclasses.replace(config, moments=dataclasses.replace(
        config.moments, lead_times=tuple(float(x) for x in cfg.mine.lead_times)))
    stats, pairs = MiningStats(), []
    start = time.perf_counter()
    for i in tqdm(range(len(scenes)), desc="mining", unit="scene", disable=not cfg.progress):
        scene = scenes[i]
        mined = mine_scene(scene, config, scenes.origin(i))
        stats.add(mined, scene.meta.is_accident)
        pairs.extend(mined.pairs)
    elapsed = time.perf_counter() - start
    path = write_anchor_pairs(pairs, out / "pairs.parquet", collect_provenance(config, source=getattr(scenes, "description", None)))
    table = stats.table() + f"\n{len(pairs)} pairs in {elapsed:.1f} s ({len(pairs) / max(elapsed, 1e-9):.1f} pairs/s)"
    train, test = split_by_scene(pairs, 0.5, seed=config.seed)
    if train and test:  # what a label-stating policy's language / risk accuracy must beat
        table += "\n" + format_accuracy_table(
            baseline_accuracies(train, test),
            f"label baselines (accuracy on {len(test)} held-out pairs, fitted on {len(train)}, split by scene):")
    return table, path, len(pairs)


def evaluate_stage(scenes, cfg: DictConfig, writer) -> list:
    """Evaluate the configured baselines; returns the list of ``EvalResult``."""
    from agents.baselines import make_baseline
    from envs.replay_env import EnvConfig, ReplayEnv
    from experiments.evaluate import evaluate_closed_loop, evaluate_open_loop

    env_cfg = EnvConfig(bev=None)  # the baselines read the state, not the image: skip rendering
    results = []
    for name in cfg.evaluate.baselines:
        policy = make_baseline(name)
        if cfg.evaluate.open_loop:
            env = ReplayEnv(scenes, mode="open_loop", config=env_cfg)

            def log_curve(i: int, info: dict[str, Any], _name: str = name) -> None:
                if writer is not None:
                    writer.add_scalar(f"open_loop/{_name}/score", info["rewards"]["score"], i)

            results.append(evaluate_open_loop(policy, env, progress=cfg.progress, on_scene=log_curve))
        if cfg.evaluate.closed_loop:
            env = ReplayEnv(scenes, mode="closed_loop", config=env_cfg)
            results.append(evaluate_closed_loop(policy, env, progress=cfg.progress))
    if writer is not None:
        for r in results:
            writer.add_scalar(f"{r.mode}/{r.policy}/mean_score", r.score, 0)
            writer.add_scalar(f"{r.mode}/{r.policy}/collision_rate", r.collision_rate, 0)
    return results


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` atomically (temp file + rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """Run the pipeline stages into ``out``; returns a summary dict (also written to ``results.json``)."""
    out.mkdir(parents=True, exist_ok=True)
    scenes = build_source(cfg, out)
    if len(scenes) == 0:
        raise SystemExit(f"env: the source {cfg.env.name} has no scenes")
    summary: dict[str, Any] = {"config": OmegaConf.to_container(cfg, resolve=True)}
    print(f"== scenes ({cfg.env.name}) ==\n{summarize_scenes(scenes)}")
    writer = None
    if cfg.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"))
    try:
        if cfg.render.enabled:
            sheet = render_stage(scenes, cfg, out)
            print(f"== render ==\nBEV images and contact sheet: {sheet}")
        if cfg.mine.enabled:
            table, path, n = mine_stage(scenes, cfg, out)
            print(f"== counterfactual anchor pairs ==\n{table}\n-> {path}")
            summary["pairs"] = {"path": str(path), "count": n}
        if cfg.evaluate.enabled:
            from experiments.evaluate import results_table

            results = evaluate_stage(scenes, cfg, writer)
            table = results_table(results)
            source = {"bank": "synthetic scenario bank", "carla": "CARLA recordings (replayed)"}.get(
                cfg.env.name, f"DeepAccident ({cfg.env.split})")
            print(f"== results: baselines on the {source} ==\n{table}")
            print("lang/risk acc: n/a = the policy states no safety label (the VLA of the learning stages does); a label-"
                  "stating policy is compared with the label baselines printed with the anchor pairs")
            _write_text(out / "results.md", f"# Results on the {source}\n\n```\n{table}\n```\n")
            summary["results"] = [dataclasses.asdict(r) for r in results]
    finally:
        if writer is not None:
            writer.close()
    _write_text(out / "results.json", json.dumps(summary, indent=2, default=str))
    print(f"outputs in {out}")
    return summary


@hydra.main(version_base=None, config_name="config")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    out = Path(cfg.out_dir) if cfg.out_dir else Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    run(cfg, out)


if __name__ == "__main__":
    sys.exit(main())

"""Compare anchor-GRPO with vanilla GRPO, its SFT starts, SB3 PPO and the planners on held-out bank scenes.

Rows (3 seeds by default; mean +- std over seeds; every learned row sees the same training scenes and pairs):

* ``positive_sft`` / ``negative_sft``: the start policies. ``--policy mlp`` (default): behaviour cloning of the
  Gaussian trajectory policy (:mod:`agents.rl.bc`: positive-only, and the negative-enhanced **MLP analogue**);
  ``--policy vla``: the VLA SFT checkpoints of :mod:`agents.sft` (``--sft-positive`` / ``--sft-negative`` folders);
* ``grpo_vanilla`` / ``grpo_anchor``: GRPO from the ``negative_sft`` policy (its KL reference), without / with
  anchors (the mined training pairs; ``--online-mining`` adds pairs mined from this run's crashes);
* ``ppo``: SB3 PPO from scratch on the same env, reward and normalised actions (:mod:`agents.rl.ppo`);
* ``pdm_closed_like`` (and ``safe_oracle``, a privileged reference, not an upper bound, with oracle knowledge of the
  logged future): planners, deterministic (one evaluation; std 0).

Equal environment budget: GRPO and PPO rows train for ``--budget`` env steps (GRPO also makes ``G + 2`` scorer calls
per step; the SFT rows make none). Evaluation: closed loop, one episode per held-out scene (bank seed
``--eval-seed``, never trained on), deterministic actions; PDMS (NAVSIM EP) and SP-PDMS are per-step means per
episode, collision rate = episodes ending in a collision, route completion and driving score per episode
(:mod:`envs.sim.metrics`). Wall times: training [s] (BC / GRPO / PPO; the GRPO rows exclude their BC start) and
evaluation [s], one CPU thread per worker.

Usage (the small configuration, about 10-15 minutes on 2 cores; the **synthetic** bank)::

    python -m agents.rl.grpo.compare --seeds 0,1,2 --budget 1536 --train-scenes 32 --eval-scenes 24 \\
        --workers 2 --out outputs/grpo_compare

    # the VLA: SFT checkpoints first (agents.sft.train), then
    python -m agents.rl.grpo.compare --policy vla --sft-positive outputs/sft/positive/final \\
        --sft-negative outputs/sft/negative/final --pairs outputs/pairs.parquet --budget 64 --group-size 4

Writes ``<out>/results.md`` (the table), ``<out>/results.json`` (every row of every seed) and TensorBoard runs under
``<out>/tb``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

LEARNED = ("positive_sft", "negative_sft", "grpo_vanilla", "grpo_anchor", "ppo")
PLANNERS = ("pdm_closed_like", "safe_oracle")
COLUMNS = (("pdms", "PDMS"), ("sp_pdms", "SP-PDMS"), ("collision_rate", "collision %"),
           ("route_completion", "RC"), ("driving_score", "DS"), ("train_s", "train [s]"), ("eval_s", "eval [s]"))
PERCENT = {"pdms", "sp_pdms", "collision_rate", "route_completion", "driving_score"}


@dataclass
class CompareConfig:
    """One comparison (every field is a CLI option)."""

    policy: str = "mlp"
    """``"mlp"`` (Gaussian trajectory policy, BC starts) or ``"vla"`` (SFT checkpoints)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds (policy initialisation, sampling, env order)."""
    train_scenes: int = 32
    """Training bank size."""
    train_seed: int = 0
    """Training bank seed."""
    eval_scenes: int = 24
    """Held-out bank size."""
    eval_seed: int = 1000
    """Held-out bank seed (never trained on)."""
    budget: int = 1536
    """Env steps per GRPO / PPO run."""
    n_envs: int = 2
    """Envs per run (DummyVecEnv: the workers already use the cores)."""
    n_steps: int = 64
    """GRPO / PPO rollout length per env."""
    group_size: int = 8
    """GRPO's G."""
    learning_rate: float = 3e-4
    """GRPO learning rate."""
    beta: float = 0.04
    """GRPO KL weight."""
    bc_steps: int = 400
    """MLP behaviour-cloning steps per mode."""
    log_std_init: float = -1.0
    """Initial log-std of the Gaussian policies (GRPO's MLP, PPO; BC leaves it unchanged): std 0.37 in normalised
    units (speed +-3.7 m/s, yaw rate +-0.22 rad/s per interval)."""
    bev: str = "semantic64"
    """MLP observation: ``"semantic64"`` (64 px semantic BEV, 1 m/px, CNN features) or ``"none"`` (state only)."""
    online_mining: bool = False
    """Anchor-GRPO also mines pairs from its own closed-loop crashes."""
    pairs: str | None = None
    """Anchor-pair parquet of the training bank (default: mined and cached in ``out``)."""
    sft_positive: str | None = None
    """VLA: positive-only SFT policy folder."""
    sft_negative: str | None = None
    """VLA: negative-enhanced SFT policy folder."""
    workers: int = 2
    """Parallel processes (one CPU thread each)."""
    out: str = "outputs/grpo_compare"
    """Output folder."""
    methods: tuple[str, ...] = LEARNED + PLANNERS
    """Rows to run."""


def env_config(cfg: CompareConfig):
    """The replay env configuration of the learned policies (and of the evaluation)."""
    from agents.rl.grpo.policies import MLP_LAYERS
    from envs.render import BEVConfig
    from envs.replay_env import EnvConfig

    if cfg.policy == "vla":
        return EnvConfig(text_prompt=True)  # the VLA's default 128 px RGB BEV
    if cfg.bev == "none":
        return EnvConfig(bev=None)
    if cfg.bev != "semantic64":
        raise ValueError(f"--bev: expected 'semantic64' or 'none', got {cfg.bev!r}")
    return EnvConfig(bev=BEVConfig(height=64, width=64, meters_per_pixel=1.0, mode="semantic",
                                   semantic_layers=MLP_LAYERS))


def group_env_config(cfg: CompareConfig, online_mining: bool = False):
    from agents.rl.env import GroupEnvConfig

    return GroupEnvConfig(num_scenes=cfg.train_scenes, seed=cfg.train_seed, env=env_config(cfg),
                          normalized_actions=cfg.policy == "mlp", online_mining=online_mining)


def train_pairs(cfg: CompareConfig) -> str:
    """Path of the training pairs: ``cfg.pairs`` or mined on the training bank and cached in ``out``."""
    from counterfactual.dataset import write_anchor_pairs
    from counterfactual.miner import MinerConfig, mine_scene
    from envs.scenes.sources import open_source

    if cfg.pairs:
        return cfg.pairs
    path = Path(cfg.out) / f"pairs_bank{cfg.train_scenes}_seed{cfg.train_seed}.parquet"
    if not path.is_file():
        bank = open_source("bank", num_scenes=cfg.train_scenes, seed=cfg.train_seed)
        pairs = [p for i in range(len(bank)) for p in mine_scene(bank[i], MinerConfig()).pairs]
        path.parent.mkdir(parents=True, exist_ok=True)
        write_anchor_pairs(pairs, path)
    return str(path)


def evaluate(agent: Any, cfg: CompareConfig) -> dict[str, float]:
    """Closed-loop metrics of a :class:`agents.base.Policy` on the held-out bank."""
    from envs.replay_env import ReplayEnv
    from agents.evaluation import evaluate_closed_loop

    env = ReplayEnv("bank", "closed_loop", env_config(cfg), num_scenes=cfg.eval_scenes, seed=cfg.eval_seed)
    start = time.perf_counter()
    res = evaluate_closed_loop(agent, env, progress=False)
    out = {k: float(res.driving[k]) for k in ("pdms", "sp_pdms", "route_completion", "driving_score")}
    out["collision_rate"] = float(res.collision_rate)
    out["eval_s"] = time.perf_counter() - start
    return out


def _grpo(cfg: CompareConfig, seed: int, anchors: bool, pairs: str, tb: str):
    from agents.rl.grpo import GRPO, GRPOConfig
    from agents.rl.env import make_group_vec_env

    env = make_group_vec_env(group_env_config(cfg, online_mining=anchors and cfg.online_mining), cfg.n_envs,
                             seed=seed)
    gcfg = GRPOConfig(n_steps=cfg.n_steps, batch_size=32, n_epochs=4, group_size=cfg.group_size,
                      learning_rate=cfg.learning_rate, beta=cfg.beta, anchors=anchors, log_images_every=4)
    if cfg.policy == "vla":
        return GRPO("VLAPolicy", env, gcfg, anchor_pairs=pairs, policy_kwargs={"path": cfg.sft_negative},
                    seed=seed, tensorboard_log=tb)
    return GRPO("MultiInputPolicy" if env_config(cfg).bev is not None else "MlpPolicy", env, gcfg,
                anchor_pairs=pairs, seed=seed, tensorboard_log=tb, policy_kwargs=_policy_kwargs(cfg))


def _policy_kwargs(cfg: CompareConfig) -> dict[str, Any]:
    """Gaussian policy kwargs shared by GRPO (MLP) and PPO: log-std, a 64-d CNN feature when there is a BEV."""
    kwargs: dict[str, Any] = {"log_std_init": cfg.log_std_init}
    if env_config(cfg).bev is not None:
        kwargs["features_extractor_kwargs"] = {"cnn_output_dim": 64}
    return kwargs


def _bc_checkpoint(cfg: CompareConfig, seed: int, mode: str, pairs_path: str) -> tuple[str, float]:
    """Train (or reuse) the MLP BC policy of ``mode`` for ``seed``; returns its state-dict path and train time."""
    import torch

    from agents.rl.bc import BCConfig, build_bc_data, train_bc
    from counterfactual.dataset import load_anchor_pairs
    from envs.scenes.sources import open_source

    path = Path(cfg.out) / "checkpoints" / f"bc_{mode}_seed{seed}_std{cfg.log_std_init:g}_{cfg.bev}.pt"
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        return str(path), float(json.loads(meta.read_text())["train_s"])
    start = time.perf_counter()
    model = _grpo(cfg, seed, anchors=False, pairs=pairs_path, tb=None)
    bank = open_source("bank", num_scenes=cfg.train_scenes, seed=cfg.train_seed)
    data = build_bc_data([bank[i] for i in range(len(bank))], load_anchor_pairs(pairs_path),
                         env_config(cfg).observation, model.policy.max_speed, model.policy.max_yaw_rate)
    torch.manual_seed(seed)
    train_bc(model.policy, data, mode, BCConfig(steps=cfg.bc_steps), seed=seed)
    elapsed = time.perf_counter() - start
    from envs.atomic import atomic_writer

    with atomic_writer(path) as f:
        torch.save(model.policy.state_dict(), f)
    meta.write_text(json.dumps({"train_s": elapsed, "samples": len(data)}))
    return str(path), elapsed


def run_method(cfg: CompareConfig, method: str, seed: int, pairs_path: str) -> dict[str, Any]:
    """Train (where needed) and evaluate one row for one seed."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    from agents.rl.sb3_agent import SB3Agent

    tb = str(Path(cfg.out) / "tb" / f"{method}_seed{seed}")
    row: dict[str, Any] = {"method": method, "seed": seed}
    if method in PLANNERS:
        from agents.baselines import make_baseline

        row.update(train_s=0.0, **evaluate(make_baseline(method), cfg))
        return row
    if method == "ppo":
        from agents.rl.env import make_group_vec_env
        from agents.rl.ppo import PPOBaselineConfig, make_ppo

        env = make_group_vec_env(replace(group_env_config(cfg), normalized_actions=True), cfg.n_envs, seed=seed)
        model = make_ppo(env, PPOBaselineConfig(n_steps=cfg.n_steps), seed=seed, tensorboard_log=tb,
                         policy_kwargs=_policy_kwargs(cfg) if cfg.policy == "mlp" else None)
        start = time.perf_counter()
        model.learn(cfg.budget)
        row["train_s"] = time.perf_counter() - start
        row.update(evaluate(SB3Agent(model, "ppo", env.get_attr("max_speed")[0], env.get_attr("max_yaw_rate")[0]),
                            cfg))
        return row
    if cfg.policy == "vla":
        from agents.vla.policy import VLAPolicy

        if method in ("positive_sft", "negative_sft"):
            folder = cfg.sft_positive if method == "positive_sft" else cfg.sft_negative
            row.update(train_s=math.nan, **evaluate(VLAPolicy.from_pretrained(folder, name=method), cfg))
            return row
        model = _grpo(cfg, seed, anchors=method == "grpo_anchor", pairs=pairs_path, tb=tb)
    else:
        mode = "positive" if method == "positive_sft" else "negative"
        ckpt, bc_time = _bc_checkpoint(cfg, seed, mode, pairs_path)
        model = _grpo(cfg, seed, anchors=method == "grpo_anchor", pairs=pairs_path, tb=tb)
        model.policy.load_state_dict(torch.load(ckpt))
        model.reset_reference()
        if method in ("positive_sft", "negative_sft"):
            row.update(train_s=bc_time, **evaluate(SB3Agent(model, method), cfg))
            return row
    start = time.perf_counter()
    model.learn(cfg.budget)
    row["train_s"] = time.perf_counter() - start
    row["anchor_states"] = int(getattr(model, "anchor_states_seen", 0))
    row.update(evaluate(SB3Agent(model, method), cfg))
    return row


def _cell(values: Sequence[float], key: str) -> str:
    arr = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    if not len(arr):
        return "n/a"
    scale = 100.0 if key in PERCENT else 1.0
    digits = 1
    if len(arr) == 1:
        return f"{scale * arr[0]:.{digits}f}"
    return f"{scale * arr.mean():.{digits}f} +- {scale * arr.std(ddof=1):.{digits}f}"


def summary_table(rows: Sequence[dict[str, Any]], methods: Sequence[str]) -> str:
    """Markdown table: one line per method, mean +- std over its seeds (PDMS, SP-PDMS, collision, RC, DS in %)."""
    head = ["method", "seeds", *[name for _, name in COLUMNS]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        if not mine:
            continue
        cells = [m, str(len(mine))] + [_cell([r.get(k, math.nan) for r in mine], k) for k, _ in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _run(args: tuple) -> dict[str, Any]:
    return run_method(*args)


def run(cfg: CompareConfig) -> tuple[list[dict[str, Any]], str]:
    """Run every (method, seed) (planners once), in two phases so that GRPO reuses the BC checkpoints; returns the
    rows and the table."""
    import multiprocessing as mp

    if cfg.policy == "vla" and not (cfg.sft_positive and cfg.sft_negative):
        raise ValueError("--policy vla needs --sft-positive and --sft-negative (agents.sft.train output folders)")
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    pairs_path = train_pairs(cfg)
    first = [(m, s) for m in cfg.methods if m in ("positive_sft", "negative_sft", "ppo") for s in cfg.seeds]
    first += [(m, cfg.seeds[0]) for m in cfg.methods if m in PLANNERS]
    second = [(m, s) for m in cfg.methods if m in ("grpo_vanilla", "grpo_anchor") for s in cfg.seeds]
    rows: list[dict[str, Any]] = []
    ctx = mp.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=ctx) as pool:
        for phase in (first, second):
            rows += list(pool.map(_run, [(cfg, m, s, pairs_path) for m, s in phase]))
    table = summary_table(rows, cfg.methods)
    return rows, table


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m agents.rl.grpo.compare", description=__doc__.split("\n\n")[0])
    d = CompareConfig()
    p.add_argument("--policy", choices=("mlp", "vla"), default=d.policy)
    p.add_argument("--seeds", default=",".join(map(str, d.seeds)), help="comma-separated training seeds")
    for name in ("train_scenes", "train_seed", "eval_scenes", "eval_seed", "budget", "n_envs", "n_steps",
                 "group_size", "bc_steps", "workers"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name))
    for name in ("learning_rate", "beta", "log_std_init"):
        p.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(d, name))
    p.add_argument("--bev", choices=("semantic64", "none"), default=d.bev)
    p.add_argument("--online-mining", action="store_true")
    p.add_argument("--pairs", default=None)
    p.add_argument("--sft-positive", default=None)
    p.add_argument("--sft-negative", default=None)
    p.add_argument("--methods", default=",".join(d.methods), help="comma-separated rows")
    p.add_argument("--out", default=d.out)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    values = vars(args)
    values["seeds"] = tuple(int(s) for s in args.seeds.split(",") if s)
    values["methods"] = tuple(m for m in args.methods.split(",") if m)
    unknown = sorted(set(values["methods"]) - set(LEARNED + PLANNERS))
    if unknown:
        raise SystemExit(f"--methods: unknown {unknown}; known: {list(LEARNED + PLANNERS)}")
    cfg = CompareConfig(**values)
    start = time.perf_counter()
    rows, table = run(cfg)
    total = time.perf_counter() - start
    header = (f"Closed loop on {cfg.eval_scenes} held-out SYNTHETIC bank scenes (seed {cfg.eval_seed}); trained on "
              f"{cfg.train_scenes} scenes (seed {cfg.train_seed}); policy {cfg.policy}"
              f"{' (BC starts = MLP analogues of the SFT modes)' if cfg.policy == 'mlp' else ''}; budget "
              f"{cfg.budget} env steps per GRPO / PPO run (GRPO: G = {cfg.group_size} + 2 anchors scored per step); "
              f"seeds {list(cfg.seeds)}; mean +- std over seeds; total wall {total:.0f} s with {cfg.workers} "
              "workers.")
    out = Path(cfg.out)
    (out / "results.md").write_text(header + "\n\n" + table + "\n")
    (out / "results.json").write_text(json.dumps({"config": asdict(cfg), "rows": rows, "wall_s": total}, indent=1,
                                                 default=str))
    print(header)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

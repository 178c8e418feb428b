"""CLI: supervised fine-tuning of the VLA, positive-only or negative-enhanced, on the anchor pairs and their scenes.

Usage (defaults: 400 synthetic bank scenes of seed 0 and their mined pairs, 800 steps; under 10 minutes per mode
on 2 CPU cores, evaluation included)::

    python -m counterfactual.mine --num-scenes 400 --seed 0 --out outputs/pairs.parquet
    python -m agents.sft.train --mode negative --pairs outputs/pairs.parquet --out outputs/sft/negative
    python -m agents.sft.train --mode positive --pairs outputs/pairs.parquet --out outputs/sft/positive

Options: ``--max-steps`` / ``--batch-size`` (per process) / ``--global-batch-size`` (over all processes) / ``--lr``
/ ``--warmup-steps`` / ``--logging-steps`` (optimisation, :class:`agents.sft.trainer.SFTConfig`),
``--seed`` (data order and model initialisation), ``--label-balance none|hazard|risk`` (class-balanced examples,
:mod:`agents.sft.balance`), ``--label-first-steps K`` (label sentence only for K steps, :mod:`agents.sft.curriculum`),
``--aux-label-weight W`` (auxiliary per-field label loss on
the image tokens, :mod:`agents.sft.label_head`), ``--label-source head [--label-head-read tower|tower_mean]`` (the
policy states its label with a classifier on the frozen tower's features, fitted here, :mod:`agents.vla.label_head`),
``--label-monitor-steps N`` / ``--label-monitor-rows R``
(per-field label accuracy on R held-out rows every N steps in TensorBoard, :mod:`agents.sft.label_monitor`),
``--codebook PATH`` (else one is fitted on the expert logs of ``--codebook-scenes`` bank scenes of the training seed + the pairs' positives and cached), ``--init DIR`` (start from
a policy folder or a pretrained VLM in a local folder) with ``--lora`` (LoRA adapters via ``peft``), ``--resume``
(continue from the latest checkpoint in ``--out``), ``--prepare-only`` (render the sample cache and fit the codebook,
then exit), ``--eval`` (evaluate the final policy on held-out scenes, :mod:`agents.vla.evaluate`; with
``--blank-bev`` the labels are also scored on a blank BEV), ``--prompt-state none|ego|agents`` / ``--prompt-agents``
(motion as numbers in the prompt, :mod:`envs.prompt_state`; recorded in the saved policy folder, which
``python -m agents.vla.evaluate`` then observes the same way; :func:`training_prompt_state`). TensorBoard:
``tensorboard --logdir <out>/runs``.

Data-parallel on N GPUs (or N CPU processes; see :mod:`agents.sft.trainer`): render the cache once, then launch
with the global batch of the 1-process recipe (``--global-batch-size 16``, or ``--batch-size`` = global / N)::

    python -m agents.sft.train --mode negative --pairs outputs/pairs.parquet --out outputs/sft/negative --prepare-only
    torchrun --nproc_per_node N -m agents.sft.train --mode negative --pairs outputs/pairs.parquet \
        --out outputs/sft/negative --global-batch-size 16
    accelerate launch --num_processes N -m agents.sft.train ... --global-batch-size 16   # on CPUs: add --multi_gpu

A multi-process launch whose sample cache or codebook is not there yet stops with an error naming them (the ranks
would each render it); only the main process writes the final policy, ``sft_result.json`` and ``eval.json`` and
runs ``--eval``.

The two modes see the same scenes and pairs (one rendered cache), the same model and the same number of steps;
only the training view differs (:mod:`agents.sft.data`).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Any, Sequence

from agents.sft.data import MODES


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    p = argparse.ArgumentParser(prog="python -m agents.sft.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=MODES, required=True, help="training view: positive-only or negative-enhanced")
    p.add_argument("--pairs", required=True, help="anchor-pair parquet file (counterfactual.mine)")
    p.add_argument("--out", required=True, help="run folder (checkpoints, runs/ for TensorBoard, final/)")
    p.add_argument("--num-scenes", type=int, default=400, help="bank: training scenes (the pairs' bank)")
    p.add_argument("--scene-seed", type=int, default=0, help="bank: training seed (the pairs' bank)")
    p.add_argument("--seed", type=int, default=0, help="run seed: model initialisation and data order")
    p.add_argument("--max-steps", type=int, default=800, help="optimizer steps (same for both modes)")
    p.add_argument("--batch-size", type=int, default=16, help="examples per step and process (device)")
    p.add_argument("--global-batch-size", type=int, default=None,
                   help="examples per step over all processes (each takes global / N; overrides --batch-size)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    p.add_argument("--warmup-steps", type=int, default=20, help="linear warm-up steps")
    p.add_argument("--logging-steps", type=int, default=10, help="steps between logged losses")
    p.add_argument("--expert-frames", type=int, default=4, help="safe expert-log decisions per scene")
    p.add_argument("--aux-label-weight", type=float, default=0.0,
                   help="weight of the auxiliary per-field label loss on the image tokens (0: off; "
                        "agents.sft.label_head)")
    p.add_argument("--aux-label-position", choices=("image", "prompt"), default="image",
                   help="what the auxiliary label head reads: the image tokens or the last prompt token")
    p.add_argument("--label-source", choices=("text", "head"), default="text",
                   help="where the policy's stated label comes from (VLAConfig.label_source): the decoder's text, or "
                        "the label head fitted here on the frozen tower's features (agents.vla.label_head)")
    p.add_argument("--label-head-read", choices=("tower", "tower_mean"), default="tower",
                   help="what the label head reads: the tower's patch features flattened or averaged")
    p.add_argument("--label-balance", choices=("none", "hazard", "risk"), default="none",
                   help="class balance of the training examples by their label (agents.sft.balance): none, "
                        "hazard (no-hazard vs hazard targets) or risk (each risk level)")
    p.add_argument("--label-first-steps", type=int, default=0,
                   help="label-first curriculum: the first K steps train the label sentence only (0: off; "
                        "agents.sft.curriculum)")
    p.add_argument("--label-monitor-steps", type=int, default=0,
                   help="every N steps, log per-field label accuracy on held-out rows to TensorBoard (0: off)")
    p.add_argument("--label-monitor-rows", type=int, default=48, help="held-out rows the label monitor generates on")
    p.add_argument("--blank-bev", action="store_true", help="with --eval: also score the labels on a blank BEV")
    p.add_argument("--codebook", default=None, help="action codebook .npz (default: fit and cache one)")
    p.add_argument("--codebook-size", type=int, default=256, help="codewords when fitting")
    p.add_argument("--codebook-mode", choices=("segment", "trajectory"), default="segment",
                   help="one token per 0.5 s segment (default) or per 4 s trajectory")
    p.add_argument("--codebook-scenes", type=int, default=1000, help="bank scenes (training seed) to fit it on")
    p.add_argument("--init", default=None, help="policy folder or local pretrained VLM folder to start from")
    p.add_argument("--lora", action="store_true", help="with --init: train LoRA adapters (peft)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.add_argument("--cache-dir", default="outputs/sft_cache", help="rendered samples and codebooks")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: 1 without CUDA)")
    p.add_argument("--prepare-only", action="store_true", help="render the cache and fit the codebook, then exit")
    p.add_argument("--eval", action="store_true", help="evaluate the final policy on held-out scenes")
    p.add_argument("--eval-num-scenes", type=int, default=40, help="held-out bank scenes")
    p.add_argument("--eval-seed", type=int, default=1000, help="held-out bank seed")
    p.add_argument("--eval-pairs", default=None, help="held-out pairs (default: mined on the fly)")
    p.add_argument("--prompt-state", choices=("none", "ego", "agents"), default=None,
                   help="motion as numbers in the prompt (envs.prompt_state): training rows, tokenizer corpus and "
                        "--eval alike; recorded in the saved policy folder (default: none, or the state recorded "
                        "in the --resume checkpoint / --init policy folder; --resume with another is an error)")
    p.add_argument("--prompt-agents", type=int, default=None,
                   help="agents stated with --prompt-state agents (default: 4, or the recorded number)")
    p.add_argument("--no-progress", action="store_true", help="disable progress bars")
    return p


def codebook_cache_path(pairs: Sequence[Any], cache_dir: str | Path, *, size: int = 256, mode: str = "segment",
                        scenes: int = 1000, scene_seed: int = 0) -> Path:
    """The file :func:`codebook_for` caches a fitted codebook in (``cache_dir/codebook-<key>.npz``, keyed by the
    settings and the pairs' positives; it may not exist yet)."""
    from agents.vla.codebook import CodebookConfig, pair_positives

    config = CodebookConfig(size=size, mode=mode)
    positives = pair_positives(pairs)
    key = hashlib.sha256(repr((config, scenes, scene_seed, positives.round(6).tobytes())).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"codebook-{key}.npz"


def codebook_for(pairs: Sequence[Any], cache_dir: str | Path, *, path: str | Path | None = None, size: int = 256,
                 mode: str = "segment", scenes: int = 1000, scene_seed: int = 0, progress: bool = True):
    """The run's codebook: the one at ``path``, or fitted on ``scenes`` bank logs of ``scene_seed`` + the pairs'
    positives (:func:`agents.vla.codebook.fit_on_logs_and_positives`) and cached in ``cache_dir`` by content."""
    from agents.vla.codebook import CodebookConfig, TrajectoryCodebook, fit_on_logs_and_positives, pair_positives

    if path:
        return TrajectoryCodebook.load(path)
    config = CodebookConfig(size=size, mode=mode)
    positives = pair_positives(pairs)
    cached = codebook_cache_path(pairs, cache_dir, size=size, mode=mode, scenes=scenes, scene_seed=scene_seed)
    if cached.is_file():
        return TrajectoryCodebook.load(cached)
    if progress:
        print(f"fitting the action codebook ({config.mode}, K={config.size}) on {scenes} bank scenes "
              f"(seed {scene_seed}) + {len(positives)} positives ...", flush=True)
    book = fit_on_logs_and_positives(pairs, config, scenes, scene_seed)
    book.save(cached)
    return book


def training_prompt_state(prompt_state: str | None, prompt_agents: int | None, resume: Any = None,
                          init: Any = None) -> tuple[str, int]:
    """``(prompt_state, prompt_agents)`` of a training run: those of the checkpoint ``resume`` (a given value must
    agree: :func:`agents.vla.processor.resolve_prompt_state`), else the given ones, else those recorded in ``init``
    (a policy or pretrained folder; fine-tuning may change them), else ``("none", 4)``."""
    from agents.vla.processor import DEFAULT_PROMPT_STATE, recorded_prompt_state, resolve_prompt_state

    if resume is not None:
        return resolve_prompt_state(resume, prompt_state, prompt_agents)
    recorded = recorded_prompt_state(init) if init else DEFAULT_PROMPT_STATE
    state = prompt_state if prompt_state is not None else recorded[0]
    agents = prompt_agents if prompt_agents is not None else recorded[1]
    return state, agents


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    from agents.sft.trainer import set_threads

    from agents.sft.data import SFTDataset, load_or_build_samples, sample_cache_path
    from agents.sft.trainer import SFTConfig, latest_checkpoint, launched_processes, train_sft
    from agents.vla.model import VLAConfig
    from agents.vla.evaluate import prompt_state_configs
    from agents.vla.policy import VLAPolicy
    from agents.vla.tokenizer import TokenizerConfig
    from counterfactual.dataset import load_anchor_pairs
    from envs.scenes.sources import open_source

    parser = build_parser()
    args = parser.parse_args(argv)
    out = Path(args.out)
    last = latest_checkpoint(out) if args.resume else None
    try:
        args.prompt_state, args.prompt_agents = training_prompt_state(args.prompt_state, args.prompt_agents, last,
                                                                      args.init)
    except ValueError as exc:
        parser.error(str(exc))
    set_threads(args.threads)
    progress = not args.no_progress
    pairs = load_anchor_pairs(args.pairs)
    source = open_source("bank", num_scenes=args.num_scenes, seed=args.scene_seed)
    env_config, samples = prompt_state_configs(args.prompt_state, args.prompt_agents,
                                               expert_frames_per_scene=args.expert_frames)
    held_samples = prompt_state_configs(args.prompt_state, args.prompt_agents)[1]
    processes = launched_processes()
    if processes > 1 and not args.prepare_only:
        missing = [p for p in (sample_cache_path(source, pairs, args.cache_dir, samples),) if not p.is_dir()]
        if not args.codebook:
            book = codebook_cache_path(pairs, args.cache_dir, size=args.codebook_size, mode=args.codebook_mode,
                                       scenes=args.codebook_scenes, scene_seed=args.scene_seed)
            missing += [] if book.is_file() else [book]
        if missing:
            raise SystemExit(f"agents.sft.train: a {processes}-process launch needs the prepared cache, missing "
                             f"{', '.join(map(str, missing))}: run the same command with --prepare-only in one "
                             "process first (on every machine, unless --cache-dir is shared)")
    table = load_or_build_samples(source, pairs, args.cache_dir, samples, progress=progress)
    codebook = codebook_for(pairs, args.cache_dir, path=args.codebook, size=args.codebook_size,
                            mode=args.codebook_mode, scenes=args.codebook_scenes, scene_seed=args.scene_seed,
                            progress=progress)
    if args.prepare_only:
        print(f"prepared: {len(table)} rendered rows, codebook {codebook}")
        return 0
    name = f"vla_sft_{args.mode}"
    if last is not None:
        policy = VLAPolicy.from_pretrained(last, name=name)
    elif args.init:
        policy = VLAPolicy.from_pretrained(args.init, codebook=codebook, lora=args.lora, name=name)
        policy.prompt_state = (args.prompt_state, args.prompt_agents)  # the rows it is trained on from here
        policy.label_source = args.label_source
    else:
        policy = VLAPolicy.build(codebook, VLAConfig(seed=args.seed, label_source=args.label_source), TokenizerConfig(
            prompt_state=args.prompt_state, prompt_agents=args.prompt_agents), name=name)
    dataset = SFTDataset(table, args.mode)
    config = SFTConfig(max_steps=args.max_steps, batch_size=args.batch_size, global_batch_size=args.global_batch_size,
                       learning_rate=args.lr, warmup_steps=args.warmup_steps, logging_steps=args.logging_steps,
                       seed=args.seed, progress=progress, aux_label_weight=args.aux_label_weight,
                       aux_label_position=args.aux_label_position, label_balance=args.label_balance,
                       label_first_steps=args.label_first_steps, label_head_read=args.label_head_read)
    callbacks = []
    if args.label_monitor_steps > 0:
        from agents.sft.label_monitor import LabelAccuracyCallback, monitor_subset
        from agents.vla.evaluate import heldout_pairs

        held = open_source("bank", num_scenes=args.eval_num_scenes, seed=args.eval_seed)
        held_table = load_or_build_samples(held, heldout_pairs(held, args.eval_pairs, progress), args.cache_dir,
                                           held_samples, progress=progress)
        callbacks.append(LabelAccuracyCallback(policy, monitor_subset(held_table, args.label_monitor_rows),
                                               args.label_monitor_steps))
    per_device = config.per_device_batch_size(processes)
    if progress:
        print(f"{args.mode}: {len(dataset)} examples {dataset.counts()} from {args.num_scenes} scenes and "
              f"{len(pairs)} pairs; {args.max_steps} steps of {per_device} x {processes} process(es) = "
              f"{per_device * processes}", flush=True)
    result = train_sft(policy, dataset, out, config, resume=last if last is not None else False,
                       callbacks=callbacks)
    if not result.is_main_process:
        return 0
    print(f"trained in {result.train_seconds:.0f} s on {result.processes} process(es), global batch "
          f"{result.global_batch_size}; loss {result.losses[0][1]:.3f} -> {result.losses[-1][1]:.3f}; "
          f"policy saved to {result.final_dir}")
    if args.eval:
        from agents.vla.evaluate import evaluate_vla, heldout_pairs, report_table, write_report

        held = open_source("bank", num_scenes=args.eval_num_scenes, seed=args.eval_seed)
        held_table = load_or_build_samples(held, heldout_pairs(held, args.eval_pairs, progress), args.cache_dir,
                                           held_samples, progress=progress)
        report = evaluate_vla(policy, held, held_table, table, progress=progress, blank_bev=args.blank_bev,
                              env_config=env_config)
        print(report_table([report]))
        write_report(out / "eval.json", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

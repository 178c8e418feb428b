"""Data-parallel SFT against one process: ``python -m benchmarks.bench_sft_distributed [--steps 12] [--processes 2]``.

Trains the tiny VLA (:meth:`agents.vla.model.VLAConfig.tiny`) with the SFT CLI (``python -m agents.sft.train``) on a
small synthetic bank (``--num-scenes`` scenes of seed 0, their mined anchor pairs, the negative-enhanced view) three
times, each in fresh processes on the CPU (gloo), and prints the per-step losses (``--logging-steps 1``):

* ``1 process``: ``--batch-size B`` (B = ``--global-batch``);
* ``N processes, same global batch``: ``torchrun --nproc_per_node N ... --global-batch-size B`` (B / N per process);
* ``N processes, per-process batch not divided``: ``torchrun ... --batch-size B`` (global batch N x B).

and the largest per-step difference of each to the 1-process curve. With the same global batch the curves agree to
float precision (measured on the shared 2-core machine, 12 steps, N = 2: 9.5e-7 at most, on losses of 6.7 -> 4.5);
a global batch of 2 B differs by 0.007 at the first step and 0.09 by step 12. :data:`LOSS_TOLERANCE` is the bound
``tests/test_sft_distributed.py`` asserts. The data (pairs, codebook, initial policy, rendered cache) is prepared
once in ``--work`` (default: a temp folder), with the CLI's ``--prepare-only``, as the docs prescribe before a
multi-process launch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
"""The repository root (the working folder of the launched runs)."""

LOSS_TOLERANCE = 1e-4
"""Largest per-step difference of logged losses [nats per label token] accepted between an N-process run and the
1-process run with the same global batch. The runs do the same arithmetic up to the order of float32 reductions
(gradients summed across processes by gloo's all-reduce, the loss's token count gathered): measured 1e-6 at most over
12 steps of the tiny model (losses ~5, float32 resolution there 5e-7). Every mismatch of the setup measured above
it: the per-process loss averaged instead of normalised over the global batch's label tokens, 6e-4 at the first step
and 6e-3 by step 12; a padded epoch-end batch, 0.03 at the first epoch end; a doubled global batch, 0.007 at the
first step."""


def prepare(work: str | os.PathLike, num_scenes: int = 4, max_pairs: int = 6) -> list[str]:
    """Write the inputs of the runs into ``work`` (anchor pairs of the accident scenes among ``num_scenes`` bank
    scenes of seed 0, at most ``max_pairs`` of them; a 16-word segment codebook; the tiny policy of seed 0 as
    ``init/``), render the sample cache with the CLI's ``--prepare-only`` (in this process), and return the CLI
    arguments the runs share."""
    from agents.sft.train import main as train_main
    from agents.vla.codebook import CodebookConfig, TrajectoryCodebook, log_trajectories
    from agents.vla.model import VLAConfig
    from agents.vla.policy import VLAPolicy
    from agents.vla.tokenizer import TokenizerConfig
    from counterfactual.dataset import write_anchor_pairs
    from counterfactual.miner import mine_scene
    from envs.scenes.sources import open_source

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    source = open_source("bank", num_scenes=num_scenes, seed=0)
    scenes = [source[i] for i in range(len(source))]
    pairs = []
    for i, scene in enumerate(scenes):
        if scene.meta.is_accident and len(pairs) < max_pairs:
            pairs += mine_scene(scene, origin=source.origin(i)).pairs
    pairs = pairs[:max_pairs]
    if not pairs:
        raise ValueError(f"prepare: no anchor pair in {num_scenes} bank scenes of seed 0; use more scenes")
    write_anchor_pairs(pairs, work / "pairs.parquet")
    book = TrajectoryCodebook.fit(log_trajectories(scenes, stride=2), CodebookConfig(size=16, mode="segment"))
    book.save(work / "codebook.npz")
    VLAPolicy.build(book, VLAConfig.tiny(seed=0), TokenizerConfig(corpus_size=300),
                    max_text_tokens=40).save_pretrained(work / "init")
    common = ["--mode", "negative", "--pairs", str(work / "pairs.parquet"), "--num-scenes", str(num_scenes),
              "--scene-seed", "0", "--codebook", str(work / "codebook.npz"), "--init", str(work / "init"),
              "--cache-dir", str(work / "cache"), "--expert-frames", "4", "--no-progress"]
    train_main(common + ["--out", str(work / "prepare"), "--prepare-only"])
    return common


def run(common: Sequence[str], out: str | os.PathLike, processes: int = 1, *, steps: int = 12,
        batch_size: int | None = None, global_batch_size: int | None = None, timeout: float = 300.0
        ) -> list[tuple[int, float]]:
    """Train with ``python -m agents.sft.train`` (``processes`` = 1) or ``torchrun --standalone --nproc_per_node
    processes -m agents.sft.train`` into ``out`` for ``steps`` steps (lr 1e-2, 2 warm-up steps, a loss logged every
    step) and return its logged ``(step, loss)`` (``out/sft_result.json``, written by the main process). Give
    ``batch_size`` (per process) or ``global_batch_size``. Raises ``RuntimeError`` with the output's tail when the run
    fails or exceeds ``timeout`` [s]."""
    if (batch_size is None) == (global_batch_size is None):
        raise ValueError("run: give exactly one of batch_size (per process) and global_batch_size")
    size = ["--batch-size", str(batch_size)] if batch_size is not None else ["--global-batch-size",
                                                                            str(global_batch_size)]
    argv = list(common) + ["--out", str(out), "--max-steps", str(steps), "--lr", "1e-2", "--warmup-steps", "2",
                           "--logging-steps", "1"] + size
    launcher = [sys.executable] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    try:
        done = subprocess.run(launcher + ["-m", "agents.sft.train"] + argv, cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{processes}-process SFT run exceeded {timeout:.0f} s") from exc
    if done.returncode != 0:
        raise RuntimeError(f"{processes}-process SFT run failed (exit {done.returncode}):\n"
                           f"{(done.stdout + done.stderr)[-4000:]}")
    summary = json.loads((Path(out) / "sft_result.json").read_text())
    return [(int(s), float(v)) for s, v in summary["losses"]]


def max_loss_difference(reference: Sequence[tuple[int, float]], other: Sequence[tuple[int, float]]) -> float:
    """Largest ``|loss - loss_ref|`` over the logged steps; ``ValueError`` when the two logged other steps."""
    steps, other_steps = [s for s, _ in reference], [s for s, _ in other]
    if steps != other_steps:
        raise ValueError(f"max_loss_difference: logged steps differ: {steps} vs {other_steps}")
    return max(abs(a - b) for (_, a), (_, b) in zip(reference, other))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the curves and differences."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_sft_distributed",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2, help="data-parallel CPU processes (N)")
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per run")
    parser.add_argument("--global-batch", type=int, default=8, help="global batch B of the 1-process run")
    parser.add_argument("--num-scenes", type=int, default=4, help="bank scenes (seed 0) of the data")
    parser.add_argument("--work", default=None, help="folder of the data and runs (default: a temp folder)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_sft_ddp_") as tmp:
        work = Path(args.work or tmp)
        t0 = time.perf_counter()
        common = prepare(work / "data", num_scenes=args.num_scenes)
        print(f"prepared the data in {time.perf_counter() - t0:.1f} s", flush=True)
        n, b = args.processes, args.global_batch
        curves: dict[str, list[tuple[int, float]]] = {}
        seconds: dict[str, float] = {}
        for name, processes, kwargs in (
                ("1 process", 1, {"batch_size": b}),
                (f"{n} processes, same global batch ({b // n} each)", n, {"global_batch_size": b}),
                (f"{n} processes, batch not divided (global {n * b})", n, {"batch_size": b})):
            t0 = time.perf_counter()
            curves[name] = run(common, work / f"run{len(curves)}", processes, steps=args.steps, **kwargs)
            seconds[name] = time.perf_counter() - t0
        reference = curves["1 process"]
        names = list(curves)
        print("step  " + "  ".join(f"{name:>44}" for name in names))
        for i, (step, _) in enumerate(reference):
            print(f"{step:>4}  " + "  ".join(f"{curves[name][i][1]:>44.7f}" for name in names))
        for name in names:
            diff = max_loss_difference(reference, curves[name])
            verdict = "" if name == names[0] else (" (within" if diff <= LOSS_TOLERANCE else " (ABOVE") + \
                f" the tolerance {LOSS_TOLERANCE:g})"
            print(f"{name}: {seconds[name]:.1f} s wall (launch included); max |loss - 1 process| = {diff:.3g}{verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

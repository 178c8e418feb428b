"""GRPO with the VLA: environment steps per second and where the time goes.

``python -m benchmarks.bench_grpo_vla [--model DIR] [--pairs FILE] [--decoders fast,transformers] [--steps 16]``

Runs :class:`agents.rl.grpo.grpo.GRPO` with ``"VLAPolicy"`` on the closed-loop replay env over SYNTHETIC bank scenes
(60 scenes of seed 0, the default run's training scenes; the VLA's 128 px RGB BEV and text prompt; one env,
``DummyVecEnv``) for ``--steps`` env steps (one rollout of ``n_steps = --steps``, then one update of ``n_epochs``
passes), ``torch.set_num_threads(--threads)``, and prints per decoder (:attr:`agents.vla.policy.VLAPolicy.decoder`,
the policy's and the KL reference's) the env steps per second of the whole ``learn`` (wall clock, and per second of
this thread's CPU time: the rate on a free core of a shared machine) and its breakdown [CPU ms per env step]:

* ``sample``: :meth:`VLAGroupPolicy.sample_group` (G outputs per state, with their log-probabilities);
* ``anchor logp``: pi_old of the anchors by teacher forcing (only states with an anchor pair; needs ``--pairs``);
* ``ref logp``: the KL reference's teacher-forced log-probabilities of the G + anchors (``beta > 0``);
* ``score``: ``score_group`` of the G + anchors (the PDM scorer); ``env step``: stepping the env;
* ``update fwd``: the update's teacher-forced log-probabilities (with gradients), ``update bwd+opt``: the rest of
  :meth:`GRPO.train` (backward, gradient clip, Adam step, loss terms);
* ``other``: the rest (anchor lookup and encoding, buffer, logging).

Policy: ``--model DIR`` (a policy folder, e.g. ``<run>/sft/negative/final``) or, by default, the untrained default
:class:`agents.vla.model.VLAConfig` (random init; its generations run to the text limit). ``--pairs`` takes a mined
pairs file (``<run>/pairs_train.parquet`` of the same bank scenes) so that the anchor pass runs. The same seed is
used for every decoder: with equal outputs the rollouts are the same, so the rows compare like for like.

Measured (2026-12-06, shared 2-core machine under ``flock /tmp/safealign-bench.lock``, SFT-trained policy of the
default run, ``--model <run>/sft/negative/final --pairs <run>/pairs_train.parquet --steps 16``): 3.67 env steps/s
with the fast decoder, 1.87 with ``transformers``; breakdown in docs/vla.md (decision throughput).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from typing import Any, Callable  # noqa: E402

PARTS = ("sample", "anchor logp", "ref logp", "score", "env step", "update fwd", "update bwd+opt", "other")


class _Clock:
    """Accumulates CPU time of this thread per part (on a shared machine, what the part costs on a free core; the
    env and the scorer run in this thread, ``DummyVecEnv``); ``phase`` tells collection from update for the shared
    log-prob method."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.phase = "collect"

    def wrap(self, fn: Callable, part: str | Callable[[], str]) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[part() if callable(part) else part] += time.thread_time() - t0
        return timed


def run_grpo(model_dir: str, pairs: str | None, decoder: str, steps: int, group_size: int, seed: int) -> dict:
    """One timed ``learn`` of ``steps`` env steps; returns ``{"steps_per_s": ..., "ms": {part: ms per step}}``."""
    import numpy as np

    import agents.rl.grpo.grpo as grpo_module
    from agents.rl.env import GroupEnvConfig, call_each, make_group_vec_env
    from agents.rl.grpo.config import GRPOConfig
    from agents.rl.grpo.grpo import GRPO
    from envs.replay_env import EnvConfig

    env = make_group_vec_env(GroupEnvConfig(num_scenes=60, seed=0, env=EnvConfig(text_prompt=True),
                                            normalized_actions=False), n_envs=1, seed=seed)
    cfg = GRPOConfig(n_steps=steps, batch_size=min(steps, 8), group_size=group_size)
    model = GRPO("VLAPolicy", env, cfg, anchor_pairs=pairs, policy_kwargs={"path": model_dir}, seed=seed)
    model.policy.vla.decoder = decoder
    venv = model.env
    venv.reset()  # warm-up: the scorer's numba kernels load (or compile) on their first call
    call_each(venv, "score_group", [(np.zeros((1, 8, 3)),)])
    model.policy.sample_group(venv.reset(), 1)
    model.ref_policy.vla.decoder = decoder
    clock = _Clock()
    policy = model.policy
    policy.sample_group = clock.wrap(policy.sample_group, "sample")
    policy.member_log_prob = clock.wrap(policy.member_log_prob,
                                        lambda: "update fwd" if clock.phase == "update" else "anchor logp")
    model.ref_policy.member_log_prob = clock.wrap(model.ref_policy.member_log_prob, "ref logp")
    venv.step = clock.wrap(venv.step, "env step")
    def timed_call_each(env_: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        part = "score" if method == "score_group" else "other"
        return clock.wrap(call_each, part)(env_, method, *args, **kwargs)

    train = model.train

    def timed_train() -> None:
        clock.phase = "update"
        t0 = time.thread_time()
        try:
            train()
        finally:
            clock.seconds["update total"] += time.thread_time() - t0
            clock.phase = "collect"

    model.train = timed_train
    grpo_module.call_each = timed_call_each
    try:
        t0, c0 = time.perf_counter(), time.thread_time()
        model.learn(steps)
        total, cpu = time.perf_counter() - t0, time.thread_time() - c0
    finally:
        grpo_module.call_each = call_each
        env.close()
    s = clock.seconds
    s["update bwd+opt"] = s.pop("update total", 0.0) - s["update fwd"]
    s["other"] = cpu - sum(s[p] for p in PARTS if p != "other")
    return {"steps_per_s": steps / total, "cpu_steps_per_s": steps / cpu, "total_s": total,
            "ms": {p: 1000 * s[p] / steps for p in PARTS},
            "anchor_states": int(model.anchor_states_seen),
            "rollout_rewards": model.rollout_buffer.rewards.round(6).tolist()}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_grpo_vla", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="policy folder (default: the untrained default VLAConfig)")
    parser.add_argument("--pairs", default=None, help="mined pairs parquet of bank seed 0 (anchors)")
    parser.add_argument("--decoders", default="fast,transformers", help="comma-separated: fast, transformers")
    parser.add_argument("--steps", type=int, default=16, help="env steps (one rollout, one update)")
    parser.add_argument("--group-size", type=int, default=8, help="G")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    model_dir = args.model
    tmp = None
    if model_dir is None:
        from agents.vla.codebook import CodebookConfig, TrajectoryCodebook, log_trajectories
        from agents.vla.model import VLAConfig
        from agents.vla.policy import VLAPolicy
        from envs.scenes.bank import ScenarioBank

        bank = ScenarioBank(200, seed=0)
        book = TrajectoryCodebook.fit(log_trajectories([bank[i] for i in range(len(bank))], stride=5),
                                      CodebookConfig(size=256, mode="segment"))
        tmp = tempfile.TemporaryDirectory()
        model_dir = VLAPolicy.build(book, VLAConfig()).save_pretrained(tmp.name)
    rows = []
    for decoder in args.decoders.split(","):
        r = run_grpo(str(model_dir), args.pairs, decoder, args.steps, args.group_size, args.seed)
        rows.append((decoder, r))
        print(f"{decoder}: {r['steps_per_s']:.2f} env steps/s wall, {r['cpu_steps_per_s']:.2f} per CPU second "
              f"({r['total_s']:.1f} s for {args.steps} steps, "
              f"{r['anchor_states']} states with anchors)", flush=True)
    head = ("decoder", "env steps/s", "per cpu s", *(f"{p} ms" for p in PARTS))
    table = [(d, f"{r['steps_per_s']:.2f}", f"{r['cpu_steps_per_s']:.2f}", *(f"{r['ms'][p]:.0f}" for p in PARTS))
             for d, r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(head)]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    print(f"\nthreads={args.threads}; G={args.group_size}; {args.steps} env steps (1 rollout + 1 update of "
          f"4 epochs); model: {args.model or 'untrained default VLAConfig'}; env steps/s: wall clock, and per second "
          f"of CPU time (one thread); parts: CPU ms per env step")
    print(fmt.format(*head))
    for t in table:
        print(fmt.format(*t))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

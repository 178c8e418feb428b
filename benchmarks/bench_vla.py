"""VLA model cost by size: ``python -m benchmarks.bench_vla [--threads 1] [--configs tiny,small,base]``.

For each candidate :class:`agents.vla.model.VLAConfig` (random init, 128 px BEV = 64 image tokens, our tokenizer,
a segment codebook fitted on 200 synthetic bank scenes) prints the parameter count, the sequence length, the time
of one forward + backward pass on a training batch of 16 (label text + action tokens as targets), the time to
sample G = 8 outputs for one observation, and the greedy decision latency (``VLAPolicy.act``) [ms]. Inputs are
real bank observations (synthetic scenes) with mined-label-like explanations; ``torch.set_num_threads(--threads)``.
``--model DIR`` adds a row for a trained policy folder (its generations stop at their own length: a trained policy
writes its label text before its action tokens, so this is the honest latency). Vision tower and projector are
frozen as in :class:`agents.vla.model.VLAConfig`'s default (no gradients computed for them). Each row is timed with
both decoders of :attr:`agents.vla.policy.VLAPolicy.decoder` (``--decoders``): ``fast``
(:mod:`agents.vla.fast_decoding`, the default) and ``transformers`` (``model.generate``, the reference), interleaved
call by call; the same outputs (``tests/test_vla_decoding_pinned.py``). GRPO's throughput:
``benchmarks/bench_grpo_vla.py``.

Measured (2026-12-06, one core of the shared 2-core machine under ``flock /tmp/safealign-bench.lock``,
``--configs small --model <run>/sft/negative/final``; medians of 5 calls): greedy ``act`` 36 ms (untrained, 58
output tokens) and 12 ms (trained, 28 tokens) with the fast decoder against 67 and 20 with ``transformers``; G = 8
samples 69 and 32 ms against 123 and 64. Table in docs/vla.md (decision throughput).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

CONFIGS = {
    "tiny": dict(vision_hidden_size=32, vision_layers=1, vision_heads=2, text_hidden_size=64, text_layers=1,
                 text_heads=2, text_kv_heads=1, text_intermediate_size=192),
    "small": dict(vision_hidden_size=64, vision_layers=2, vision_heads=2, text_hidden_size=128, text_layers=2,
                  text_heads=4, text_kv_heads=2, text_intermediate_size=384),
    "base": dict(vision_hidden_size=128, vision_layers=2, vision_heads=4, text_hidden_size=256, text_layers=4,
                 text_heads=4, text_kv_heads=2, text_intermediate_size=768),
}
"""Candidate sizes (``small`` is :class:`agents.vla.model.VLAConfig`'s default)."""


def _timed(fn, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def _once(fn) -> tuple[float, float]:
    """``(wall, CPU)`` seconds of one call (CPU: this process's time on one thread, what the call costs on a free
    core; wall time includes the waits of a loaded machine)."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_vla", description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--configs", default="tiny,small,base", help=f"comma-separated, from {sorted(CONFIGS)}")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per measurement")
    parser.add_argument("--model", default=None, help="also time a trained policy folder (e.g. <sft out>/final)")
    parser.add_argument("--decoders", default="fast,transformers",
                        help="VLAPolicy.decoder values to time (comma-separated: fast, transformers)")
    args = parser.parse_args(argv)

    import torch

    from agents.base import PolicyInput
    from agents.vla.codebook import CodebookConfig, TrajectoryCodebook, log_trajectories
    from agents.vla.format import target_text
    from agents.vla.model import VLAConfig, count_parameters
    from agents.vla.policy import VLAPolicy
    from counterfactual.language import explain
    from envs.scenes.bank import ScenarioBank
    from envs.observation import build_observation, text_prompt
    from envs.sim.scoring import trajectory_from_log

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    bank = ScenarioBank(200, seed=0)
    scenes = [bank[i] for i in range(len(bank))]
    codebook = TrajectoryCodebook.fit(log_trajectories(scenes, stride=5), CodebookConfig(size=256, mode="segment"))
    rng = np.random.default_rng(0)
    obs = [build_observation(s, 30) for s in scenes[:16]]
    inputs = [PolicyInput(observation=o, prompt=text_prompt(o)) for o in obs]
    label = {"risk_agent_class": "pedestrian", "sector": "left", "distance_m": 12.3, "conflict_type": "crossing",
             "risk_level": "high", "ttc_s": 1.4, "action": "brake"}
    texts = [explain(label, seed=int(rng.integers(1000))) for _ in inputs]
    targets = [target_text(t, codebook.encode(trajectory_from_log(s, 30))) for t, s in zip(texts, scenes)]
    head = ("config", "decoder", "params", "seq len", "out tokens", "fwd+bwd b16 ms", "sample G=8 ms",
            "G=8 cpu ms", "greedy act ms", "act cpu ms")
    rows = []
    decoders = args.decoders.split(",")

    def time_policy(row_name: str, policy) -> None:
        model = policy.model
        prompts = [policy.processor.prompt(i.prompt) for i in inputs]
        batch = policy.processor.encode_training([o["bev"] for o in obs], prompts, targets)

        def step() -> None:
            model.zero_grad()
            model(**batch).loss.backward()

        model.train()
        t_train = _timed(step, args.repeats)
        model.eval()
        timings = {d: ([], []) for d in decoders}
        for _ in range(args.repeats + 1):  # decoders interleaved (the shared machine's load hits both alike)
            for d in decoders:
                policy.decoder = d
                timings[d][0].append(_once(lambda: policy.sample(inputs[:1], G=8, temperature=1.0)))
                timings[d][1].append(_once(lambda: policy.act(inputs[0])))
        out_len = float(policy.predict(inputs).mask.sum(dim=1).float().mean())
        for d in decoders:
            # medians over the calls after the first (warm-up), of (wall, CPU) seconds
            (s_wall, s_cpu), (a_wall, a_cpu) = (np.median(np.asarray(t[1:]), axis=0) for t in timings[d])
            rows.append((row_name, d, f"{count_parameters(model) / 1e6:.2f}M", str(batch["input_ids"].shape[1]),
                         f"{out_len:.0f}", f"{1000 * t_train:.0f}", f"{1000 * s_wall:.0f}", f"{1000 * s_cpu:.0f}",
                         f"{1000 * a_wall:.0f}", f"{1000 * a_cpu:.0f}"))
            print("  ".join(rows[-1]), flush=True)

    for name in [c for c in args.configs.split(",") if c]:
        time_policy(name, VLAPolicy.build(codebook, VLAConfig(**CONFIGS[name])))
    if args.model:
        time_policy("trained", VLAPolicy.from_pretrained(args.model))
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    print(f"\nthreads={args.threads}; 128 px BEV (64 image tokens), segment codebook K=256 (8 action tokens); "
          f"untrained configs generate to the text limit (out tokens = mean greedy output length over 16 inputs); "
          f"medians of {args.repeats} calls, decoders interleaved; ms = wall time, cpu ms = the process's CPU time "
          f"(one thread: the cost on a free core)")
    print(fmt.format(*head))
    for r in rows:
        print(fmt.format(*r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

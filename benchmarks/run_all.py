"""Run every benchmark in turn (``make bench`` / ``python -m benchmarks.run_all``); each prints its own numbers.

Each benchmark runs in its own process (so thread pinning and caches do not leak between them). Extra arguments are
not forwarded; run a single benchmark (``python -m benchmarks.bench_<name> --help``) to change its settings.
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = ("bench_bank", "bench_render", "bench_scorer", "bench_env", "bench_mining", "bench_jerk_penalty",
              "bench_degenerate", "bench_codebook", "bench_vla", "bench_grpo_vla", "bench_readability",
              "bench_sft_distributed", "bench_ppo", "bench_scale")
"""Module names under ``benchmarks/``, in the order they run."""


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"\n===== benchmarks.{name} =====", flush=True)
        rc = subprocess.call([sys.executable, "-m", f"benchmarks.{name}"])
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

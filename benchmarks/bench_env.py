"""Closed-loop ReplayEnv throughput, what dominates a step, and highway-env on a comparable setup.

Run: ``python -m benchmarks.bench_env [--seconds 5] [--scenes 16] [--skip-highway]``.

Single process, single core: the BLAS / OpenMP / OpenCV thread counts are pinned to 1 before numpy is imported.
The policy replays the log (:meth:`envs.replay_env.ReplayEnv.logged_action` each step); resets are included in the
rates (episodes are 6-8 steps on the synthetic bank).

Configurations (closed loop, ``--scenes`` bank scenes):

* ``default``: eager reward, reference planned from the logged state and cached per (scene, frame), 128 px RGB BEV
  (the env default: no anti-aliasing);
* ``ref-auto``: eager, reference planned from the current (simulated) state at every step (exact, slow);
* ``ref-none``: eager, EP normalised without a reference (no planning at all);
* ``lazy``: ``reward_mode="lazy"`` (scorer deferred to ``flush_rewards``), 128 px RGB BEV;
* ``lazy-64``: lazy, 64 px RGB BEV at 1 m/px without anti-aliasing, heading ticks or box history;
* ``lazy-state``: lazy, no BEV (state-only observation).

highway-env (Farama-Foundation/HighwayEnv) is never installed in the project environment. Give the benchmark a
Python that has it, e.g.::

    python -m venv /tmp/highway-venv && /tmp/highway-venv/bin/pip install highway-env==1.12.1

(``HIGHWAY_PYTHON`` or ``--highway-python`` overrides the default ``/tmp/highway-venv/bin/python``). It runs
``highway-v0`` in a subprocess, also single-threaded, with the IDLE action and resets included, in two setups:
its default config (15 Hz simulation, 1 Hz policy, 50 vehicles, 40 s episodes) and a setup comparable to ours
(10 Hz simulation, 2 Hz policy so a step is 0.5 s of 10 Hz simulation, as here; ``vehicles_count`` = the bank's
mean agent count; 4 s episodes, about our episode length). If that Python is missing, the script prints how to
create it and skips the comparison.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from typing import Callable  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import envs.replay_env as replay_env  # noqa: E402
from envs.render import BEVConfig  # noqa: E402
from envs.replay_env import EnvConfig, ReplayEnv  # noqa: E402

FAST_BEV = BEVConfig(height=64, width=64, meters_per_pixel=1.0, antialias=False, draw_headings=False,
                     history_length=0)
"""The cheap BEV of ``lazy-64``."""

CONFIGS: dict[str, EnvConfig] = {
    "default": EnvConfig(),
    "ref-auto": EnvConfig(reference="auto"),
    "ref-none": EnvConfig(reference=None),
    "lazy": EnvConfig(reward_mode="lazy"),
    "lazy-64": EnvConfig(reward_mode="lazy", bev=FAST_BEV),
    "lazy-state": EnvConfig(reward_mode="lazy", bev=None),
}

HIGHWAY_SCRIPT = r"""
import json, os, sys, time
for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[v] = "1"
import gymnasium, highway_env
seconds, vehicles = float(sys.argv[1]), int(sys.argv[2])
setups = {
    "highway-v0 default": {},
    "highway-v0 comparable": {"simulation_frequency": 10, "policy_frequency": 2, "vehicles_count": vehicles,
                              "duration": 4},
}
out = {}
for name, config in setups.items():
    env = gymnasium.make("highway-v0", config=config)
    env.reset(seed=0)
    steps = episodes = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated, _ = env.step(1)  # IDLE
        steps += 1
        if terminated or truncated:
            env.reset()
            episodes += 1
    out[name] = {"steps_per_s": steps / (time.perf_counter() - start), "episodes": episodes}
print(json.dumps(out))
"""


def warm_up(env: ReplayEnv, seed: int = 0) -> float:
    """Visit every scene once (one full episode each): scene generation, map index, raster, scoring problems and
    the cached references are built here, as in the first epoch of training. Returns seconds per scene."""
    start = time.perf_counter()
    for index in range(len(env.source)):
        env.reset(seed=seed, options={"scene_index": index})
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.logged_action())
            done = terminated or truncated
    return (time.perf_counter() - start) / len(env.source)


def run_env(env: ReplayEnv, seconds: float, seed: int = 0) -> tuple[float, int]:
    """Closed-loop steps per second (log-replay policy, resets included) and the number of episodes finished."""
    env.reset(seed=seed)
    steps = episodes = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated, _ = env.step(env.logged_action())
        steps += 1
        if terminated or truncated:
            env.reset()
            episodes += 1
    # Lazy mode: the deferred scoring (flush_rewards) happens outside the stepping loop and is not measured here.
    return steps / (time.perf_counter() - start), episodes


def breakdown(env: ReplayEnv, seconds: float) -> dict[str, float]:
    """Mean time per ``step`` [us] spent in each costly part, by wrapping the functions ``step`` calls."""
    totals: dict[str, float] = defaultdict(float)

    def timed(name: str, fn: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                totals[name] += time.perf_counter() - t0

        return wrapper

    patches = {
        "simulate_prefix": "closed-loop tracking (5 frames)",
        "check_frames": "collision / off-road checks",
        "simulate_candidates": "scorer: simulate the action (41 states)",
        "score_states": "scorer: score_states",
        "reference_for": "scorer: reference planning",
        "problem_from_scene": "scoring problem from the log",
    }
    saved = {name: getattr(replay_env, name) for name in patches}
    for name, label in patches.items():
        setattr(replay_env, name, timed(label, saved[name]))
    renderer = env._renderer
    if renderer is not None:
        renderer.render = timed("BEV render", renderer.render)  # instance attribute shadowing the method
    env.reset(seed=0)
    steps = 0
    start = time.perf_counter()
    try:
        while time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            _, _, terminated, truncated, _ = env.step(env.logged_action())
            totals["step (total)"] += time.perf_counter() - t0
            steps += 1
            if terminated or truncated:
                env.reset()  # reset time is excluded from "step (total)" but its parts are counted above
    finally:
        for name, fn in saved.items():
            setattr(replay_env, name, fn)
        if renderer is not None:
            del renderer.render
    return {name: 1e6 * total / steps for name, total in totals.items()}


def highway(python: str, seconds: float, vehicles: int) -> dict | None:
    """highway-env rates from ``python`` (None, with instructions printed, when it cannot run highway-env)."""
    if not os.path.exists(python):
        print(f"\nhighway-env: no Python at {python}; to compare, create its own venv:\n"
              f"  python -m venv /tmp/highway-venv && /tmp/highway-venv/bin/pip install highway-env==1.12.1\n"
              f"(or set HIGHWAY_PYTHON). Skipping the comparison.")
        return None
    proc = subprocess.run([python, "-c", HIGHWAY_SCRIPT, str(seconds), str(vehicles)], capture_output=True,
                          text=True, env={**os.environ, "SDL_VIDEODRIVER": "dummy"})
    if proc.returncode != 0:
        print(f"\nhighway-env: {python} cannot run highway-v0 ({proc.stderr.strip().splitlines()[-1:]}); install it "
              f"with `{python} -m pip install highway-env==1.12.1`. Skipping the comparison.")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_env", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per configuration [s]")
    parser.add_argument("--scenes", type=int, default=16, help="bank scenes")
    parser.add_argument("--skip-highway", action="store_true", help="do not run highway-env")
    parser.add_argument("--highway-python", default=os.environ.get("HIGHWAY_PYTHON", "/tmp/highway-venv/bin/python"))
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)

    base = ReplayEnv("bank", "closed_loop", CONFIGS["lazy-state"], num_scenes=args.scenes)
    mean_agents = float(np.mean([base.source[i].num_agents for i in range(len(base.source))]))
    print(f"ReplayEnv closed loop, {args.scenes} synthetic bank scenes (mean {mean_agents:.1f} agents), "
          f"log-replay policy, 1 thread, {args.seconds:.0f} s per configuration")
    rates: dict[str, float] = {}
    print("Each configuration first runs one episode per scene (warm-up: scene generation, map index, raster, "
          "log problems, cached references), then is timed in steady state.")
    print(f"{'config':<12} {'steps/s':>9} {'episodes':>9} {'warm-up s/scene':>16}")
    warm = {}
    for name, config in CONFIGS.items():
        env = ReplayEnv("bank", "closed_loop", config, num_scenes=args.scenes)
        warm[name] = env
        per_scene = warm_up(env)
        rate, episodes = run_env(env, args.seconds)
        rates[name] = rate
        print(f"{name:<12} {rate:>9.0f} {episodes:>9d} {per_scene:>16.2f}")

    for name in ("ref-auto", "default", "lazy", "lazy-state"):
        parts = breakdown(warm[name], min(args.seconds, 3.0))
        total = parts.pop("step (total)")
        print(f"\nwhere a step's time goes, config {name!r} ({total:.0f} us per step, warm; parts include reset work):")
        for label, us in sorted(parts.items(), key=lambda kv: -kv[1]):
            print(f"  {label:<42} {us:>8.0f} us  {100 * us / total:5.1f} %")

    if not args.skip_highway:
        hw = highway(args.highway_python, args.seconds, int(round(mean_agents)))
        if hw is not None:
            print("\nhighway-env (own venv, 1 thread, IDLE action, resets included):")
            for name, res in hw.items():
                print(f"  {name:<24} {res['steps_per_s']:>8.0f} steps/s ({res['episodes']} episodes)")
            comparable = hw["highway-v0 comparable"]["steps_per_s"]
            print("ratio ReplayEnv / highway-v0 comparable:")
            for name, rate in rates.items():
                print(f"  {name:<12} {rate / comparable:6.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

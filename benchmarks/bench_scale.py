"""Ray scaling on this machine: env steps/s on 1 vs 2 Ray workers, mined scenes/s serial vs 2 Ray workers (issue #31).

Run (on a shared machine, under the benchmark lock); **the default command is the one for the 1.7x target**::

    flock /tmp/safealign-bench.lock python -m benchmarks.bench_scale [--seconds 10] [--scenes 16] \\
        [--envs-per-worker 8] [--mine-scenes 96] [--shard-size N] [--workers 2] [--address ADDRESS] \\
        [--warmup-steps 300] [--deferred-terms auto|with_step|on_read] [--prepare] [--skip-grpo] [--skip-mining]

* **rollouts**: the GRPO / PPO training env (:func:`agents.rl.env.make_group_vec_env`: closed-loop replay env on
  the **SYNTHETIC** bank, ``--scenes`` scenes, ``--view`` observation, normalised actions, ``Monitor``) on a
  :class:`envs.vec.RayVecEnv` with 1 worker owning ``--envs-per-worker`` (k, default 8) envs, then with
  ``--workers`` workers of k envs each (one actor and one CPU per worker; one actor call steps its k envs), stepped
  with seeded random actions (small, so episodes run several steps; resets included) for ``--seconds`` after
  ``--warmup-steps`` vector steps (default 300: :data:`WARMUP_STEPS`); env steps/s = envs x vector steps / wall
  time. An in-process ``DummyVecEnv`` of k envs is timed too (the cost of the actor round trip; SB3's
  ``DummyVecEnv`` deep-copies the infos, which computes the deferred reward terms, read or not). Before timing,
  ``--workers`` x k Ray envs and a ``DummyVecEnv`` over the same envs are stepped with the same seeds and actions
  and their observations, rewards and dones compared (printed check).
  ``--envs-per-worker 1`` gives the one-env-per-actor comparison of the earlier figures below.
* **mining**: ``counterfactual.mine``'s work (:func:`counterfactual.distributed.mine_source`, default miner, lead
  times 1, 2, 3 s) on ``--mine-scenes`` SYNTHETIC bank scenes (seed 0), serially in this process, then on
  ``--workers`` Ray tasks (shards: ``--shard-size`` scenes, default the guided shards of
  :func:`counterfactual.distributed.shards`; the workers warmed up on other scenes first: worker start-up is
  reported apart); the two pair lists are compared row for row (printed check).

A local Ray with ``--workers`` CPUs is started (``--address`` joins a cluster instead). Targets (2 workers on 2
cores): >= 1.7x for both. Two speed-ups are printed: **wall clock**, and the **CPU critical path**, which depends
less on what else the machine runs: per vector step the driver's CPU time (sending, gathering) plus the busiest
worker's (``RayVecEnv.worker_cpu_times``); for mining the serial run's CPU time over the busiest worker's. It is the
speed-up when each process has a core of its own. For rollouts it is printed twice: main threads only (the driver's
loop, the envs' work and the calls' (de)serialisation; ``in step``: the busiest worker's main thread inside the
envs' steps; ``bg ms``: the other threads, Ray's, of the driver and the busiest worker, whose CPU grows with the time
a worker waits) and whole processes. ``prepare``: the busiest worker's main thread in ``prepare`` calls
(``--prepare``); the last line of each table counts the env steps whose deferred reward terms (``pdms``,
``sp_pdms`` ...) the workers computed with the step, when read, or never (``--deferred-terms``).

**Quiet machine, deferred terms, warm envs** (c1993c4, 2026-12-07 10:56-11:04 UTC, load 0.7-1.6, nothing else
running; the default command twice, then ``--envs-per-worker 16 --skip-mining``)::

    rollouts, plain env steps (env steps/s; driver ms / worker ms per vector step)
      DummyVecEnv, 8 envs       609.5 / 603.7
      Ray 1 worker x 8         1430.1 / 1565.1   driver 0.63 / 0.54  worker 4.48 / 4.16
      Ray 2 workers x 8        2143.5 / 2091.6   driver 0.95 / 0.98  worker 4.90 / 4.96
      speed-up: wall clock 1.50x / 1.34x, CPU critical path 1.74x / 1.58x main threads
    rollouts, GRPO steps
      Ray 1 worker x 8          350.3 / 390.9
      Ray 2 workers x 8         599.7 / 591.0
      speed-up: wall clock 1.71x / 1.51x, CPU critical path 1.93x / 1.71x
    mining 96 scenes (219 pairs): serial 19.49 / 19.48 scenes/s, 2 workers 31.03 / 32.48: wall 1.59x / 1.67x,
    CPU critical path 1.64x / 1.74x; pairs and rollouts equal to the serial runs: True
    --envs-per-worker 16: plain 1701.9 -> 2723.2 (wall 1.60x, CPU path 1.79x); GRPO 410.2 -> 666.5 (1.62x, 1.80x)

The 1.7x wall-clock target is met by one GRPO-step run and by no plain-step or mining run. On 2 cores the driver is
a third busy process (0.54-0.63 ms per vector step beside one worker, 0.95-1.23 ms beside two) and each worker's step
slows beside the other (4.2-4.5 -> 4.9-5.0 ms per 8 envs); the lumpy-step bound below (about 1.6x with unread terms)
is what the plain-step runs reach. More envs per worker amortise the driver (1.60x with 16).

**Deferred terms left in the worker, warm envs, LOADED machine** (2026-12-07 06:43-06:58 UTC, load average 10.7 ->
6.3: other engineers' trainings, benchmarks and test suites on the 2 cores; the wall-clock ratios below measure the
load, not Ray; the lead re-measures quietly). What changed (commits after 1b2efd3): the workers no longer compute a
step's deferred reward terms when nothing reads them (``RayVecEnv(deferred_terms="auto")``: the plain-step rows;
GRPO steps feed ``DrivingMetrics``, which reads them every step, so there they are computed with the step as before),
and every configuration warms up 300 vector steps (was 10: an env's step costs about 3x more while its caches are
cold, which charged the 2-worker configuration, whose envs are younger after the same seconds). Default command at
1034b19 (06:54 UTC, load 6.7 -> 9.0, 4 m 34 s)::

    rollouts: 2 Ray workers x 8 envs == DummyVecEnv over the same 16 envs (same seeds and actions, 40 steps): True
    rollouts, plain env steps, SYNTHETIC bank, state view:
                         env steps/s  steps  driver ms  worker ms  in step  bg ms  CPU-path steps/s  (processes)
      DummyVecEnv, 8 envs      288.7   2888      16.58       0.00     0.00   0.05             482.7        481.1
      Ray 1 worker x 8         939.0   9392       1.12       5.88     4.73   1.01            1141.6        997.6
      Ray 2 workers x 8        819.5   8208       1.63       7.67     6.25   1.40            1721.5       1495.9
      deferred reward terms of the 2 workers' env steps: with the step 0, when read 0, never (not read) 13008
      speed-up: wall clock 0.87x, CPU critical path 1.51x main threads, 1.50x processes (target >= 1.7x)
    rollouts, GRPO steps (score a group of 8, step, DrivingMetrics):
      DummyVecEnv, 8 envs      125.4   1256      28.11       0.00     0.00   0.19             284.6        282.7
      Ray 1 worker x 8         204.3   2048       3.02      23.48     5.24   2.42             301.9        276.6
      Ray 2 workers x 8        229.9   2320       4.07      25.19     5.63   3.23             546.8        492.4
      deferred reward terms: with the step 7104, when read 16 (the first step of each run), never 0
      speed-up: wall clock 1.13x, CPU critical path 1.81x main threads, 1.78x processes (target >= 1.7x)
    mining 96 scenes (219 pairs): serial 13.80 scenes/s, 2 Ray workers 10.50 (12 shards); CPU serial 5.9 s, per
    worker 3.3, 3.5 s: wall 0.76x, CPU critical path 1.68x; pairs equal: True

Same hour, plain steps only (``--skip-grpo --skip-mining``): 06:43 UTC at 45937a4 (``prepare_episodes`` then on by
default; load 10.7 -> 8.8): 814.0 / 664.2 env steps/s, CPU critical path **1.58x**; GRPO steps CPU path **1.71x**;
``--no-prepare`` (now the default; 06:47, load 8.8): 803.5 -> **1216.0** env steps/s, wall **1.51x**, CPU critical
path **1.82x**; ``--deferred-terms with_step --no-prepare`` (the workers compute every step's terms, as before;
06:50, load 7.9): 372.9 / 300.6 env steps/s, CPU critical path 1.61x. Read: leaving unread terms in the worker makes
a Ray worker of 8 envs step about 2.5x faster on its core (worker main thread 16.4 -> 6.6 ms per vector step of 8,
of which the envs' steps 4.4 -> 5.2 ms; the rest is now the calls' (de)serialisation and Ray's task loop, about
1.4 ms); the 2-vs-1 ratio of the CPU critical path moved between 1.50x and 1.82x across runs of one configuration at
this load, so it does not show whether the change moved the ratio; the wall-clock target is to be checked on a
quiet machine. A cause that stays on a quiet machine (measured in process, two 8-env workers stepped alternately,
deferred terms unread, 300 vector steps after 100 of warm-up): a vector step waits for the slower worker, and the
replay env's step cost is lumpy (resets, a new episode's reference planning), so the mean of the slower of two
workers' step times is 1.27x the mean (1.23x with 16 envs per worker, 1.13x when the workers also compute the
deferred terms, which are evenly spread): with unread terms 2 workers cannot beat about 1.6x wall even with free
cores and no Ray cost. Two more runs at dd7e9c5 (07:01-07:07 UTC, load 6.4 -> 10.1): the default command without
mining: plain steps 943.9 / 1091.1 env steps/s, wall 1.16x, CPU critical path **1.41x** (the envs' step CPU per
vector step rose from 4.90 to 6.76 ms with 2 workers), GRPO steps 247.0 / 286.0, wall 1.16x, CPU critical path
**1.92x** (step CPU 5.79 / 5.73 ms: no rise); ``--skip-grpo --skip-mining --warmup-steps 1500``: 894.0 / 1224.2 env
steps/s, wall **1.37x**, CPU critical path **1.69x** (step CPU 4.74 / 5.42 ms). The rise of a worker's step CPU
beside a second worker shrinks with a longer warm-up and is absent from GRPO steps (whose group scoring has planned
the references the step reads): part of it is the envs' caches still filling during the timed seconds (the 2-worker
envs each step less often in that time), not only the two cores slowing each other. ``--prepare`` moves a new episode's reference planning out of the step (it paid 15 % for 1
worker over vector steps 50-350, cold caches; nothing once the caches are warm: 0.07 ms per step).

**Several envs per worker, quiet machine** (2026-12-07 04:56 UTC, load average 0.7, nothing else running, the
default command at commit f9e0a8a; 1 m 51 s)::

    rollouts: 2 Ray workers x 8 envs == DummyVecEnv over the same 16 envs (same seeds and actions, 40 steps): True
    rollouts, plain env steps, SYNTHETIC bank, state view:
                         env steps/s  steps  episodes  driver ms  worker ms  in step  bg ms  CPU-path steps/s  (processes)
      DummyVecEnv, 8 envs      322.0   3224       375      24.82       0.00     0.00   0.07             322.3        321.5
      Ray 1 worker x 8         249.8   2504       291       1.25      29.67    14.09   1.35             258.7        247.9
      Ray 2 workers x 8        326.4   3264       381       1.58      36.57    20.12   1.91             419.4        399.5
      speed-up: wall clock 1.31x, CPU critical path 1.62x main threads, 1.61x processes (target >= 1.7x)
    rollouts, GRPO steps (score a group of 8, step):
      DummyVecEnv, 8 envs      310.9   3112       377      25.69       0.00     0.00   0.06             311.4        310.7
      Ray 1 worker x 8         193.8   1944       233       2.81      36.58    16.38   2.41             203.1        191.4
      Ray 2 workers x 8        274.8   2752       331       3.74      42.00    20.84   3.21             349.8        326.9
      speed-up: wall clock 1.42x, CPU critical path 1.72x main threads, 1.71x processes (target >= 1.7x)
    mining 96 scenes (219 pairs): serial 16.34 scenes/s, 2 Ray workers 23.04 (12 shards): wall 1.41x, CPU critical
    path 1.47x; pairs equal: True

Mining alone right after (``--skip-rollouts``): guided shards 1.64x wall (CPU critical path 1.70x), ``--shard-size
8`` 1.66x (1.75x). **Target (>= 1.7x wall) not met**: with 8 envs per worker the driver's share is small (1.3-1.6 ms
per vector step), but a worker's CPU per vector step grows from 29.7 ms alone to 36.6 ms beside a second worker
(and 8 envs in one process step at 322/s where one env stepped at 553/s): the two processes slow each other on this
2-core machine (caches / memory bandwidth; not verified further). Workers also compute the infos' deferred reward
terms when pickling them (work an in-process env skips).

**Several envs per worker (2026-12-07, before the quiet run), NOT on a quiet machine**: the 2 cores were shared with other
engineers' runs (three ``bench_ppo`` runs, pipeline runs, test suites: load average 14-19 throughout), so our
processes got a small, varying share of the cores. The wall-clock ratios below say nothing about Ray here, and even
the CPU times swing by 20-30 % between runs of the same configuration (cache and memory contention): the
quiet-machine figure is still to be measured, with the default command::

    flock /tmp/safealign-bench.lock python -m benchmarks.bench_scale      # k = 8 envs per worker

    03:56 UTC, load average 15.5 -> 14.1:
    rollouts: 2 Ray workers x 8 envs == DummyVecEnv over the same 16 envs (same seeds and actions, 40 steps): True
    rollouts, plain env steps, SYNTHETIC bank, state view:
                         env steps/s  steps  episodes  driver ms  worker ms  bg ms  CPU-path steps/s  (processes)
      DummyVecEnv, 8 envs       50.4    512        59      48.24       0.00   0.34             165.8        164.7
      Ray 1 worker x 8          54.3    544        61       1.07      47.09   1.85             166.1        159.9
      Ray 2 workers x 8         49.7    512        59       1.48      60.77   3.08             257.0        244.9
      speed-up 2 workers / 1 worker (8 envs each): wall clock 0.92x, CPU critical path 1.55x main threads,
      1.53x processes (target >= 1.7x)
    rollouts, GRPO steps (score a group of 8, step), SYNTHETIC bank, state view:
      DummyVecEnv, 8 envs       47.3    480        57      49.51       0.00   0.35             161.6        160.5
      Ray 1 worker x 8          59.3    600        70       2.68      53.19   3.15             143.2        135.6
      Ray 2 workers x 8         43.3    448        57       4.31      72.38   5.78             208.6        194.0
      speed-up 2 workers / 1 worker (8 envs each): wall clock 0.73x, CPU critical path 1.46x main threads,
      1.43x processes (target >= 1.7x)
    mining 96 SYNTHETIC bank scenes (219 pairs): serial 6.14 scenes/s (15.6 s), 2 Ray workers 4.76 scenes/s (20.2 s,
    12 shards); CPU: serial 6.4 s; per Ray worker 3.9, 4.1 s; CPU critical path 1.56x; pairs equal: True

Other runs the same hour (same load): plain env steps CPU critical path **1.98x** main threads / 1.94x processes
(``--seconds 8 --skip-mining --skip-grpo``, 03:44 UTC: 1 worker 133.6, 2 workers 264.5 CPU-path steps/s; driver
1.16 / 1.47 ms and worker 58.7 / 59.0 ms per vector step of 8 / 16 envs); 1.65x processes for plain steps, 1.73x for
GRPO steps and **1.88x** for mining with guided shards off (8 shards of 12, 03:36 UTC); 04:05-04:13 UTC, plain env
steps only: k = 16 1.67x main threads / 1.64x processes, k = 8 1.33x / 1.29x, then k = 8 2.39x / 2.33x (that run's
1-worker case was the slow one: worker main thread 79.9 ms per vector step, of which 50.5 ms inside the envs'
``step``; the rest is the calls' (de)serialisation, which computes the infos' deferred reward terms, and Ray's task
loop). Over these runs the plain-step CPU critical path of k = 8 ranged 1.29x-2.39x: noise, not a figure. What
k = 8 changed, in the numbers the load affects least: the driver's CPU per vector step is 1.1-1.7 ms (main thread)
for 8-16 env steps, against 1.2-1.7 ms for *one* env step per worker before: the driver's share of the round trip
is amortised over k steps. A worker's main-thread CPU per env step in Ray was 5.7-10.0 ms against 6.0-7.0 ms for
the same env in a ``DummyVecEnv`` (the worker also computes the deferred reward terms when it pickles the infos),
and a worker of 2 used 0.83-1.51x the CPU per step of a worker alone: at this load these swings hide whatever the
two workers cost each other, which the wall clock of a quiet machine will show. Reasoned estimate for the quiet
machine (not measured): per vector step a worker spends about 8 x 1.9 ms and the driver about 0.5 ms, so 2 workers
against 1 are bounded by about 1.9x wall clock if the two cores do not slow each other, and by the quiet CPU
critical path otherwise.

Before (one env per worker, ``--envs-per-worker 1`` now), measured 2026-12-07 02:51 UTC on a **quiet** machine
(load average 1.0, nothing else running):
plain env steps DummyVecEnv 552.6 / Ray 1 worker 248.1 / 2 workers 325.7 env steps/s (wall 1.31x, CPU critical path
1.63x); GRPO steps 438.4 / 162.7 / 222.8 (1.37x, 1.69x); mining 96 scenes serial 16.50 scenes/s, 2 workers 27.02
(1.64x wall, 1.70x CPU critical path); outputs equal to the serial / DummyVecEnv runs. The env step got cheaper
(``envs.sim.terms.DeferredTerms``), so the actor round trip now costs more than the step it carries.

Measured 2026-12-06 23:28 UTC, 2 CPU cores **shared with other engineers' processes** (load average 7.9 at the start,
6.7 at the end: our processes got a fraction of the two cores, so the wall-clock numbers say more about the load than
about Ray), Ray 2.60, CPU torch::

    flock /tmp/safealign-bench.lock python -m benchmarks.bench_scale

    rollouts: 2 Ray workers == DummyVecEnv (same seeds and actions, 40 steps): True
    rollouts, plain env steps, SYNTHETIC bank, state view:
                                          env steps/s   steps  episodes  driver ms  worker ms  CPU-path steps/s
      DummyVecEnv, 1 env (in process)           155.9    1561       179       4.37       0.00             228.7
      RayVecEnv, 1 worker                       156.7    1568       180       1.18       4.78             168.0
      RayVecEnv, 2 workers                      133.0    1330       166       1.70       5.78             267.6
      speed-up 2 workers / 1 worker: wall clock 0.85x, CPU critical path 1.59x (target >= 1.7x)
    rollouts, GRPO steps (score a group of 8, step), SYNTHETIC bank, state view:
      DummyVecEnv, 1 env (in process)           150.6    1508       172       3.78       0.00             264.3
      RayVecEnv, 1 worker                        94.3     944       112       2.22       6.79             110.9
      RayVecEnv, 2 workers                       90.1     902       109       3.12       8.33             174.7
      speed-up 2 workers / 1 worker: wall clock 0.96x, CPU critical path 1.57x (target >= 1.7x)
    mining 96 SYNTHETIC bank scenes (219 pairs): serial 10.36 scenes/s (9.3 s), 2 Ray workers 8.22 scenes/s
    (11.7 s); worker start-up (not in the rate) 5.3 s
    CPU: serial 6.4 s; per Ray worker 3.9, 3.9 s
    speed-up: wall clock 0.79x, CPU critical path (serial CPU / busiest worker's CPU) 1.62x (target >= 1.7x);
    pairs equal to the serial run's, row for row: True

Neither target is met here. The outputs match (rollouts equal to ``DummyVecEnv``'s, pairs equal to the serial
run's). What limits the speed-up: the env step is short (about 4.4 ms of CPU), and a Ray round trip costs the
driver 1.2-1.7 ms per vector step and each worker about 0.4-1 ms more CPU per step than the same env in process, so
at best about 1.6x on 2 workers; GRPO steps make two round trips (group scoring, then the step). The wall clock
stayed at or below 1x because the two cores were busy with other processes (an earlier run at load average 4.5 gave
1.20x wall clock for plain steps). Longer steps (CARLA: 10 ticks of a live server per step) amortise the round trip.

Quiet machine (2026-12-06 23:59 UTC, load average 0.8, nothing else running; ``python -m benchmarks.bench_scale``):
plain env steps 2 workers / 1 worker **1.15x** wall clock (CPU critical path 1.44x); GRPO steps **1.45x** wall (CPU
path 1.79x); mining 96 scenes 16.6 -> 26.6 scenes/s, **1.60x** wall (CPU path 1.63x); outputs equal to the serial
runs (both checks True). In process, one ``DummyVecEnv`` env does 527 plain steps/s against 233 for 2 Ray workers:
on one 2-core machine Ray pays only for steps longer than these.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402


def _actions(rng: np.random.Generator, n: int) -> np.ndarray:
    """``(n, 8, 2)`` normalised kinematic actions in [-0.3, 0.3] (mostly gentle: episodes last several steps)."""
    return rng.uniform(-0.3, 0.3, (n, 8, 2)).astype(np.float32)


WARMUP_STEPS = 300
"""Default ``--warmup-steps``: vector steps each rollout configuration runs before it is timed, so every env has
stepped as often (``envs_per_worker`` x 300 env steps per worker) when the clock starts. An env's step gets cheaper as
it runs (each env caches per scene and start frame the driving metrics' reference, the scenes and their scoring
problems: about 15 ms per 8 env steps over the first 300 vector steps, 5 ms after them, deferred terms unread); with
a short warm-up a configuration that steps more envs in the same time runs them younger, hence slower per step,
which understates its speed-up (the figures before 2026-12-07 06:50 UTC used 10). Training runs 10^5 and more
steps: the warm figure is its rate."""

ENVS_PER_WORKER = 8
"""Default ``--envs-per-worker``: envs per Ray actor (and in the ``DummyVecEnv`` row)."""

DEFERRED: dict[str, Any] = {"deferred_terms": "auto", "prepare_episodes": False}
"""``--deferred-terms`` / ``--prepare``: :class:`envs.vec.RayVecEnv`'s ``deferred_terms`` (``with_step``: the
workers compute a step's deferred reward terms whether or not they are read, as before the option existed) and
``prepare_episodes``."""

VIEW = {"view": "state"}
"""The observation of the rollout env (``--view``): ``bev`` (the replay env's default 128 px RGB BEV + state, what the
VLA sees) or ``state`` (state only, the MLP agent's env)."""


def _venv(backend: str, n_envs: int, scenes: int, address: str | None, envs_per_worker: int = 1) -> Any:
    from agents.rl.env import GroupEnvConfig, make_group_vec_env
    from envs.replay_env import EnvConfig

    options = ({"address": address, "num_cpus_per_worker": 1.0, "envs_per_worker": envs_per_worker, **DEFERRED}
               if backend == "ray" else None)
    env = EnvConfig() if VIEW["view"] == "bev" else EnvConfig(bev=None)
    return make_group_vec_env(GroupEnvConfig(num_scenes=scenes, seed=0, env=env), n_envs=n_envs, seed=0,
                              backend=backend, ray_options=options)


def rollout_rate(backend: str, n_envs: int, scenes: int, seconds: float, address: str | None,
                 group: int = 0, envs_per_worker: int = 1, warmup: int = 10) -> dict[str, float]:
    """Env steps/s of ``n_envs`` envs on ``backend`` (Ray: ``envs_per_worker`` per actor) over ``seconds`` (after
    ``warmup`` vector steps). ``group`` > 0: each step is GRPO's (``collect_rollouts``): first a group of ``group``
    candidate trajectories per env scored by the env (``call_each(venv, "score_group", ...)``, concurrent across
    workers, one batch per worker), then the step, whose infos feed GRPO's :class:`agents.rl.metrics.DrivingMetrics`
    (which reads every step's ``pdms`` / ``sp_pdms``: the deferred reward terms). ``group`` 0: plain steps, infos not
    read (the Ray workers then never compute the deferred terms; the ``DummyVecEnv`` does, in SB3's deepcopy of the
    infos)."""
    from agents.rl.env import call_each
    from agents.rl.metrics import DrivingMetrics
    from envs.wrappers import kinematic_trajectories

    venv = _venv(backend, n_envs, scenes, address, envs_per_worker)
    try:
        rng = np.random.default_rng(0)
        metrics = DrivingMetrics()

        def one_step() -> np.ndarray:
            if group:
                trajs = kinematic_trajectories(_actions(rng, n_envs * group), 20.0, 0.6).reshape(n_envs, group, 8, 3)
                call_each(venv, "score_group", [(t,) for t in trajs])
            _, _, dones, infos = venv.step(_actions(rng, n_envs))
            if group:
                metrics.update(infos, dones)
            return dones

        venv.reset()
        for _ in range(warmup):
            one_step()
        ray_backend = backend == "ray"
        workers0 = ((venv.worker_cpu_times(), venv.worker_cpu_times(True), venv.worker_cpu_times(in_step=True),
                     venv.worker_cpu_times(in_prepare=True)) if ray_backend else ([0.0], [0.0], [0.0], [0.0]))
        steps, episodes, start = 0, 0, time.perf_counter()
        cpu0, thread0 = time.process_time(), time.thread_time()
        while time.perf_counter() - start < seconds:
            episodes += int(np.sum(one_step()))
            steps += n_envs
        elapsed = time.perf_counter() - start
        driver, driver_main = time.process_time() - cpu0, time.thread_time() - thread0
        workers1 = ((venv.worker_cpu_times(), venv.worker_cpu_times(True), venv.worker_cpu_times(in_step=True),
                     venv.worker_cpu_times(in_prepare=True)) if ray_backend else ([0.0], [0.0], [0.0], [0.0]))
        terms = venv.worker_terms_counts() if ray_backend else None
    finally:
        venv.close()
    workers, workers_main, workers_step, workers_prepare = ([b - a for a, b in zip(w0, w1)]
                                                            for w0, w1 in zip(workers0, workers1))
    vector_steps = steps / n_envs
    # CPU critical path of one vector step: the driver's CPU (sending, gathering) plus the busiest worker's (the
    # workers step concurrently while the driver waits): the wall time per step when every process has its core.
    # Twice: whole processes, and main threads only (the envs' work and the calls' (de)serialisation, without Ray's
    # background threads, whose CPU grows with the wall time a worker waits: large on a loaded machine).
    critical = (driver + max(workers)) / vector_steps
    critical_main = (driver_main + max(workers_main)) / vector_steps
    busiest = int(np.argmax(workers_main))
    return {"steps_per_s": steps / elapsed, "steps": steps, "episodes": episodes, "seconds": elapsed,
            "driver_ms": 1e3 * driver_main / vector_steps, "worker_ms": 1e3 * workers_main[busiest] / vector_steps,
            "in_step_ms": 1e3 * workers_step[busiest] / vector_steps,
            "prepare_ms": 1e3 * workers_prepare[busiest] / vector_steps,
            "background_ms": 1e3 * (workers[busiest] - workers_main[busiest] + driver - driver_main) / vector_steps,
            "cpu_steps_per_s": n_envs / critical, "cpu_main_steps_per_s": n_envs / critical_main, "terms": terms}


def rollouts_equal(n_envs: int, scenes: int, address: str | None, steps: int = 40, envs_per_worker: int = 1) -> bool:
    """Ray workers (``envs_per_worker`` envs each) and a ``DummyVecEnv`` over the same ``n_envs`` envs, same seeds
    and actions: equal observations, rewards and dones."""
    ray_env = _venv("ray", n_envs, scenes, address, envs_per_worker)
    dummy = _venv("dummy", n_envs, scenes, None)
    try:
        rng = np.random.default_rng(1)
        a, b = ray_env.reset(), dummy.reset()
        same = all(np.array_equal(a[k], b[k]) for k in a)
        for _ in range(steps):
            actions = _actions(rng, n_envs)
            (oa, ra, da, _), (ob, rb, db, _) = ray_env.step(actions), dummy.step(actions)
            same &= all(np.array_equal(oa[k], ob[k]) for k in oa)
            same &= np.array_equal(ra.astype(np.float32), rb) and np.array_equal(da, db)
        return bool(same)
    finally:
        ray_env.close()
        dummy.close()


def _plain_rows(pairs: list) -> list:
    from counterfactual.dataset import pair_to_row

    def plain(v: Any) -> Any:
        if isinstance(v, float) and v != v:
            return "NaN"
        if isinstance(v, np.ndarray):
            return plain(v.tolist())
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return [plain(pair_to_row(p)) for p in pairs]


def mining_rates(num_scenes: int, workers: int, address: str | None, shard_size: int | None = None) -> dict[str, Any]:
    """Scenes/s serial and on ``workers`` Ray tasks (``shard_size`` scenes each), with the pairs compared."""
    from counterfactual.distributed import mine_source, shards, stats_and_pairs
    from counterfactual.miner import MinerConfig
    from envs.scenes.sources import open_source

    config = MinerConfig(seed=0)
    warm = open_source("bank", num_scenes=2 * workers, seed=99)
    mine_source(warm, config)  # this process: imports, compiled kernels
    start = time.perf_counter()
    mine_source(warm, config, "ray", workers, address, shard_size=2)  # the workers: start-up, imports, kernels
    startup = time.perf_counter() - start
    source = open_source("bank", num_scenes=num_scenes, seed=0)
    start, cpu0 = time.perf_counter(), time.process_time()
    serial = mine_source(source, config)
    t_serial, cpu_serial = time.perf_counter() - start, time.process_time() - cpu0
    source = open_source("bank", num_scenes=num_scenes, seed=0)  # a fresh cache: no scene generated in advance
    cpu_by_worker: dict[int, float] = {}
    start = time.perf_counter()
    distributed = mine_source(source, config, "ray", workers, address, shard_size, cpu_by_worker=cpu_by_worker)
    t_ray = time.perf_counter() - start
    pairs_serial, pairs_ray = stats_and_pairs(serial)[1], stats_and_pairs(distributed)[1]
    return {"serial_scenes_per_s": num_scenes / t_serial, "ray_scenes_per_s": num_scenes / t_ray,
            "serial_s": t_serial, "ray_s": t_ray, "worker_startup_s": startup, "pairs": len(pairs_serial),
            "serial_cpu_s": cpu_serial, "busiest_worker_cpu_s": max(cpu_by_worker.values()),
            "worker_cpu_s": sorted(cpu_by_worker.values()),
            "equal": _plain_rows(pairs_serial) == _plain_rows(pairs_ray),
            "shards": len(shards(num_scenes, workers, shard_size))}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its numbers."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0, help="timed seconds per rollout configuration")
    p.add_argument("--scenes", type=int, default=16, help="bank scenes of the rollout env")
    p.add_argument("--mine-scenes", type=int, default=96, help="bank scenes to mine")
    p.add_argument("--workers", type=int, default=2, help="Ray workers of the parallel runs")
    p.add_argument("--envs-per-worker", type=int, default=ENVS_PER_WORKER,
                   help="envs each Ray actor steps in one call (RayVecEnv envs_per_worker); the DummyVecEnv row "
                        "runs as many in process")
    p.add_argument("--shard-size", type=int, default=None,
                   help="mining: scenes per Ray task (default: counterfactual.distributed.shards' choice)")
    p.add_argument("--address", default=None, help="Ray cluster to join (default: a local Ray with --workers CPUs)")
    p.add_argument("--group", type=int, default=8, help="GRPO steps: candidates scored per env and step")
    p.add_argument("--view", choices=("bev", "state"), default="state", help="rollout env observation (see VIEW)")
    p.add_argument("--deferred-terms", choices=("auto", "with_step", "on_read"), default="auto",
                   help="RayVecEnv deferred_terms (see DEFERRED)")
    p.add_argument("--warmup-steps", type=int, default=WARMUP_STEPS,
                   help="vector steps before timing, the same for every configuration (see WARMUP_STEPS)")
    p.add_argument("--prepare", action="store_true", help="RayVecEnv prepare_episodes=True (see DEFERRED)")
    p.add_argument("--skip-rollouts", action="store_true")
    p.add_argument("--skip-grpo", action="store_true", help="time plain env steps only")
    p.add_argument("--skip-mining", action="store_true")
    args = p.parse_args(argv)
    if args.warmup_steps < 0:
        p.error(f"--warmup-steps: expected >= 0, got {args.warmup_steps}")
    if args.envs_per_worker < 1:
        p.error(f"--envs-per-worker: expected >= 1, got {args.envs_per_worker}")
    VIEW["view"] = args.view
    DEFERRED.update(deferred_terms=args.deferred_terms, prepare_episodes=args.prepare)
    from envs.vec.cluster import init_ray

    ray = init_ray(args.address, num_cpus=args.workers, object_store_memory=200 * 1024 ** 2, log_to_driver=False)
    print(f"Ray {ray.__version__}: {ray.cluster_resources().get('CPU', 0):g} CPUs; os.cpu_count() = {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f} (other processes share this machine)")
    k, n = args.envs_per_worker, args.workers
    if not args.skip_rollouts:
        same = rollouts_equal(n * k, args.scenes, args.address, envs_per_worker=k)
        print(f"rollouts: {n} Ray workers x {k} envs == DummyVecEnv over the same {n * k} envs (same seeds and "
              f"actions, 40 steps): {same}")
        kinds = [(0, "plain env steps")]
        if not args.skip_grpo:
            kinds.append((args.group, f"GRPO steps (score a group of {args.group}, step)"))
        for group, what in kinds:
            w = args.warmup_steps
            dummy = rollout_rate("dummy", k, args.scenes, args.seconds, None, group, warmup=w)
            one = rollout_rate("ray", k, args.scenes, args.seconds, args.address, group, k, warmup=w)
            many = rollout_rate("ray", n * k, args.scenes, args.seconds, args.address, group, k, warmup=w)
            print(f"rollouts, {what}, SYNTHETIC bank, {args.view} view:")
            print(f"  {'':34s} {'env steps/s':>12s} {'steps':>7s} {'episodes':>9s} {'driver ms':>10s} "
                  f"{'worker ms':>10s} {'in step':>8s} {'prepare':>8s} {'bg ms':>7s} {'CPU-path steps/s':>17s} "
                  f"{'(processes)':>12s}")
            for name, r in ((f"DummyVecEnv, {k} envs (in process)", dummy), (f"RayVecEnv, 1 worker x {k} envs", one),
                            (f"RayVecEnv, {n} workers x {k} envs", many)):
                print(f"  {name:34s} {r['steps_per_s']:12.1f} {r['steps']:7d} {r['episodes']:9d} "
                      f"{r['driver_ms']:10.2f} {r['worker_ms']:10.2f} {r['in_step_ms']:8.2f} {r['prepare_ms']:8.2f} "
                      f"{r['background_ms']:7.2f} "
                      f"{r['cpu_main_steps_per_s']:17.1f} {r['cpu_steps_per_s']:12.1f}")
            t = many["terms"]
            print(f"  deferred reward terms of the {n} workers' env steps (warm-up included): computed with the step "
                  f"{t['with_step']}, when read {t['on_read']}, never (not read) {t['held'] - t['on_read']}")
            print(f"  speed-up {n} workers / 1 worker ({k} envs each): wall clock "
                  f"{many['steps_per_s'] / one['steps_per_s']:.2f}x, CPU critical path "
                  f"{many['cpu_main_steps_per_s'] / one['cpu_main_steps_per_s']:.2f}x main threads, "
                  f"{many['cpu_steps_per_s'] / one['cpu_steps_per_s']:.2f}x processes (target >= 1.7x)", flush=True)
    if not args.skip_mining:
        m = mining_rates(args.mine_scenes, n, args.address, args.shard_size)
        print(f"mining {args.mine_scenes} SYNTHETIC bank scenes ({m['pairs']} pairs): serial "
              f"{m['serial_scenes_per_s']:.2f} scenes/s ({m['serial_s']:.1f} s), {n} Ray workers "
              f"{m['ray_scenes_per_s']:.2f} scenes/s ({m['ray_s']:.1f} s, {m['shards']} shards); worker start-up "
              f"(not in the rate) {m['worker_startup_s']:.1f} s")
        print(f"CPU: serial {m['serial_cpu_s']:.1f} s; per Ray worker "
              f"{', '.join(f'{c:.1f}' for c in m['worker_cpu_s'])} s")
        print(f"speed-up: wall clock {m['ray_scenes_per_s'] / m['serial_scenes_per_s']:.2f}x, CPU critical path "
              f"(serial CPU / busiest worker's CPU) {m['serial_cpu_s'] / m['busiest_worker_cpu_s']:.2f}x "
              f"(target >= 1.7x); pairs equal to the serial run's, row for row: {m['equal']}")
    ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""PDM scorer throughput: ``python -m benchmarks.bench_scorer [--groups 5] [--seconds 2.0]``.

Prints candidates scored per second by the vectorized scorer (``rewards.pdm.score_states``) and by the shapely
oracle (``rewards.reference.score_states_reference``) on the same inputs, and their ratio, with tracking on and off.

Workload (one decision time, NAVSIM sizes): G = 16 candidates of 8 poses at 0.5 s (4 s; 41 states at 10 Hz), 20
objects (14 vehicles both ways, 3 pedestrians, 3 cones) observed for 50 steps, a 4-lane road crossing a junction.
The PDM-Closed-like reference planner runs once per problem before timing (cached, as in training) and its masked
progress is passed to both scorers. Each timed call = ``simulate_candidates`` (tracking on or off) + scoring. Two
vectorized figures: ``warm`` re-scores the same ``ScoringProblem`` (its object boxes are cached, as for several
groups at one decision time) and ``cold`` builds a fresh ``ScoringProblem`` per call (object boxes rebuilt; the map
index stays cached per map, as across decision times of one scene). Single process, BLAS/OpenMP pinned to 1 thread;
rates are per CPU second of the process.
Goal: vectorized >= 100x the oracle and >= 20k candidates/s on one core.

``--stages`` also prints a per-stage breakdown (CPU time per G=16 group, best of several rounds) of the compiled
pipeline on the first problem: simulation, per-problem setup, ego boxes, map areas, contacts (NC + TTC), comfort
and the DAC/DDC/EP/PDMS aggregation.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402

import numpy as np  # noqa: E402

from rewards.config import PDMConfig  # noqa: E402
from rewards.pdm import score_states  # noqa: E402
from rewards.scorer import reference_for  # noqa: E402
from rewards.reference import score_states_reference  # noqa: E402
from rewards.tracking import simulate_candidates  # noqa: E402
from rewards.types import AgentsFuture, EgoState, MapGeometry, ScoringProblem  # noqa: E402

NUM_CANDIDATES = 16
NUM_AGENTS = 20


def _rect(x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])


def benchmark_problem(seed: int, config: PDMConfig) -> ScoringProblem:
    """A synthetic decision time: ego eastbound at 8-12 m/s in lane 1 of a 4-lane road (2 lanes each way) that
    crosses a junction at x in [40, 60] m; 20 objects placed around it (deterministic for ``seed``)."""
    rng = np.random.default_rng(seed)
    lane_y = {1: -1.75, 2: -5.25, 3: 1.75, 4: 5.25}  # 1, 2 eastbound (on route); 3, 4 westbound
    geometry = MapGeometry(
        drivable_areas=(_rect(-200, 300, -7.0, 7.0), _rect(40, 60, -150, 150)),
        lane_polygons=tuple(_rect(-200, 300, y - 1.75, y + 1.75) for y in lane_y.values()),
        lane_ids=np.array(list(lane_y)),
        route_lane_ids=(1, 2),
        route=np.array([[-200.0, -1.75], [300.0, -1.75]]),
        intersections=(_rect(40, 60, -7.0, 7.0),),
        speed_limit=13.89,
    )
    speed = rng.uniform(8.0, 12.0)
    ego = EgoState(pose=np.array([0.0, -1.75, 0.0]), velocity=np.array([speed, 0.0]))
    steps = config.num_observation_steps
    time_s = np.arange(steps) * config.sim_dt
    kinds = ["vehicle"] * 14 + ["pedestrian"] * 3 + ["cone"] * 3
    poses = np.zeros((NUM_AGENTS, steps, 3))
    vels = np.zeros((NUM_AGENTS, steps, 2))
    sizes = np.zeros((NUM_AGENTS, 2))
    for n, kind in enumerate(kinds):
        if kind == "vehicle":
            lane = int(rng.integers(1, 5))
            direction = 1.0 if lane in (1, 2) else -1.0
            if lane == 1:  # the ego's lane: a lead or a follower with a plausible gap and speed
                x0 = rng.choice([-1.0, 1.0]) * rng.uniform(15.0, 60.0)
                v = rng.uniform(6.0, 13.0)
            else:
                x0 = rng.uniform(-40.0, 100.0)
                v = direction * rng.uniform(0.0, 13.0)
            vy = rng.normal(0.0, 0.2)
            start = np.array([x0, lane_y[lane] + rng.normal(0.0, 0.2)])
            yaw = 0.0 if direction > 0 else np.pi
            sizes[n] = (rng.uniform(4.2, 5.2), rng.uniform(1.8, 2.1))
        elif kind == "pedestrian":
            start = np.array([rng.uniform(42.0, 58.0), rng.uniform(-9.0, 9.0)])
            v, vy, yaw = 0.0, rng.choice([-1.3, 1.3]), np.pi / 2
            sizes[n] = (0.6, 0.6)
        else:
            start = np.array([rng.uniform(10.0, 80.0), rng.choice([-1.0, 1.0]) * rng.uniform(3.6, 6.8)])
            v = vy = yaw = 0.0
            sizes[n] = (0.5, 0.5)
        poses[n, :, 0] = start[0] + v * time_s
        poses[n, :, 1] = start[1] + vy * time_s
        poses[n, :, 2] = yaw
        vels[n] = (v, vy)
    agents = AgentsFuture(
        ids=np.arange(1, NUM_AGENTS + 1),
        is_static=np.array([k == "cone" for k in kinds]),
        sizes=sizes,
        poses=poses,
        velocities=vels,
        valid=np.ones((NUM_AGENTS, steps), dtype=bool),
    )
    return ScoringProblem(ego=ego, agents=agents, map=geometry, scene_id=f"bench/{seed}")


def benchmark_candidates(problem: ScoringProblem, seed: int, config: PDMConfig) -> np.ndarray:
    """``(16, 8, 3)`` ego-frame candidates: accelerating, braking and lane-changing profiles with noise."""
    rng = np.random.default_rng(seed + 1000)
    t = np.arange(1, config.num_poses + 1) * config.pose_interval
    v0 = float(problem.ego.velocity[0])
    out = np.zeros((NUM_CANDIDATES, config.num_poses, 3))
    for g in range(NUM_CANDIDATES):
        accel = rng.uniform(-3.0, 2.0)
        x = np.maximum(v0 * t + 0.5 * accel * t**2, 0.0)
        x = np.maximum.accumulate(x)
        target = rng.choice([0.0, 0.0, 3.5, -3.5, 1.5])
        lateral = target * np.clip(t / 3.0, 0.0, 1.0) ** 2 + rng.normal(0.0, 0.1, t.shape)
        out[g, :, 0] = x
        out[g, :, 1] = lateral
        out[g, :, 2] = np.arctan2(np.gradient(lateral), np.maximum(np.gradient(x), 1e-3))
    return out


def _rate(fn, seconds: float, min_calls: int = 1) -> float:
    """Calls per CPU second of ``fn`` over at least ``seconds`` CPU seconds and ``min_calls`` calls (one warm-up
    call first). CPU time (``time.process_time``) of this single-threaded process, so other load on the machine
    does not count against it."""
    fn()
    calls, start = 0, time.process_time()
    while calls < min_calls or time.process_time() - start < seconds:
        fn()
        calls += 1
    return calls / (time.process_time() - start)


def run(num_groups: int, seconds: float) -> list[dict[str, float]]:
    """Benchmark rows (one per tracking setting), averaged over ``num_groups`` problems."""
    rows = []
    for tracking in (True, False):
        config = PDMConfig(tracking=tracking)
        warm, cold, oracle = [], [], []
        for seed in range(num_groups):
            problem = benchmark_problem(seed, config)
            candidates = benchmark_candidates(problem, seed, config)
            ref = reference_for(problem, config)
            ref_progress = None if ref is None else ref.masked_progress

            def vectorized_warm():
                states = simulate_candidates(problem.ego, candidates, config)
                return score_states(problem, states, config, ref_progress)

            def vectorized_cold():
                fresh = replace(problem)  # new ScoringProblem: per-problem caches miss
                states = simulate_candidates(fresh.ego, candidates, config)
                return score_states(fresh, states, config, ref_progress)

            def reference():
                states = simulate_candidates(problem.ego, candidates, config)
                return score_states_reference(problem, states, config, ref_progress)

            warm.append(_rate(vectorized_warm, seconds) * NUM_CANDIDATES)
            cold.append(_rate(vectorized_cold, seconds) * NUM_CANDIDATES)
            oracle.append(_rate(reference, 0.0, min_calls=1) * NUM_CANDIDATES)
        rows.append(
            {
                "tracking": tracking,
                "warm": float(np.mean(warm)),
                "cold": float(np.mean(cold)),
                "reference": float(np.mean(oracle)),
            }
        )
    return rows


def _cpu_us(fn, reps: int = 200, rounds: int = 5) -> float:
    """Best-of-``rounds`` CPU time of one ``fn()`` call [us] (one warm-up call first)."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(reps):
            fn()
        best = min(best, (time.process_time() - start) / reps)
    return best * 1e6


def stages() -> list[tuple[str, float]]:
    """``(stage, CPU us per G=16 group)`` of the scorer's stages on benchmark problem 0 (tracking on)."""
    from rewards import kernels, pdm
    from rewards.comfort import comfort_score

    config = PDMConfig(tracking=True)
    problem = benchmark_problem(0, config)
    candidates = benchmark_candidates(problem, 0, config)
    states = simulate_candidates(problem.ego, candidates, config)
    data = pdm._problem_data(problem, config.collision_stopped_speed, max(config.ttc_offsets))
    params = problem.ego.params
    yaw = states[..., 2]
    cos_yaw, sin_yaw = np.cos(yaw), np.sin(yaw)
    boxes = (states, cos_yaw, sin_yaw, params.rear_axle_to_center, 0.5 * params.length, 0.5 * params.width)
    corners, centers = kernels.ego_boxes(*boxes)
    speed = np.hypot(states[..., 3], states[..., 4])
    areas = pdm._ego_areas(data.map_index, corners, centers, states)
    ego = kernels.EgoSweep(states, cos_yaw, sin_yaw, centers, corners, speed, areas[0] | areas[1], areas[3],
                           0.5 * float(np.hypot(params.length, params.width)), 0.5 * params.length, 0.5 * params.width)
    contact_args = (ego, data.objects, pdm._contact_rules(config))
    ones = np.ones(NUM_CANDIDATES)
    index = data.map_index
    aggregate_args = (ones, ones, ones, areas[1], areas[2], centers, index._kernel_route, index._kernel_route_s, np.nan,
                      pdm._aggregate_rules(config))
    no_track = PDMConfig(tracking=False)
    return [
        ("simulate (tracking on)", _cpu_us(lambda: simulate_candidates(problem.ego, candidates, config))),
        ("simulate (tracking off)", _cpu_us(lambda: simulate_candidates(problem.ego, candidates, no_track))),
        ("score_states (warm problem)", _cpu_us(lambda: score_states(problem, states, config))),
        ("  per-problem setup (cold)", _cpu_us(lambda: pdm._problem_data(replace(problem), 0.05, 9))),
        ("  ego boxes + cos/sin", _cpu_us(lambda: kernels.ego_boxes(states, np.cos(yaw), np.sin(yaw), *boxes[3:]))),
        ("  map areas", _cpu_us(lambda: pdm._ego_areas(index, corners, centers, states))),
        ("  contacts, NC, TTC", _cpu_us(lambda: kernels.collisions_and_ttc(*contact_args))),
        ("  comfort", _cpu_us(lambda: comfort_score(states, config.sim_dt, config.comfort))),
        ("  DAC, DDC, EP, PDMS", _cpu_us(lambda: kernels.aggregate(*aggregate_args))),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=5, help="problems (decision times) to average over")
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum timing window per measurement [s]")
    parser.add_argument("--stages", action="store_true", help="also print a per-stage CPU-time breakdown")
    args = parser.parse_args(argv)
    rows = run(args.groups, args.seconds)
    print(f"PDM scorer, G={NUM_CANDIDATES}, {NUM_AGENTS} objects, 4 s at 10 Hz, 1 thread, {args.groups} problems")
    columns = ("vectorized warm", "vectorized cold", "reference", "ratio warm", "ratio cold")
    widths = (16, 16, 10, 10, 10)
    header = f"{'tracking':>8} | " + " | ".join(f"{c:>{w}}" for c, w in zip(columns, widths))
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{'on' if r['tracking'] else 'off':>8} | {r['warm']:>12.0f} c/s | {r['cold']:>12.0f} c/s | "
            f"{r['reference']:>6.0f} c/s | {r['warm'] / r['reference']:>9.0f}x | {r['cold'] / r['reference']:>9.0f}x"
        )
    print("goal: >= 20000 candidates/s (vectorized) and >= 100x the reference")
    if args.stages:
        print(f"\nper-stage CPU time per group of {NUM_CANDIDATES} (problem 0, best of 5 rounds):")
        for name, us in stages():
            print(f"  {name:<28} {us:8.1f} us")


if __name__ == "__main__":
    main()

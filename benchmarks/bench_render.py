"""BEV rendering throughput: ``python -m benchmarks.bench_render [--size 128] [--scenes 6] [--repeats 3]``.

Prints frames rendered per second for the ``rgb`` and ``semantic`` modes (and ``rgb`` with 16 candidate
trajectories), over every frame of several scenes: the synthetic bank (``envs.bank``) when it is importable, and
hand-built scenes with 15 agents on two crossing 4-lane roads. Single process, single thread (OpenCV threads
pinned to 1).
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from envs.render import BEVConfig, BEVRenderer
from envs.scene import AgentClass, Lane, Scene, SceneMap, SceneMeta, TrafficLight


def hand_built_scene(seed: int, num_agents: int = 15, num_frames: int = 100) -> Scene:
    """A synthetic benchmark scene: the ego drives north through a 4-way junction among ``num_agents`` agents
    (vehicles, pedestrians, cyclists, static objects) moving at constant speed; 10 Hz."""
    rng = np.random.default_rng(seed)
    dt = 0.1
    tt = np.arange(num_frames) * dt
    speed = rng.uniform(5.0, 12.0)
    ego = np.stack([np.full(num_frames, 1.75), -60.0 + speed * tt, np.full(num_frames, np.pi / 2)], 1)
    ego_v = np.stack([np.zeros(num_frames), np.full(num_frames, speed)], 1)

    lanes, areas = [], []
    s = np.linspace(-150.0, 150.0, 61)
    lane_id = 0
    for axis in (0, 1):  # a north-south and an east-west road, two lanes each way
        for offset, direction in ((1.75, 1), (5.25, 1), (-1.75, -1), (-5.25, -1)):
            pts = np.stack([np.full_like(s, offset), s[::direction]], 1) if axis == 0 else np.stack(
                [s[::-direction], np.full_like(s, offset)], 1
            )
            lanes.append(Lane(lane_id, pts, in_intersection=False))
            lane_id += 1
        half = np.array([[-7.0, -150.0], [7.0, -150.0], [7.0, 150.0], [-7.0, 150.0]])
        areas.append(half if axis == 0 else half[:, ::-1].copy())
    lights = (TrafficLight(0, np.array([1.75, -8.0]), (np.arange(num_frames) // 30 % 3 + 1).astype(np.uint8)),)
    scene_map = SceneMap(tuple(areas), tuple(lanes), (0,), lanes[0].centerline, traffic_lights=lights)

    poses = np.zeros((num_agents, num_frames, 3))
    vels = np.zeros((num_agents, num_frames, 2))
    sizes = np.zeros((num_agents, 2))
    classes = rng.choice([0, 0, 0, 0, 1, 2, 3], size=num_agents)
    for n in range(num_agents):
        lane = lanes[rng.integers(len(lanes))]
        start = lane.centerline[0]
        d = lane.centerline[-1] - lane.centerline[0]
        heading = np.arctan2(d[1], d[0])
        v = 0.0 if classes[n] == AgentClass.STATIC else rng.uniform(1.0, 12.0)
        s0 = rng.uniform(100.0, 200.0)
        dist = s0 + v * tt
        poses[n, :, 0] = start[0] + np.cos(heading) * dist
        poses[n, :, 1] = start[1] + np.sin(heading) * dist
        poses[n, :, 2] = heading
        vels[n] = [v * np.cos(heading), v * np.sin(heading)]
        sizes[n] = {0: (4.6, 1.9), 1: (0.6, 0.6), 2: (1.8, 0.7), 3: (1.0, 1.0)}[int(classes[n])]
    valid = rng.random((num_agents, num_frames)) > 0.05
    return Scene(
        scene_id=f"synthetic/bench/{seed:06d}",
        dt=dt,
        ego_poses=ego,
        ego_velocities=ego_v,
        agent_ids=np.arange(num_agents),
        agent_classes=classes.astype(np.int8),
        agent_sizes=sizes,
        agent_poses=poses,
        agent_velocities=vels,
        agent_valid=valid,
        map=scene_map,
        meta=SceneMeta("synthetic", "bench", extra={"seed": seed}),
    )


def scene_sets(count: int) -> list[tuple[str, list[Scene]]]:
    """Benchmark scene sets: ``count`` scenes of the synthetic bank (when ``envs.bank`` is importable) and
    ``count`` hand-built scenes with 15 agents each."""
    sets = []
    try:
        from envs.bank import ScenarioBank
    except ImportError:
        print("envs.bank not available: hand-built scenes only")
    else:
        bank = ScenarioBank(count, seed=0)
        sets.append(("ScenarioBank(seed=0)", [bank[i] for i in range(count)]))
    sets.append(("hand-built, 15 agents", [hand_built_scene(i) for i in range(count)]))
    return sets


def bench(renderer: BEVRenderer, scenes: list[Scene], repeats: int, trajectories: np.ndarray | None):
    """Best-of-``repeats`` (wall, CPU) frames per second over every frame of ``scenes``."""
    for scene in scenes:  # warm the map cache
        renderer.render(scene, 0)
    frames = sum(s.num_frames for s in scenes)
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        for scene in scenes:
            for t in range(scene.num_frames):
                renderer.render(scene, t, trajectories)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return frames / best_wall, frames / max(best_cpu, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_render", description=__doc__)
    parser.add_argument("--size", type=int, default=BEVConfig().height, help="image size [px]")
    parser.add_argument("--mpp", type=float, default=BEVConfig().meters_per_pixel, help="meters per pixel")
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    x = np.arange(1, 9) * 2.0
    group = np.stack([np.stack([x, 0.02 * k * x**2, np.zeros(8)], 1) for k in range(-8, 8)])  # (16, 8, 3)
    common = dict(height=args.size, width=args.size, meters_per_pixel=args.mpp)
    runs = [
        ("rgb", BEVConfig(**common), None),
        ("rgb, no anti-aliasing", BEVConfig(antialias=False, **common), None),
        ("semantic (9 channels)", BEVConfig(mode="semantic", **common), None),
        ("rgb + 16 trajectories", BEVConfig(**common), group),
    ]
    print(f"image {args.size}x{args.size} px at {args.mpp} m/px; best of {args.repeats}; 1 thread")
    print("frames/s by wall clock and by process CPU time (the latter is steadier on a shared machine)")
    for source, scenes in scene_sets(args.scenes):
        agents = np.mean([s.num_agents for s in scenes])
        frames = sum(s.num_frames for s in scenes)
        print(f"\n{source}: {len(scenes)} scenes, {frames} frames, mean {agents:.1f} agents")
        for name, cfg, traj in runs:
            wall, cpu = bench(BEVRenderer(cfg), scenes, args.repeats, traj)
            print(f"  {name:24s} {wall:7.0f} frames/s wall  {cpu:7.0f} frames/s CPU  ({1e3 / cpu:.2f} ms CPU/frame)")


if __name__ == "__main__":
    main()

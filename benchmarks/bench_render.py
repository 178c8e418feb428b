"""BEV rendering throughput: ``python -m benchmarks.bench_render [--size 128] [--scenes 6] [--repeats 3]``.

Prints frames rendered per second for the ``rgb`` and ``semantic`` modes (and ``rgb`` with 16 candidate
trajectories), over every frame of several scenes: the synthetic bank (``envs.scenes.bank``) when it is importable, and
hand-built scenes with 15 agents on two crossing 4-lane roads. Each mode runs with the map warped from its raster
(``BEVConfig.map_raster``, the default) and drawn as vectors every frame (``map_raster=False``, the exact drawing),
the two alternating within each repeat; the ratio is taken on CPU time. Then the one-off cost of the map rasters
(build time and size per map). Single process, single thread (OpenCV threads pinned to 1).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import cv2
import numpy as np

from envs.render import BEVConfig, BEVRenderer
from envs.scenes.scene import AgentClass, Lane, Scene, SceneMap, SceneMeta, TrafficLight


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
    """Benchmark scene sets: ``count`` scenes of the synthetic bank (when ``envs.scenes.bank`` is importable) and
    ``count`` hand-built scenes with 15 agents each."""
    sets = []
    try:
        from envs.scenes.bank import ScenarioBank
    except ImportError:
        print("envs.scenes.bank not available: hand-built scenes only")
    else:
        bank = ScenarioBank(count, seed=0)
        sets.append(("ScenarioBank(seed=0)", [bank[i] for i in range(count)]))
    sets.append(("hand-built, 15 agents", [hand_built_scene(i) for i in range(count)]))
    return sets


def bench(renderers: dict[str, BEVRenderer], scenes: list[Scene], repeats: int, trajectories: np.ndarray | None):
    """``{name: (wall, CPU) frames per second}``, best of ``repeats`` over every frame of ``scenes``; the renderers
    alternate within each repeat (so each saw the same machine load)."""
    for renderer in renderers.values():
        for scene in scenes:  # warm the map caches (geometry, raster)
            renderer.render(scene, 0)
    frames = sum(s.num_frames for s in scenes)
    best = {name: [float("inf"), float("inf")] for name in renderers}
    for _ in range(repeats):
        for name, renderer in renderers.items():
            wall, cpu = time.perf_counter(), time.process_time()
            for scene in scenes:
                for t in range(scene.num_frames):
                    renderer.render(scene, t, trajectories)
            best[name][0] = min(best[name][0], time.perf_counter() - wall)
            best[name][1] = min(best[name][1], time.process_time() - cpu)
    return {name: (frames / wall, frames / max(cpu, 1e-9)) for name, (wall, cpu) in best.items()}


def raster_cost(config: BEVConfig, scenes: list[Scene]) -> tuple[float, float, float]:
    """Mean one-off cost of a map [ms] (its first render minus a warm render of the same frame: flattening the map
    geometry and building the raster), mean and largest raster size [Mpx] over the maps of ``scenes``."""
    builds, sizes = [], []
    for scene in scenes:
        if scene.map is None:
            continue
        renderer = BEVRenderer(config)
        t0 = time.perf_counter()
        renderer.render(scene, 0)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        renderer.render(scene, 0)
        builds.append(first - (time.perf_counter() - t0))
        raster = renderer._rasters.get(scene.map)
        sizes.append(raster.pixels if raster is not None and hasattr(raster, "pixels") else 0)
    return 1e3 * float(np.mean(builds)), 1e-6 * float(np.mean(sizes)), 1e-6 * float(np.max(sizes))


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
        ("rgb, no anti-aliasing (env)", BEVConfig(antialias=False, **common), None),
        ("semantic (9 channels)", BEVConfig(mode="semantic", **common), None),
        ("rgb + 16 trajectories", BEVConfig(**common), group),
    ]
    print(f"image {args.size}x{args.size} px at {args.mpp} m/px; best of {args.repeats}; 1 thread")
    print("frames/s by wall clock and by process CPU time (the latter is steadier on a shared machine); map from "
          "its raster (default) and drawn as vectors (map_raster=False), alternating")
    for source, scenes in scene_sets(args.scenes):
        agents = np.mean([s.num_agents for s in scenes])
        frames = sum(s.num_frames for s in scenes)
        print(f"\n{source}: {len(scenes)} scenes, {frames} frames, mean {agents:.1f} agents")
        print(f"  {'mode':<30} {'raster: wall':>12} {'CPU':>7} {'ms CPU':>7}   {'vector: wall':>12} {'CPU':>7} "
              f"{'ms CPU':>7}   {'speed-up (CPU)':>14}")
        for name, cfg, traj in runs:
            rates = bench({"raster": BEVRenderer(cfg),
                           "vector": BEVRenderer(dataclasses.replace(cfg, map_raster=False))}, scenes, args.repeats,
                          traj)
            (rw, rc), (vw, vc) = rates["raster"], rates["vector"]
            print(f"  {name:<30} {rw:>12.0f} {rc:>7.0f} {1e3 / rc:>7.3f}   {vw:>12.0f} {vc:>7.0f} {1e3 / vc:>7.3f}   "
                  f"{rc / vc:>13.1f}x")
        for name, cfg in (("rgb", runs[1][1]), ("semantic", runs[2][1])):
            build, mean_px, max_px = raster_cost(cfg, scenes)
            print(f"  map raster, {name}: first render of a map +{build:.1f} ms on average (geometry and raster); "
                  f"{mean_px:.2f} Mpx per map on average, largest {max_px:.2f} Mpx ({3 if name == 'rgb' else 1} B/px)")


if __name__ == "__main__":
    main()

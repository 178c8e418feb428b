"""Does the safe oracle collide? Closed-loop episodes of a privileged planner on synthetic bank scenes, with every
collision listed (a benchmark: prints tables, asserts nothing)::

    python -m benchmarks.bench_oracle --num-scenes 200 --seeds 3000,4000

Per bank seed: episodes, termination reasons (collision, off-road, time limit, route end), mean route completion
RC [%], and one line per collision: scene id, scenario type, start and collision frame, the ego speed at contact
[m/s], where the agent touched the ego and whether the ego was at fault, and at how many of the episode's decisions
the oracle found no verified-safe proposal (off-road endings are listed too, each with why: the steering angle the
episode started from and the logged path's there, the steering at the off-road frame, how far the worst ego corner is
past the drivable edge, the logged ego's smallest corner clearance over the same frames, and the ego's offset from
the logged rear axle at that frame, lateral (left +) and heading [m, rad]).

Fault (NAVSIM's collision types at the contact frame, :func:`collision_kind`): ``stopped_ego`` and ``active_rear``
are not at fault; ``active_front`` and ``active_lateral`` are counted as at fault (NAVSIM excuses a lateral contact
when the ego stays in one lane on the road; this count does not). Synthetic data: the numbers describe the bank,
not real traffic.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from agents.base import Policy, policy_input
from agents.baselines import make_baseline
from envs.replay_env import START_STEERING, EnvConfig, ReplayEnv
from envs.sim.scoring import logged_steering_angle, map_geometry_from_scene_map
from rewards.geometry import box_corners, vehicle_corners, world_to_local
from rewards.scorer import safe_progress_for

REASONS = ("collision", "offroad", "time_limit", "route_end")
"""Closed-loop termination reasons of :class:`envs.replay_env.ReplayEnv` (``info["termination_reason"]``)."""


@dataclass
class Episode:
    """One closed-loop episode: how it ended, RC [0, 1], and for a collision where and whose fault."""

    scene_id: str
    scenario_type: str
    start: int
    end: int
    reason: str
    route_completion: float
    unsafe_decisions: int
    decisions: int
    agent: int = -1
    speed: float = float("nan")
    kind: str = ""
    offroad: str = ""
    """Off-road endings: the diagnosis line of :func:`offroad_details`."""

    @property
    def at_fault(self) -> bool:
        return self.kind in ("active_front", "active_lateral")


def collision_kind(env: ReplayEnv, agent_id: int) -> tuple[float, str]:
    """Ego speed [m/s] at the current (contact) frame and NAVSIM's collision type of the contact with ``agent_id``
    (``pdm_scorer_utils.get_collision_type``): ``stopped_ego`` (ego speed <= ``collision_stopped_speed``),
    ``active_rear`` (the agent's centre more than ``behind_angle_deg`` off the ego heading, seen from the rear axle),
    ``active_front`` (the agent's box touches the ego's front edge) or ``active_lateral``. Stopped agents count as
    ``active_front`` / ``active_lateral`` here (their NAVSIM type, ``stopped_track``, is at fault too)."""
    from shapely.geometry import LineString, Polygon

    base = env.unwrapped
    scene, t, pdm = base.scene, base.t, env.config.pdm
    speed = float(np.hypot(*base.scene_view.ego_velocities[t]))
    if speed <= pdm.collision_stopped_speed:
        return speed, "stopped_ego"
    row = int(np.flatnonzero(scene.agent_ids == agent_id)[0])
    pose = base.ego_poses[t]
    rel = world_to_local(scene.agent_poses[row, t][None], pose)[0]
    if np.degrees(abs(np.arctan2(rel[1], rel[0]))) > pdm.behind_angle_deg:
        return speed, "active_rear"
    ego = vehicle_corners(pose[None], scene.ego_params)[0]  # front-left, rear-left, rear-right, front-right
    agent = box_corners(scene.agent_poses[row, t], *scene.agent_sizes[row])
    front = LineString([ego[0], ego[3]]).intersects(Polygon(agent))
    return speed, "active_front" if front else "active_lateral"


def _clearance(area, corners: np.ndarray) -> np.ndarray:
    """Signed distance [m] of points ``(..., 2)`` to the boundary of the shapely ``area``: + inside, - outside."""
    from shapely.geometry import Point

    flat = corners.reshape(-1, 2)
    out = np.array([(1.0 if area.contains(Point(*p)) else -1.0) * area.boundary.distance(Point(*p)) for p in flat])
    return out.reshape(corners.shape[:-1])


def offroad_details(env: ReplayEnv, start: int, start_steering: float) -> str:
    """Why the episode now ended off the road: the start steering [rad] (and the logged path's at the start frame),
    the tire steering at the off-road frame [rad], how far the worst ego corner is past the drivable edge [m], the
    logged ego's smallest corner clearance from the edge over frames ``start .. t`` [m], and the ego's offset from
    the logged pose at ``t`` (lateral [m], left +, and heading [rad]). Every ending is tracked by the scorer's LQR
    (above its 0.2 m/s stopping speed) unless the speed says otherwise."""
    from shapely.geometry import Polygon
    from shapely.ops import unary_union

    base = env.unwrapped
    scene, t = base.scene, base.t
    geometry = map_geometry_from_scene_map(scene.map)
    area = unary_union([Polygon(p) for p in (*geometry.drivable_areas, *geometry.intersections)])
    past = -_clearance(area, vehicle_corners(base.ego_poses[t][None], scene.ego_params)[0]).min()
    logged = _clearance(area, vehicle_corners(scene.ego_poses[start : t + 1], scene.ego_params)).min()
    offset = world_to_local(base.ego_poses[t][None], scene.ego_poses[t])[0]
    speed = float(np.hypot(*base.scene_view.ego_velocities[t]))
    extra = scene.meta.extra
    where = f"{extra['variant']} on {extra['layout']}  " if "variant" in extra and "layout" in extra else ""
    return (f"{where}start steer {start_steering:+.3f} (log {logged_steering_angle(scene, start):+.3f})  steer "
            f"{base.current_problem().ego.steering_angle:+.3f}  corner {past:.2f} m past the edge (log's clearance "
            f"{logged:.2f} m)  off the log {offset[1]:+.2f} m, {offset[2]:+.3f} rad  "
            f"{'LQR' if speed > 0.2 else 'stopping P'} at {speed:.1f} m/s")


def run_episodes(policy: Policy, env: ReplayEnv, num_scenes: int, reset_seed: int) -> list[Episode]:
    """Closed-loop episodes on scenes ``0 .. num_scenes - 1`` (reset seed ``reset_seed + i``)."""
    out = []
    for i in range(num_scenes):
        obs, info = env.reset(seed=reset_seed + i, options={"scene_index": i})
        policy.reset()
        start, unsafe, decisions, done = env.unwrapped.t, 0, 0, False
        start_steering = env.unwrapped.current_problem().ego.steering_angle
        while not done:
            inp = policy_input(env, obs, info, policy.requires_privileged)
            if inp.problem is not None:
                sp = safe_progress_for(inp.problem, env.config.pdm)
                unsafe += int(sp is not None and sp.fallback != "safe")
            decisions += 1
            obs, _, terminated, truncated, info = env.step(policy.act(inp))
            done = terminated or truncated
        scene = env.unwrapped.scene
        ep = Episode(scene.scene_id, scene.meta.scenario_type, start, env.unwrapped.t, info["termination_reason"],
                     float(info["driving_metrics"]["route_completion"]), unsafe, decisions)
        if ep.reason == "offroad" and scene.map is not None:
            ep.offroad = offroad_details(env, start, start_steering)
        if ep.reason == "collision":
            ep.agent = int(info["colliding_agent"])
            ep.speed, ep.kind = collision_kind(env, ep.agent)
        out.append(ep)
    return out


def report(name: str, seed: int, episodes: list[Episode], seconds: float) -> str:
    """The summary line and one line per collision."""
    reasons = Counter(e.reason for e in episodes)
    acc = [e for e in episodes if e.scenario_type != "normal"]
    coll = [e for e in episodes if e.reason == "collision"]
    lines = [f"{name:<16} seed {seed:<6} episodes {len(episodes):>4} (accident {len(acc):>3})  "
             + "  ".join(f"{r} {reasons.get(r, 0):>3}" for r in REASONS)
             + f"  at-fault {sum(e.at_fault for e in coll):>2}"
             + f"  RC {100 * np.mean([e.route_completion for e in episodes]):.1f}%"
             + f"  decisions without a safe proposal {sum(e.unsafe_decisions for e in episodes)}"
             + f"/{sum(e.decisions for e in episodes)}  ({seconds:.0f} s)"]
    for e in (e for e in episodes if e.reason == "offroad"):
        lines.append(f"    {e.scene_id:<38} {e.scenario_type:<24} frames {e.start}->{e.end}  off road  "
                     f"no-safe decisions {e.unsafe_decisions}/{e.decisions}")
        if e.offroad:
            lines.append(f"        {e.offroad}")
    for e in coll:
        lines.append(f"    {e.scene_id:<38} {e.scenario_type:<24} frames {e.start}->{e.end}  agent {e.agent:>4}  "
                     f"speed {e.speed:5.2f} m/s  {e.kind:<15} {'AT FAULT' if e.at_fault else 'not at fault'}  "
                     f"no-safe decisions {e.unsafe_decisions}/{e.decisions}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--num-scenes", type=int, default=200, help="bank scenes per seed")
    p.add_argument("--seeds", default="3000,4000", help="comma-separated bank seeds (held out: not 0..1000)")
    p.add_argument("--reset-seed", type=int, default=4242, help="reset seeds are reset_seed + i")
    p.add_argument("--policies", default="safe_oracle", help="comma-separated baseline names")
    p.add_argument("--scenario-types", default=None, help="comma-separated scenario types (default: all)")
    p.add_argument("--start-steering", choices=START_STEERING, default=EnvConfig().start_steering,
                   help="the closed loop's start steering angle (EnvConfig.start_steering)")
    args = p.parse_args(argv)
    print(f"closed loop on SYNTHETIC bank scenes, {args.num_scenes} per seed, state-only, lazy reward, start_steering "
          f"{args.start_steering!r}")
    for seed in (int(s) for s in args.seeds.split(",")):
        kwargs = {} if args.scenario_types is None else {"scenario_types": tuple(args.scenario_types.split(","))}
        config = EnvConfig(bev=None, reward_mode="lazy", start_steering=args.start_steering)
        env = ReplayEnv("bank", "closed_loop", config, num_scenes=args.num_scenes, seed=seed, **kwargs)
        for name in args.policies.split(","):
            start = time.perf_counter()
            episodes = run_episodes(make_baseline(name), env, len(env.source), args.reset_seed)
            print(report(name, seed, episodes, time.perf_counter() - start), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

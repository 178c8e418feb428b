"""Can the other agents' next 4 s be predicted from what the present shows? A learned forecast against constant
velocity and turn-and-accelerate (a benchmark: trains a small model, prints a table, asserts nothing)::

    python -m benchmarks.bench_forecast --train-seed 8300 --train-scenes 400 --eval-seeds 8400,8800 \\
        --eval-scenes 96 --out forecaster.pt

:class:`AgentForecaster` maps one agent's present (:func:`agent_features`: its along-route gap to the ego, lateral
offset from the ego's route and heading against it, its position and heading in the ego frame, its speed, the turn
rate and acceleration of its last 0.5 s of log, its size, whether it is static, the ego's speed; present and past
only, no scenario type, no hazard id) to its displacement over the next 4 s at 0.5 s in its own frame (the
conditional mean: L2), trained on every logged agent of a training bank (SYNTHETIC) every ``--stride`` s. Printed:
average / final displacement error (ADE / FDE over 4 s [m]) on held-out banks of constant velocity (``cv``,
:func:`rewards.reference_planner.constant_velocity_agents`), turn-and-accelerate (``ctra``,
:func:`rewards.reference_planner.turning_agents` with :func:`envs.sim.scoring.recent_motion`) and the
learned forecast, every agent and the scenes' designated hazards alone. ``--out`` saves the model for
``python -m benchmarks.bench_group_score --closed-loop --futures learned --forecaster FILE`` (the group score's best
response against the learned futures; docs/grpo_ablation.md, "A learned forecast of the other agents").
"""

from __future__ import annotations

import argparse
import os
import pickle
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from envs.scenes.scene import Scene, designated_hazard
from envs.sim.scoring import MOTION_WINDOW, problem_from_scene, recent_motion
from rewards.config import PDMConfig
from rewards.geometry import polyline_arclength, world_to_local, wrap_angle
from rewards.reference_planner import _project, forecast_problem
from rewards.types import AgentsFuture, ScoringProblem

HORIZON_POSES = 8
"""Forecast poses (every :data:`POSE_STEP` s, 4 s)."""
POSE_STEP = 0.5
"""Time between forecast poses [s]."""
FEATURES = ("gap_along_route", "lateral_offset", "cos_route_heading", "sin_route_heading", "x_ego", "y_ego",
            "cos_ego_heading", "sin_ego_heading", "speed", "yaw_rate", "acceleration", "length", "width", "static",
            "ego_speed")
"""The columns of :func:`agent_features` [m, m, -, -, m, m, -, -, m/s, rad/s, m/s^2, m, m, 0/1, m/s]."""


def agent_features(problem: ScoringProblem, motion: dict[int, tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """``(rows (M,), X (M, len(FEATURES)))``: the agents of ``problem`` valid at its first step (``rows`` index
    ``problem.agents``), each described by :data:`FEATURES` at that step; ``motion`` as
    :func:`envs.sim.scoring.recent_motion` (an agent missing from it: 0, 0). Without a map the route
    columns are 0."""
    agents = problem.agents
    rows = np.flatnonzero(agents.valid[:, 0]) if agents.num_steps else np.zeros(0, dtype=int)
    pose = agents.poses[rows, 0]  # (M, 3)
    vel = agents.velocities[rows, 0]
    x = np.zeros((len(rows), len(FEATURES)))
    if len(rows) == 0:
        return rows, x
    ego = problem.ego.pose
    if problem.map is not None:
        route = np.asarray(problem.map.route, dtype=np.float64)
        route_s = polyline_arclength(route)
        s_a, lat = _project(pose[:, :2], route, route_s)
        s_e, _ = _project(ego[None, :2], route, route_s)
        seg = np.clip(np.searchsorted(route_s, s_a, side="right") - 1, 0, len(route) - 2)
        tangent = np.arctan2(*(route[seg + 1] - route[seg])[:, ::-1].T)
        rel = wrap_angle(pose[:, 2] - tangent)
        x[:, 0], x[:, 1], x[:, 2], x[:, 3] = s_a - s_e[0], lat, np.cos(rel), np.sin(rel)
    local = world_to_local(pose, ego)
    x[:, 4], x[:, 5], x[:, 6], x[:, 7] = local[:, 0], local[:, 1], np.cos(local[:, 2]), np.sin(local[:, 2])
    x[:, 8] = np.hypot(vel[:, 0], vel[:, 1])
    rates = np.array([motion.get(int(i), (0.0, 0.0)) for i in agents.ids[rows]], dtype=np.float64)
    x[:, 9], x[:, 10] = rates[:, 0], rates[:, 1]
    x[:, 11], x[:, 12] = agents.sizes[rows, 0], agents.sizes[rows, 1]
    x[:, 13] = agents.is_static[rows]
    x[:, 14] = float(np.hypot(*problem.ego.velocity[:2]))
    return rows, x


def _knots(dt: float) -> np.ndarray:
    """Indices of the forecast poses (0.5 .. 4 s) among steps of ``dt`` s."""
    return np.round(np.arange(1, HORIZON_POSES + 1) * POSE_STEP / dt).astype(int)


def constant_velocity_local(problem: ScoringProblem, rows: np.ndarray) -> np.ndarray:
    """``(M, 8, 2)``: the constant-velocity displacement at 0.5 .. 4 s of the agents ``rows`` of ``problem`` in each
    one's own frame at the first step [m] (what :class:`AgentForecaster` predicts a correction to)."""
    pose = problem.agents.poses[rows, 0]
    vel = problem.agents.velocities[rows, 0]
    c, sn = np.cos(pose[:, 2]), np.sin(pose[:, 2])
    v_local = np.stack([c * vel[:, 0] + sn * vel[:, 1], -sn * vel[:, 0] + c * vel[:, 1]], axis=-1)  # (M, 2)
    return v_local[:, None, :] * (np.arange(1, HORIZON_POSES + 1) * POSE_STEP)[None, :, None]


def future_targets(problem: ScoringProblem, rows: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """``(Y (M, 8, 2), ok (M,))``: each agent's logged displacement at 0.5 .. 4 s in its own frame at the first step
    [m]; ``ok`` where the log holds all 8 poses."""
    k = _knots(dt)
    agents = problem.agents
    if agents.num_steps <= k[-1]:
        raise ValueError(f"future_targets: the problem holds {agents.num_steps} steps, 4 s needs {k[-1] + 1}")
    origin = agents.poses[rows, 0]
    y = np.stack([world_to_local(agents.poses[r, k, :2], origin[j]) for j, r in enumerate(rows)]) if len(rows) \
        else np.zeros((0, HORIZON_POSES, 2))
    return y, agents.valid[rows][:, k].all(axis=1)


class AgentForecaster(nn.Module):
    """MLP ``(B, len(FEATURES)) -> (B, 8, 2)``: the correction to the constant-velocity displacement at 0.5 .. 4 s in
    the agent's own frame [m] (:func:`constant_velocity_local`; an untrained model is constant velocity), with the
    feature and target standardisation kept as buffers (saved with the weights)."""

    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        f, o = len(FEATURES), HORIZON_POSES * 2
        self.hidden = int(hidden)
        self.net = nn.Sequential(nn.Linear(f, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, o))
        nn.init.zeros_(self.net[-1].weight)  # an untrained model predicts no correction: constant velocity
        nn.init.zeros_(self.net[-1].bias)
        for name, size in (("x_mean", f), ("x_std", f), ("y_mean", o), ("y_std", o)):
            self.register_buffer(name, torch.zeros(size) if "mean" in name else torch.ones(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net((x - self.x_mean) / self.x_std) * self.y_std + self.y_mean
        return out.reshape(-1, HORIZON_POSES, 2)

    @torch.no_grad()
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Numpy :meth:`forward`: ``(M, F) -> (M, 8, 2)`` float64."""
        return self(torch.as_tensor(np.asarray(x, dtype=np.float32))).double().numpy()

    def save(self, path: str | os.PathLike) -> None:
        """Write the weights and the width to ``path`` (a temp file renamed into place)."""
        path = Path(path)
        with tempfile.NamedTemporaryFile(dir=path.parent or ".", suffix=".tmp", delete=False) as f:
            torch.save({"hidden": self.hidden, "state": self.state_dict(), "features": FEATURES}, f)
        os.replace(f.name, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "AgentForecaster":
        """A model saved by :meth:`save` (``ValueError`` naming the file when it is not one, or its features differ)."""
        try:
            data = torch.load(path, weights_only=True)
            model = cls(int(data["hidden"]))
            model.load_state_dict(data["state"])
        except (KeyError, TypeError, RuntimeError, OSError, EOFError, pickle.UnpicklingError) as exc:
            raise ValueError(f"{path}: not an AgentForecaster file ({exc})") from exc
        if tuple(data.get("features", ())) != FEATURES:
            raise ValueError(f"{path}: trained on features {data.get('features')}, this code has {FEATURES}")
        return model.eval()


def sample_frames(scene: Scene, stride: float) -> range:
    """The frames of ``scene`` every ``stride`` s that have :data:`MOTION_WINDOW` s of past and the full 4 s of
    logged future."""
    step = max(1, int(round(stride / scene.dt)))
    first = int(round(MOTION_WINDOW / scene.dt))
    return range(first, scene.agent_poses.shape[1] - int(round(HORIZON_POSES * POSE_STEP / scene.dt)), step)


def training_data(source, stride: float = POSE_STEP, config: PDMConfig = PDMConfig(),
                  progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(X (K, F), Y (K, 8, 2))``: every agent with 4 s of logged future, at every ``stride`` s of every scene of
    ``source`` (:func:`sample_frames`, so every row has its past); ``Y`` the logged displacement minus the constant-velocity
    one (:func:`constant_velocity_local`), what :class:`AgentForecaster` learns."""
    xs, ys = [], []
    for i in tqdm(range(len(source)), desc="forecast data", disable=not progress, leave=False):
        scene = source[i]
        for t in sample_frames(scene, stride):
            problem = problem_from_scene(scene, t, config)
            rows, x = agent_features(problem, recent_motion(scene, t))
            y, ok = future_targets(problem, rows, config.sim_dt)
            xs.append(x[ok])
            ys.append((y - constant_velocity_local(problem, rows))[ok])
    if not xs:
        raise ValueError("training_data: no scene frame with 4 s of logged future")
    return np.concatenate(xs), np.concatenate(ys)


def train_forecaster(x: np.ndarray, y: np.ndarray, steps: int = 4000, batch_size: int = 512, lr: float = 1e-3,
                     seed: int = 0, hidden: int = 128) -> AgentForecaster:
    """Fit :class:`AgentForecaster` by L2 on ``(x (K, F), y (K, 8, 2))`` (Adam, ``steps`` minibatches)."""
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(f"train_forecaster: need matching non-empty x, y, got {len(x)} and {len(y)} rows")
    torch.manual_seed(seed)
    model = AgentForecaster(hidden)
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y.reshape(len(y), -1), dtype=torch.float32)
    model.x_mean.copy_(xt.mean(0))
    model.x_std.copy_(xt.std(0).clamp(min=1e-3))
    model.y_mean.copy_(yt.mean(0))
    model.y_std.copy_(yt.std(0).clamp(min=1e-3))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(xt), (min(batch_size, len(xt)),), generator=gen)
        loss = ((model(xt[idx]).reshape(len(idx), -1) - yt[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def learned_agents(model: AgentForecaster, problem: ScoringProblem, motion: dict[int, tuple[float, float]],
                   dt: float) -> AgentsFuture:
    """The agents of ``problem`` valid at its first step forecast by ``model`` over its ``S`` steps of ``dt`` s:
    the 8 predicted poses (0.5 .. 4 s) interpolated linearly from the present, extended past 4 s at the last
    interval's velocity; the box heading follows the motion (the present heading below 1 m/s)."""
    agents = problem.agents
    rows, x = agent_features(problem, motion)
    s = agents.num_steps
    pred = model.predict(x) + constant_velocity_local(problem, rows) if len(rows) else np.zeros((0, HORIZON_POSES, 2))
    knots_t = np.arange(HORIZON_POSES + 1) * POSE_STEP
    t = np.arange(s) * dt
    local = np.concatenate([np.zeros((len(rows), 1, 2)), pred], axis=1)  # (M, 9, 2)
    last_v = (local[:, -1] - local[:, -2]) / POSE_STEP  # (M, 2)
    inside = np.minimum(t, knots_t[-1])
    path = np.stack([np.stack([np.interp(inside, knots_t, local[m, :, j]) for j in range(2)], axis=-1)
                     for m in range(len(rows))]) if len(rows) else np.zeros((0, s, 2))
    path += np.maximum(t - knots_t[-1], 0.0)[None, :, None] * last_v[:, None, :]
    origin = agents.poses[rows, 0]  # (M, 3)
    c, sn = np.cos(origin[:, 2])[:, None], np.sin(origin[:, 2])[:, None]
    world = np.stack([origin[:, None, 0] + c * path[..., 0] - sn * path[..., 1],
                      origin[:, None, 1] + sn * path[..., 0] + c * path[..., 1]], axis=-1)  # (M, S, 2)
    vel = np.gradient(world, dt, axis=1) if s > 1 else np.zeros_like(world)
    speed = np.hypot(vel[..., 0], vel[..., 1])
    yaw = np.where(speed > 1.0, np.arctan2(vel[..., 1], vel[..., 0]), origin[:, None, 2])
    poses = np.concatenate([world, yaw[..., None]], axis=-1)
    return AgentsFuture(ids=agents.ids[rows], is_static=agents.is_static[rows], sizes=agents.sizes[rows],
                        poses=poses, velocities=vel, valid=np.ones((len(rows), s), dtype=bool))


def learned_problem(model: AgentForecaster, scene: Scene, config: PDMConfig = PDMConfig()):
    """A ``forecast`` for :meth:`envs.replay_env.ReplayEnv.score_group`: every agent forecast by ``model`` from
    ``scene``'s log up to the problem's frame."""

    def forecast(problem: ScoringProblem) -> ScoringProblem:
        agents = learned_agents(model, problem, recent_motion(scene, problem.time_index), config.sim_dt)
        return ScoringProblem(ego=problem.ego, agents=agents, map=problem.map, scene_id=problem.scene_id,
                              time_index=problem.time_index)

    return forecast


def displacement_errors(source, model: AgentForecaster, stride: float = POSE_STEP, config: PDMConfig = PDMConfig(),
                        progress: bool = True) -> dict[str, dict[str, np.ndarray]]:
    """``{forecast: {"all" | "hazard": (K, 8) displacement errors [m]}}`` at 0.5 .. 4 s for ``cv``, ``ctra`` and
    ``learned``, over the agents with 4 s of logged future at every ``stride`` s of ``source``'s scenes."""
    k = _knots(config.sim_dt)
    out: dict[str, dict[str, list[np.ndarray]]] = {f: {"all": [], "hazard": []} for f in ("cv", "ctra", "learned")}
    for i in tqdm(range(len(source)), desc="forecast errors", disable=not progress, leave=False):
        scene = source[i]
        hazard = designated_hazard(scene)
        for t in sample_frames(scene, stride):
            problem = problem_from_scene(scene, t, config)
            motion = recent_motion(scene, t)
            rows = np.flatnonzero(problem.agents.valid[:, 0])
            ok = problem.agents.valid[rows][:, k].all(axis=1)
            if not ok.any():
                continue
            truth = problem.agents.poses[rows][:, k, :2]  # (M, 8, 2)
            is_hazard = np.isin(problem.agents.ids[rows], [] if hazard is None else [hazard])
            futures = {"cv": forecast_problem(problem, config).agents,
                       "ctra": forecast_problem(problem, config, motion=motion).agents,
                       "learned": learned_agents(model, problem, motion, config.sim_dt)}
            for name, fut in futures.items():
                assert np.array_equal(fut.ids, problem.agents.ids[rows])
                err = np.hypot(*(fut.poses[:, k, :2] - truth).transpose(2, 0, 1))[ok]  # (M', 8)
                out[name]["all"].append(err)
                out[name]["hazard"].append(err[is_hazard[ok]])
    return {f: {g: np.concatenate(v) if v else np.zeros((0, HORIZON_POSES)) for g, v in d.items()}
            for f, d in out.items()}


def error_table(errors: dict[str, dict[str, np.ndarray]], label: str) -> list[str]:
    """Markdown rows: per forecast and group, agents x frames, ADE and FDE over 4 s [m]."""
    lines = []
    for name, groups in errors.items():
        for group, e in groups.items():
            if len(e):
                lines.append(f"| {label} | {name} | {group} | {len(e)} | {e.mean():.2f} | {e[:, -1].mean():.2f} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    from envs.scenes.sources import bank_options, open_source

    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_forecast", description=__doc__.splitlines()[0])
    p.add_argument("--train-seed", type=int, default=8300, help="training bank seed")
    p.add_argument("--train-scenes", type=int, default=400)
    p.add_argument("--eval-seeds", default="8400,8800", help="comma-separated held-out bank seeds")
    p.add_argument("--eval-scenes", type=int, default=96)
    p.add_argument("--stride", type=float, default=POSE_STEP, help="seconds between sampled frames")
    p.add_argument("--steps", type=int, default=4000, help="training minibatches")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--out", default=None, help="save the trained forecaster here (for bench_group_score)")
    args = p.parse_args(argv)
    try:
        eval_seeds = [int(s) for s in args.eval_seeds.split(",") if s]
    except ValueError:
        p.error(f"--eval-seeds: expected comma-separated integers, got {args.eval_seeds!r}")
    if args.stride <= 0 or args.steps <= 0:
        p.error("--stride and --steps must be positive")

    def bank(seed: int, n: int, families):
        return open_source("bank", num_scenes=n, seed=seed, **bank_options(
            outcomes="varied", difficulty=0.5, roads="families", road_families=families))

    t0 = time.perf_counter()
    x, y = training_data(bank(args.train_seed, args.train_scenes, None), args.stride)
    model = train_forecaster(x, y, steps=args.steps, seed=args.seed)
    print(f"SYNTHETIC banks (world v2, road families): trained on {len(x)} agent states of {args.train_scenes} "
          f"scenes of seed {args.train_seed} (training families) in {time.perf_counter() - t0:.0f} s\n")
    if args.out:
        model.save(args.out)
    lines = ["| held-out bank | forecast | agents | agent states | ADE 4 s [m] | FDE 4 s [m] |", "|" + "---|" * 6]
    for seed in eval_seeds:
        lines += error_table(displacement_errors(bank(seed, args.eval_scenes, "all"), model, args.stride),
                             f"{seed} ({args.eval_scenes} scenes, all families)")
    print("\n".join(lines))
    if args.out:
        print(f"\nforecaster saved to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

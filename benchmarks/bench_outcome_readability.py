"""Can the MLP agent's observation tell a hazard that will pass from one that will hit? (a benchmark: prints a
table, asserts nothing)::

    python -m benchmarks.bench_outcome_readability --train-scenes 200 --train-seed 8300 --eval-scenes 96 --eval-seed 8400

Rows: the closed-loop decisions of log replay on the hazard scenes of the outcome-varied bank (world v2: benign /
near-miss / collision variants of every accident typology, SYNTHETIC), at 0, 0.5, ..., ``--seconds`` s after the
episode's start (the states the policy decides in, before the ego leaves its log), up to a collision. Target: the
scene's geometry-decided outcome of the logged drive (``meta.extra["outcome"]``: what happens if the ego keeps
driving as logged). Predictors, fitted on a training bank seed and scored on a held-out seed:

* ``majority``: the training rows' most frequent outcome (reads nothing);
* ``bev-logistic``: a multinomial logistic regression (``agents.vla.label_head.fit_logistic``, L2 chosen on a
  scene-disjoint quarter, ``select_l2``) on the flattened, standardised **MLP agent's 64 px semantic BEV** (the
  ``mlp`` agent's observation: drivable, route, vehicles, pedestrians / cyclists, static, 2 s of history trails);
* ``bev-cnn``: ``benchmarks.bench_readability.SmallCNN`` on the same BEVs, ``--cnn-steps`` Adam steps;
* with ``--prompt-agents K``: ``agents' numbers MLP``, ``bench_readability.train_mlp`` on the numbers the ``mlp``
  agent gets with ``agent.prompt_state=agents`` (its velocity and the K nearest visible agents' relative positions
  and velocities);
* ``most-conflicting agent MLP``: the same MLP on :func:`conflict_state`, the seven features of the visible agent
  whose constant-velocity projection comes closest to the ego (no privileged knowledge);
* ``state-oracle`` (privileged): the logistic regression on the scenario's hazard agent's state relative to the
  ego (position, velocity [ego frame]) and its constant-velocity projection (closest distance and when, within 5 s):
  what a policy that sees the agents' motion exactly could read; ``state-oracle MLP``: the same features through
  ``benchmarks.bench_readability.train_mlp`` (two hidden layers), a non-linear read-out.

It answers whether GRPO's group scores could teach the MLP to slow where the hazard is (docs/grpo_ablation.md,
"Where the closed-loop collisions are"): if its observation does not tell the outcome apart, a state-dependent
response cannot be learned from it.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Sequence

import numpy as np
import torch

from agents.base import policy_input
from agents.baselines import make_baseline
from benchmarks.bench_collision_causes import scene_outcome
from envs.replay_env import EnvConfig, ReplayEnv
from envs.prompt_state import HAZARD_HORIZON, HAZARD_STEP, agent_motion
from envs.scenes.scene import designated_hazard
from rewards.geometry import rotate_vectors

HAZARD_OUTCOMES = ("benign", "near_miss", "collision")
"""Classes of the target (normal scenes have no hazard and are left out)."""


def mlp_env_config(prompt_agents: int = 0) -> EnvConfig:
    """The ``mlp`` agent's env view (64 px semantic BEV at 1 m/px, its layers), as the pipeline builds it; with
    ``prompt_agents`` K > 0 also the numbers of ``agent.prompt_state=agents`` (the K nearest visible agents)."""
    from experiments.agents import MLPAgentConfig
    from experiments.registry import get_agent

    agent = MLPAgentConfig(prompt_state="agents", prompt_agents=prompt_agents) if prompt_agents else MLPAgentConfig()
    return get_agent("mlp").env_config(agent, None)


def hazard_state(env: Any, horizon: float = HAZARD_HORIZON, dt: float = HAZARD_STEP) -> np.ndarray:
    """``(7,)`` privileged features of the hazard agent at the current frame: relative position and velocity in the
    ego frame [m, m/s], its current distance, and the constant-velocity projection's closest distance [m] and its
    time [s] within ``horizon`` (:func:`envs.prompt_state.agent_motion`) of the scene's designated hazard
    (:func:`envs.scenes.scene.designated_hazard`); zeros with distance 1e3 when the hazard is not logged at this
    frame."""
    scene, t = env.scene, env.t
    hazard = designated_hazard(scene)
    rows = np.flatnonzero(scene.agent_ids == hazard) if hazard is not None else []
    if len(rows) == 0 or not scene.agent_valid[rows[0], t]:
        return np.array([0, 0, 0, 0, 1e3, 1e3, horizon], dtype=np.float32)
    return _relative(env, int(rows[0]), horizon, dt)


def _relative(env: Any, row: int, horizon: float, dt: float) -> np.ndarray:
    """The seven features of agent ``row`` at the current frame (:func:`envs.prompt_state.agent_motion` against the
    closed loop's ego)."""
    pose = env.ego_poses[env.t]
    body = rotate_vectors(env.scene_view.ego_velocities[env.t], -float(pose[2]))
    return agent_motion(env.scene, row, env.t, pose, body, horizon, dt).astype(np.float32)


def conflict_state(env: Any, radius: float = 50.0, horizon: float = HAZARD_HORIZON, dt: float = HAZARD_STEP
                   ) -> np.ndarray:
    """``(7,)`` features (as :func:`hazard_state`) of the agent, valid and within ``radius`` m now, whose
    constant-velocity projection comes closest to the ego within ``horizon`` (ties: the earlier); no privileged
    knowledge (the current frame's positions and velocities only). Distance 1e3 when no agent is in range."""
    scene, t = env.scene, env.t
    pose = env.ego_poses[t]
    rows = [r for r in np.flatnonzero(scene.agent_valid[:, t])
            if np.hypot(*(scene.agent_poses[r, t, :2] - pose[:2])) <= radius]
    if not rows:
        return np.array([0, 0, 0, 0, 1e3, 1e3, horizon], dtype=np.float32)
    feats = [_relative(env, int(r), horizon, dt) for r in rows]
    return min(feats, key=lambda f: (round(float(f[5]), 3), float(f[6])))


def collect(source: Any, seconds: float = 3.0, prompt_agents: int = 0) -> dict[str, Any]:
    """The rows of ``source``'s hazard scenes (module docstring): ``bev uint8 (N, C, H, W)``, ``state (N, 7)``,
    ``conflict (N, 7)`` (:func:`conflict_state`), ``outcome (N,)`` class indices of :data:`HAZARD_OUTCOMES`,
    ``scene_id``, ``seconds`` (after the start) and, with
    ``prompt_agents`` K > 0, ``numbers (N, 2 + 6K)``: the observation's ``ego_velocity`` and ``agents`` rows."""
    env = ReplayEnv(source, "closed_loop", mlp_env_config(prompt_agents))
    policy = make_baseline("log_replay")
    bevs, states, conflicts, outcomes, scenes, times, numbers = [], [], [], [], [], [], []
    for i in range(len(source)):
        obs, info = env.reset(seed=i, options={"scene_index": i})
        outcome = scene_outcome(env.scene)
        if outcome not in HAZARD_OUTCOMES:
            continue
        start = env.t
        while True:
            elapsed = (env.t - start) * env.scene.dt
            if elapsed > seconds + 1e-9:
                break
            bevs.append(np.asarray(obs["bev"]))
            if prompt_agents:
                numbers.append(np.concatenate([np.ravel(obs["ego_velocity"]), np.ravel(obs["agents"])]))
            states.append(hazard_state(env))
            conflicts.append(conflict_state(env))
            outcomes.append(HAZARD_OUTCOMES.index(outcome))
            scenes.append(env.scene.scene_id)
            times.append(elapsed)
            obs, _, terminated, truncated, info = env.step(policy.act(policy_input(env, obs, info, True)))
            if terminated or truncated:
                break
    bev = np.stack(bevs)
    if bev.shape[-1] < bev.shape[1]:  # channels last -> first
        bev = np.moveaxis(bev, -1, 1)
    out = {"bev": bev, "state": np.stack(states), "conflict": np.stack(conflicts), "outcome": np.array(outcomes), "scene_id": scenes,
           "seconds": np.array(times)}
    if prompt_agents:
        out["numbers"] = np.stack(numbers).astype(np.float32)
    return out


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = train.mean(axis=0), train.std(axis=0) + 1e-6
    return (torch.as_tensor((train - mean) / std, dtype=torch.float32),
            torch.as_tensor((test - mean) / std, dtype=torch.float32))


def logistic(x_train: np.ndarray, y: np.ndarray, groups: Sequence[str], x_test: np.ndarray, seed: int = 0
             ) -> np.ndarray:
    """Predicted classes of ``x_test`` by the L2-selected multinomial logistic regression fitted on ``x_train``."""
    from agents.vla.label_head import fit_logistic, logistic_predict, select_l2

    xt, xe = _standardise(x_train.reshape(len(x_train), -1).astype(np.float32),
                          x_test.reshape(len(x_test), -1).astype(np.float32))
    yt = torch.as_tensor(y, dtype=torch.long)
    l2, _ = select_l2(xt, yt, len(HAZARD_OUTCOMES), list(groups), seed=seed)
    return logistic_predict(fit_logistic(xt, yt, len(HAZARD_OUTCOMES), l2), xe)


def state_mlp(x_train: np.ndarray, y: np.ndarray, x_test: np.ndarray, seed: int = 0) -> np.ndarray:
    """Predicted classes of ``x_test`` by ``benchmarks.bench_readability.train_mlp`` (two hidden layers, full batch)
    on the standardised features ``x_train``: a non-linear read-out of the same privileged state."""
    from benchmarks.bench_readability import Labels, train_mlp

    labels = Labels({"outcome": list(HAZARD_OUTCOMES)}, {"outcome": np.asarray(y, dtype=np.int64)})
    return train_mlp(x_train, labels, x_test, seed=seed)["outcome"]


def cnn(bev_train: np.ndarray, y: np.ndarray, bev_test: np.ndarray, steps: int = 600, seed: int = 0,
        batch_size: int = 64) -> np.ndarray:
    """Predicted classes of ``bev_test`` by :class:`benchmarks.bench_readability.SmallCNN` trained ``steps`` Adam
    steps on ``bev_train`` (uint8 ``(N, C, H, W)``, scaled to [-0.5, 0.5])."""
    from benchmarks.bench_readability import SmallCNN

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = SmallCNN({"outcome": len(HAZARD_OUTCOMES)}, size=bev_train.shape[-1], channels=bev_train.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def inputs(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=torch.float32) / 255.0 - 0.5

    yt = torch.as_tensor(y, dtype=torch.long)
    model.train()
    for _ in range(steps):
        idx = rng.integers(0, len(bev_train), size=min(batch_size, len(bev_train)))
        loss = torch.nn.functional.cross_entropy(model(inputs(bev_train[idx]))["outcome"], yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        return np.concatenate([model(inputs(bev_test[i:i + 256]))["outcome"].argmax(dim=1).numpy()
                               for i in range(0, len(bev_test), 256)])


def report(test: dict[str, Any], predictions: dict[str, np.ndarray]) -> str:
    """Markdown: held-out accuracy of each predictor (three outcomes), overall, as collision-or-not (a 3-way prediction
    read as "collision" or not) and per decision time."""
    y, secs = test["outcome"], test["seconds"]
    steps = sorted(set(np.round(secs, 1)))
    crash = HAZARD_OUTCOMES.index("collision")
    lines = ["| predictor | all rows | collision or not | " + " | ".join(f"{s:g} s" for s in steps) + " |",
             "|" + "---|" * (len(steps) + 3)]
    for name, pred in predictions.items():
        cells = [f"{100 * np.mean(pred == y):.1f}", f"{100 * np.mean((pred == crash) == (y == crash)):.1f}"]
        cells += [f"{100 * np.mean(pred[np.isclose(secs, s)] == y[np.isclose(secs, s)]):.1f}" for s in steps]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    counts = np.bincount(y, minlength=len(HAZARD_OUTCOMES))
    lines.append(f"\n{len(y)} held-out rows of {len(set(test['scene_id']))} scenes; outcomes "
                 + ", ".join(f"{o} {c}" for o, c in zip(HAZARD_OUTCOMES, counts))
                 + f"; collision or not, the trivial answer 'not' scores {100 * np.mean(y != crash):.1f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from envs.scenes.sources import bank_options, open_source

    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_outcome_readability",
                                description=__doc__.splitlines()[0])
    p.add_argument("--train-scenes", type=int, default=200)
    p.add_argument("--train-seed", type=int, default=8300)
    p.add_argument("--eval-scenes", type=int, default=96)
    p.add_argument("--eval-seed", type=int, default=8400)
    p.add_argument("--roads", choices=("classic", "families"), default="families")
    p.add_argument("--seconds", type=float, default=3.0, help="decisions up to this long after the start [s]")
    p.add_argument("--cnn-steps", type=int, default=600)
    p.add_argument("--prompt-agents", type=int, default=0,
                   help="K > 0: also the agents' numbers of agent.prompt_state=agents (K nearest), read by an MLP")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    families = args.roads != "classic"

    def bank(num_scenes: int, seed: int, road_families: list[str] | None) -> Any:
        return open_source("bank", num_scenes=num_scenes, seed=seed, **bank_options(
            outcomes="varied", outcome_mix=None, difficulty=0.5, roads=args.roads if families else None,
            background_density=None, expert=None, road_families=road_families if families else None))

    t0 = time.perf_counter()
    # training scenes on the training families (the held-out family excluded), held-out scenes on every family
    train = collect(bank(args.train_scenes, args.train_seed, None), args.seconds, args.prompt_agents)
    test = collect(bank(args.eval_scenes, args.eval_seed, ["all"]), args.seconds, args.prompt_agents)
    print(f"rows: {len(train['outcome'])} training ({args.train_scenes} scenes of seed {args.train_seed}), "
          f"{len(test['outcome'])} held out (seed {args.eval_seed}); {time.perf_counter() - t0:.0f} s")
    majority = np.full(len(test["outcome"]), np.bincount(train["outcome"]).argmax())
    predictions = {"majority": majority}
    t0 = time.perf_counter()
    predictions["bev-logistic"] = logistic(train["bev"], train["outcome"], train["scene_id"], test["bev"], args.seed)
    predictions["bev-cnn"] = cnn(train["bev"], train["outcome"], test["bev"], args.cnn_steps, args.seed)
    if args.prompt_agents:
        predictions[f"agents' numbers MLP (K={args.prompt_agents})"] = state_mlp(train["numbers"], train["outcome"],
                                                                                test["numbers"], args.seed)
    predictions["most-conflicting agent MLP"] = state_mlp(train["conflict"], train["outcome"], test["conflict"],
                                                          args.seed)
    predictions["state-oracle (privileged)"] = logistic(train["state"], train["outcome"], train["scene_id"],
                                                        test["state"], args.seed)
    predictions["state-oracle MLP (privileged)"] = state_mlp(train["state"], train["outcome"], test["state"],
                                                             args.seed)
    print(f"fits {time.perf_counter() - t0:.0f} s; SYNTHETIC bank, outcome-varied, roads {args.roads}\n")
    print(report(test, predictions))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

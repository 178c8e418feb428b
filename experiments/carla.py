"""``env=carla``: check the CARLA servers, drive episodes in :class:`envs.carla.CarlaEnv` with a baseline policy,
and hand the recordings to the pipeline as the ``"carla"`` scene source.

``python -m experiments.run env=carla`` fails within seconds when no server answers (a TCP probe of each
``env.hosts`` entry, then a version query), naming ``host:port`` and ``docker compose up carla``. With servers up it
drives ``env.num_episodes`` episodes round-robin over one environment per host (each with its own Traffic Manager
port), writes every episode to ``env.root`` (default ``<out>/carla``), and the later stages (render, mine, evaluate)
read those recordings like any other source (evaluation replays them non-reactively in ``ReplayEnv``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

def carla_config(env: Any, record_dir: Path, reward: Any = None):
    """The :class:`~envs.carla.CarlaEnvConfig` of the ``env`` group (worker 0) with the run's one reward
    (:class:`envs.sim.reward.RewardConfig`; None: its defaults)."""
    from envs.carla.config import CarlaEnvConfig
    from envs.carla.scenarios import SCENARIO_TYPES

    types = tuple(env.scenario_types) if env.scenario_types else SCENARIO_TYPES
    return CarlaEnvConfig(hosts=tuple(env.hosts), backend=str(env.backend), town=env.town or None, seed=int(env.seed),
                          scenario_types=types, episode_time=float(env.episode_time),
                          num_background=int(env.num_background), bev=None, record_dir=str(record_dir),
                          client_timeout=float(env.connect_timeout) * 3.0, reward=reward)


def check_servers(env: Any) -> None:
    """``SystemExit`` naming ``host:port`` and how to start a server unless every host answers with CARLA 0.9.16."""
    from envs.carla.connection import CarlaError, check_server, parse_host

    for spec in env.hosts:
        try:
            host, port = parse_host(str(spec))
            check_server(host, port, timeout=float(env.connect_timeout), backend=str(env.backend))
        except (CarlaError, ValueError, ImportError) as exc:
            raise SystemExit(f"env=carla: {exc}") from None


def carla_source(cfg: Any, out: Path | None) -> Any:
    """Check the servers, collect ``env.num_episodes`` recorded episodes, return their :class:`SceneSource`
    (``cfg``: the typed run configuration, :func:`experiments.run.typed_config`)."""
    import dataclasses

    from tqdm import tqdm

    from agents.base import policy_input
    from agents.baselines import make_baseline
    from envs.carla.env import CarlaEnv
    from envs.scenes.sources import open_source

    env = cfg.env
    check_servers(env)
    folder = Path(env.root) if env.root else Path(out or ".") / "carla"
    config = carla_config(env, folder, cfg.reward)
    policy = make_baseline(str(env.policy))
    workers = [CarlaEnv(dataclasses.replace(config, worker_index=i)) for i in range(len(config.hosts))]
    try:
        for i in tqdm(range(int(env.num_episodes)), desc="carla episodes", unit="episode", disable=not cfg.progress):
            worker = workers[i % len(workers)]
            obs, info = worker.reset(seed=int(env.seed) + i)
            policy.reset()
            done = False
            while not done:
                action = policy.act(policy_input(worker, obs, info, privileged=policy.requires_privileged))
                obs, _, terminated, truncated, info = worker.step(action)
                done = terminated or truncated
    finally:
        for worker in workers:
            worker.close()
    return open_source("carla", root=str(folder))

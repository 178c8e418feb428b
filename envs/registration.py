"""Gymnasium ids of the project's environments and their registration (called by :mod:`envs` on import)."""

from __future__ import annotations

import gymnasium

REPLAY_ENV_IDS = ("SafeAlign/Replay-OpenLoop-v0", "SafeAlign/Replay-ClosedLoop-v0")
"""Registered Gymnasium ids of :class:`envs.replay_env.ReplayEnv` (synthetic bank source, 16 scenes by default;
override with ``gymnasium.make(id, num_scenes=..., seed=..., config=EnvConfig(...))``)."""

CARLA_ENV_ID = "SafeAlign/Carla-v0"
"""Registered Gymnasium id of :class:`envs.carla.env.CarlaEnv` (needs a CARLA 0.9.16 server, or
``backend="standin"``; ``gymnasium.make(CARLA_ENV_ID, hosts=["localhost:2000"], town="Town03")``)."""


def register_envs() -> None:
    """Register every id above with Gymnasium (idempotent: ids already registered are left as they are)."""
    for env_id, mode in zip(REPLAY_ENV_IDS, ("open_loop", "closed_loop")):
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point="envs.replay_env:ReplayEnv",
                               kwargs={"source": "bank", "mode": mode, "num_scenes": 16})
    if CARLA_ENV_ID not in gymnasium.registry:
        gymnasium.register(id=CARLA_ENV_ID, entry_point="envs.carla.env:CarlaEnv")

"""Scenes, scene sources (built-in synthetic bank, DeepAccident reader, CARLA recordings), BEV rendering and Gymnasium
environments."""

import gymnasium

import envs.carla  # noqa: F401  (registers the "carla" scene source and origin kinds: resolve() works in any process)

REPLAY_ENV_IDS = ("SafeAlign/Replay-OpenLoop-v0", "SafeAlign/Replay-ClosedLoop-v0")
"""Registered Gymnasium ids of :class:`envs.replay_env.ReplayEnv` (synthetic bank source, 16 scenes by default;
override with ``gymnasium.make(id, num_scenes=..., seed=..., config=EnvConfig(...))``)."""

for _id, _mode in zip(REPLAY_ENV_IDS, ("open_loop", "closed_loop")):
    if _id not in gymnasium.registry:
        gymnasium.register(
            id=_id,
            entry_point="envs.replay_env:ReplayEnv",
            kwargs={"source": "bank", "mode": _mode, "num_scenes": 16},
        )

CARLA_ENV_ID = "SafeAlign/Carla-v0"
"""Registered Gymnasium id of :class:`envs.carla.env.CarlaEnv` (needs a CARLA 0.9.16 server, or
``backend="standin"``; ``gymnasium.make(CARLA_ENV_ID, hosts=["localhost:2000"], town="Town03")``)."""

if CARLA_ENV_ID not in gymnasium.registry:
    gymnasium.register(id=CARLA_ENV_ID, entry_point="envs.carla.env:CarlaEnv")

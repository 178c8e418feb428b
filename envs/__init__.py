"""Scenes, scene sources (built-in synthetic bank, DeepAccident reader), BEV rendering and Gymnasium environments."""

import gymnasium

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

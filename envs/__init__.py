"""Scenes, scene sources (built-in synthetic bank, DeepAccident reader, CARLA recordings), BEV rendering and Gymnasium
environments (ids in :mod:`envs.registration`, registered on import)."""

import envs.carla  # noqa: F401  (registers the "carla" scene source and origin kinds: resolve() works in any process)
from envs.registration import CARLA_ENV_ID, REPLAY_ENV_IDS, register_envs

__all__ = ["CARLA_ENV_ID", "REPLAY_ENV_IDS"]

register_envs()

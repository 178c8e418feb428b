"""CARLA 0.9.16: the Gymnasium environment (:class:`~envs.carla.env.CarlaEnv`, ``SafeAlign/Carla-v0``), its
connection, controller, scripted scenarios, recorder, and an in-process stand-in of the CARLA API for tests.

Modules: :mod:`~envs.carla.env` (the environment), :mod:`~envs.carla.config` (its configuration),
:mod:`~envs.carla.staging` (an episode's actors, sensors, map and recorder at ``reset``), :mod:`~envs.carla.ticking`
(controls, ticks, recorded frames, end checks), :mod:`~envs.carla.connection` (connect, versions,
synchronous mode, Traffic Manager, batch destroy, reconnect; ``check_server``), :mod:`~envs.carla.controller` (pure
pursuit + PID), :mod:`~envs.carla.scenarios` (the bank's typologies on CARLA waypoints), :mod:`~envs.carla.roadmap`
(CARLA map -> SceneMap), :mod:`~envs.carla.recording` (episodes as ``Scene(source="carla")``, files, the ``"carla"``
source and origin kinds), :mod:`~envs.carla.metrics` (collision events to the shared driving metrics of :mod:`envs.sim.metrics`),
:mod:`~envs.carla.frames` (left-handed CARLA <-> right-handed SafeAlign frames), :mod:`~envs.carla.standin`.

Importing this package (done by ``import envs``) only registers the source and origin kinds; the environment
module loads on first use (``from envs.carla import CarlaEnv``).
"""

from envs.carla import recording  # noqa: F401  (registers the "carla" source and origin kinds)

__all__ = ["CarlaEnv", "CarlaEnvConfig", "CameraConfig", "ENV_ID", "carla_env_fns"]


def __getattr__(name: str):
    if name in ("CarlaEnvConfig", "CameraConfig"):
        from envs.carla import config  # noqa: PLC0415

        return getattr(config, name)
    if name in __all__:
        from envs.carla import env  # noqa: PLC0415

        return getattr(env, name)
    raise AttributeError(f"module 'envs.carla' has no attribute {name!r}")

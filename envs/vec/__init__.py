"""Vector envs past one machine: :class:`~envs.vec.ray_vec_env.RayVecEnv` (an SB3 ``VecEnv`` whose workers are Ray
actors, one env each, restarted when they die) and :func:`~envs.vec.cluster.init_ray` (connect to a Ray cluster or
start a local one). Ray is the optional ``[scale]`` extra: importing this package does not import it."""

from envs.vec.cluster import init_ray, require_ray
from envs.vec.ray_vec_env import RayVecEnv, WorkerRestartError

__all__ = ["RayVecEnv", "WorkerRestartError", "init_ray", "require_ray"]

"""The environments GRPO (and the PPO baseline) train on, and the per-env calls GRPO makes on a vector env.

* :class:`GroupEnvWrapper`: adds ``info["decision_context"]`` (scene, frame, current and logged ego pose and speed:
  what :class:`agents.rl.grpo.anchors.AnchorBank` matches pairs with) to every ``reset`` / ``step`` info, and
  :meth:`GroupEnvWrapper.render_group` (a BEV image of the current state with a group drawn). The group itself is
  scored by the wrapped env's :meth:`~envs.replay_env.ReplayEnv.score_group` (reached through the wrappers).
* :class:`GroupEnvConfig` + :func:`make_group_env` / :func:`make_group_vec_env`: the closed-loop replay env on a
  bank (or any source), optionally wrapped for online mining (:class:`counterfactual.online.CollisionMiningWrapper`)
  and in normalised actions (:class:`envs.wrappers.NormalizedTrajectoryAction`, for the Gaussian policy and PPO);
  ``DummyVecEnv``, ``SubprocVecEnv`` or Ray actors (:class:`envs.vec.RayVecEnv`, ``backend="ray"``: on a cluster,
  a dead worker restarted and its episode truncated) (SB3's ``make_vec_env``, with ``Monitor``). Workers call
  ``torch.set_num_threads(1)``.
* :func:`call_each`: one env method per env with per-env arguments, run in parallel on a ``SubprocVecEnv`` or a
  ``RayVecEnv`` (SB3's ``env_method`` passes the same arguments to every env).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import gymnasium as gym
import numpy as np

from envs.render import BEVConfig, BEVRenderer
from envs.replay_env import EnvConfig, ReplayEnv
from envs.sim.scoring import ego_state_from_scene
from envs.wrappers import NormalizedTrajectoryAction

GROUP_VIEW = BEVConfig(height=256, width=256, meters_per_pixel=0.3, mode="rgb")
"""View of :meth:`GroupEnvWrapper.render_group` (the env's ``render`` view)."""


class GroupEnvWrapper(gym.Wrapper):
    """Decision context in every info, and group images (module docstring). Wraps a closed-loop
    :class:`~envs.replay_env.ReplayEnv` (or a wrapper of one)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._view: BEVRenderer | None = None

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        info = dict(info)
        info["decision_context"] = self.decision_context()
        return obs, info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        info["decision_context"] = self.decision_context()
        return obs, reward, terminated, truncated, info

    def decision_context(self) -> dict[str, Any]:
        """``{scene_id, frame, pose (3,), speed, logged_pose (3,), logged_speed, dt}`` of the current state (plain
        values; :class:`agents.rl.grpo.anchors.DecisionContext` fields): pose = current rear axle, world frame."""
        base = self.env.unwrapped
        t = int(base.t)
        ego = base.current_problem().ego
        logged = ego_state_from_scene(base.scene, t)
        return {"scene_id": base.scene.scene_id, "frame": t, "pose": np.asarray(ego.pose, dtype=np.float64).copy(),
                "speed": float(np.hypot(*ego.velocity)), "logged_pose": logged.pose.copy(),
                "logged_speed": float(np.hypot(*logged.velocity)), "dt": float(base.scene.dt)}

    def render_group(self, trajectories: np.ndarray, colors: Sequence[tuple[int, int, int]]) -> np.ndarray:
        """``uint8 (256, 256, 3)`` RGB view of the current state with trajectories ``(K, 8, 3)`` (current ego
        frame) drawn in ``colors`` (K RGB triples)."""
        base = self.env.unwrapped
        if self._view is None:
            self._view = BEVRenderer(GROUP_VIEW)
        return self._view.render(base.scene_view, int(base.t), np.asarray(trajectories, dtype=np.float64),
                                 [tuple(int(v) for v in c) for c in colors])


@dataclass
class GroupEnvConfig:
    """What :func:`make_group_env` builds."""

    source: Any = "bank"
    """Scene source (:func:`envs.scenes.sources.make_source`: ``"bank"``, a folder, ...)."""
    num_scenes: int = 32
    """Bank: number of scenes."""
    seed: int = 0
    """Bank: seed of the scenes (held-out evaluation uses another seed)."""
    scenario_types: Sequence[str] | None = None
    """Bank: typologies (None: all)."""
    env: EnvConfig = field(default_factory=lambda: EnvConfig(bev=None))
    """Replay env configuration (closed loop)."""
    normalized_actions: bool = True
    """Wrap in :class:`envs.wrappers.NormalizedTrajectoryAction` (Gaussian policy, PPO); False: trajectory actions
    ``(8, 3)`` (the VLA)."""
    max_speed: float = 20.0
    """Normalised actions: speed of ``a = 1`` [m/s]."""
    max_yaw_rate: float = 0.6
    """Normalised actions: yaw rate of ``a = +-1`` [rad/s]."""
    online_mining: bool = False
    """Mine anchor pairs from episodes that end in a collision (returned in the final ``info["anchor_pairs"]``)."""
    miner: Any = None
    """:class:`counterfactual.miner.MinerConfig` for online mining (None: defaults)."""


def make_group_env(config: GroupEnvConfig | None = None, base_env: gym.Env | None = None) -> gym.Env:
    """The closed-loop env of ``config`` (default: :class:`GroupEnvConfig()`; or around ``base_env``), wrapped as
    described in the module docstring."""
    config = GroupEnvConfig() if config is None else config
    env = base_env if base_env is not None else ReplayEnv(
        config.source, "closed_loop", config.env, num_scenes=config.num_scenes, seed=config.seed,
        scenario_types=None if config.scenario_types is None else list(config.scenario_types))
    if getattr(env.unwrapped, "mode", "closed_loop") != "closed_loop":
        raise ValueError("make_group_env: GRPO trains in closed loop; got an open-loop env")
    if config.online_mining:
        from counterfactual.miner import MinerConfig
        from counterfactual.online import CollisionMiningWrapper

        env = CollisionMiningWrapper(env, config.miner or MinerConfig(), policy_name="grpo")
    env = GroupEnvWrapper(env)
    if config.normalized_actions:
        env = NormalizedTrajectoryAction(env, config.max_speed, config.max_yaw_rate)
    return env


def _env_fn(config: GroupEnvConfig) -> Callable[[], gym.Env]:
    def make() -> gym.Env:
        import torch

        torch.set_num_threads(1)
        return make_group_env(config)

    return make


VEC_BACKENDS = ("dummy", "subprocess", "ray")
"""Where :func:`make_group_vec_env` runs the envs: this process, one process each, one Ray actor each."""


def make_group_vec_env(config: GroupEnvConfig | None = None, n_envs: int = 1, seed: int | None = None,
                       subprocess: bool = False, start_method: str | None = None, backend: str | None = None,
                       ray_options: Mapping[str, Any] | None = None):
    """``n_envs`` envs of ``config``, each in a ``Monitor`` (SB3's ``make_vec_env``; env ``i`` is seeded
    ``seed + i``), in a ``DummyVecEnv``, a ``SubprocVecEnv`` or a :class:`envs.vec.RayVecEnv` (Ray actors, on a
    cluster; ``ray_options``: its keyword arguments, e.g. ``{"address": "auto", "envs_per_worker": 8}``: 8 envs per
    actor, stepped in one call). ``backend`` (one of :data:`VEC_BACKENDS`) wins over ``subprocess`` (the older
    switch: True = ``"subprocess"``)."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    config = GroupEnvConfig() if config is None else config
    backend = backend or ("subprocess" if subprocess else "dummy")
    if backend not in VEC_BACKENDS:
        raise ValueError(f"make_group_vec_env: backend must be one of {VEC_BACKENDS}, got {backend!r}")
    if ray_options and backend != "ray":
        raise ValueError(f"make_group_vec_env: ray_options given for backend {backend!r} (only 'ray' takes them)")
    kwargs: dict[str, Any] = {}
    if backend == "subprocess":
        kwargs = {"vec_env_cls": SubprocVecEnv, "vec_env_kwargs": {"start_method": start_method or "forkserver"}}
    elif backend == "ray":
        from envs.vec import RayVecEnv

        kwargs = {"vec_env_cls": RayVecEnv, "vec_env_kwargs": dict(ray_options or {})}
    else:
        kwargs = {"vec_env_cls": DummyVecEnv}
    return make_vec_env(_env_fn(config), n_envs=n_envs, seed=seed, **kwargs)


def base_vec_env(venv: Any) -> Any:
    """The innermost VecEnv under SB3 ``VecEnvWrapper``s (``VecTransposeImage``, ``VecMonitor`` ...)."""
    from stable_baselines3.common.vec_env import VecEnvWrapper

    while isinstance(venv, VecEnvWrapper):
        venv = venv.venv
    return venv


def call_each(venv: Any, method: str, args: Sequence[tuple], kwargs: Sequence[Mapping[str, Any]] | None = None,
              indices: Sequence[int] | None = None) -> list[Any]:
    """``[env_i.method(*args[k], **kwargs[k]) for the k-th index i]``: the SB3 ``env_method`` protocol with per-env
    arguments; the calls run concurrently on a ``SubprocVecEnv`` or a :class:`envs.vec.RayVecEnv` (all sent, then all
    received)."""
    from stable_baselines3.common.vec_env import SubprocVecEnv

    from envs.vec.ray_vec_env import RayVecEnv

    base = base_vec_env(venv)
    if isinstance(base, RayVecEnv):
        return base.call_each(method, args, kwargs, indices)
    indices = list(range(base.num_envs)) if indices is None else list(indices)
    if len(args) != len(indices):
        raise ValueError(f"call_each: {len(args)} argument tuples for {len(indices)} envs")
    kwargs = [{}] * len(indices) if kwargs is None else list(kwargs)
    if isinstance(base, SubprocVecEnv):
        for i, a, k in zip(indices, args, kwargs):
            base.remotes[i].send(("env_method", (method, tuple(a), dict(k))))
        return [base.remotes[i].recv() for i in indices]
    return [base.env_method(method, *a, indices=[i], **k)[0] for i, a, k in zip(indices, args, kwargs)]


def decision_contexts(venv: Any, infos: Sequence[Mapping[str, Any]] | None, dones: np.ndarray | None) -> list[dict]:
    """The decision context of each env's *next* decision: the step's info, or the reset info where the episode
    ended (SB3 vector envs auto-reset and keep the new episode's info in ``reset_infos``)."""
    base = base_vec_env(venv)
    out = []
    for i in range(base.num_envs):
        if infos is None or (dones is not None and dones[i]):
            info = base.reset_infos[i]
        else:
            info = infos[i]
        ctx = info.get("decision_context") if isinstance(info, Mapping) else None
        if ctx is None:
            raise ValueError("GRPO: the env's infos carry no 'decision_context'; wrap it in "
                             "agents.rl.env.GroupEnvWrapper (make_group_env does)")
        out.append(ctx)
    return out

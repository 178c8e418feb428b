"""An SB3 ``VecEnv`` whose workers are Ray actors: rollouts on every machine of a Ray cluster (issue #31).

:class:`RayVecEnv` mirrors SB3's ``SubprocVecEnv`` (``stable_baselines3/common/vec_env/subproc_vec_env.py``) with a
Ray actor in place of each worker process: one actor owns one env built by its ``env_fn`` (a replay env of
:func:`agents.rl.env.make_group_env`, or a :class:`envs.carla.CarlaEnv` of :func:`envs.carla.carla_env_fns`, which
binds worker ``i`` to CARLA server ``hosts[i]`` and Traffic Manager port ``traffic_manager_port + i``). The contract
is SubprocVecEnv's, call for call:

* ``step_async`` sends every action at once, ``step_wait`` gathers ``(obs, rewards (n_envs,), dones (n_envs,),
  infos)``; a finished episode is reset in the worker (auto-reset) with ``info["terminal_observation"]`` and
  ``info["TimeLimit.truncated"] = truncated and not terminated``, and the new episode's reset info in
  ``reset_infos``;
* ``reset`` uses the seeds of ``seed(...)`` and the options of ``set_options(...)`` once; ``env_method``,
  ``get_attr``, ``set_attr``, ``has_attr``, ``env_is_wrapped``, ``render`` / ``get_images``, ``close``;
* plus :meth:`RayVecEnv.call_each` (one method per env with per-env arguments, all sent then all gathered: what
  GRPO's group scoring uses, :func:`agents.rl.env.call_each`).

**A worker that dies is restarted, the run goes on.** When an actor dies (its process or node is lost, ``ray.kill``,
or a step exceeds ``step_timeout`` and the actor is killed), a new actor is built from the same ``env_fn``, the
attributes set by ``set_attr`` are set again, and the env is reset (seed derived from the env's last reset seed and
its restart count, so a run stays reproducible). The episode that was running is *truncated*: that env's entry of
the step is ``done=True``, reward ``0.0``, the new episode's first observation, and an info with
``"TimeLimit.truncated": True``, ``"termination_reason": "worker_restart"``, ``"terminal_observation"`` (the last
observation the dead worker returned, so SB3 bootstraps the value of the cut episode as for a time limit) and
``"worker_restart": {"env_index", "restarts", "reason"}``. A death seen by ``env_method`` / ``get_attr`` / ... between
two steps restarts the worker the same way and retries the call once on the new env; the truncation is then
reported by the next ``step_wait`` (that env's action is not applied). A warning is issued on every restart; past
``max_restarts`` restarts of one env a :class:`WorkerRestartError` stops the run. An exception raised by the env
itself is not a death: it propagates (as from ``SubprocVecEnv``). Not carried over to a restarted env: state
changed by ``env_method`` calls, and the ``Monitor`` statistics of the cut episode.

Placement: each actor asks Ray for ``num_cpus_per_worker`` CPUs (default 1: one core per env worker, as
SubprocVecEnv's one process per env), so Ray spreads the workers over the cluster's nodes; ``actor_options`` passes
any other ``ray.remote`` option (``resources``, ``scheduling_strategy``, ``runtime_env``). The cluster is joined or
started by :func:`envs.vec.cluster.init_ray` (``address``: None = a local Ray).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn
from stable_baselines3.common.vec_env.subproc_vec_env import _stack_obs

from envs.vec.cluster import init_ray, require_ray

WORKER_RESTART = "worker_restart"
"""``info["termination_reason"]`` of an episode cut short by a worker restart."""


class WorkerRestartError(RuntimeError):
    """An env's worker died more than ``max_restarts`` times (the message names the env index and the last cause)."""


class _EnvWorker:
    """The body of one Ray actor: one env, the commands of SB3's ``SubprocVecEnv`` worker loop as methods."""

    def __init__(self, env_fn: Callable[[], gym.Env]) -> None:
        from stable_baselines3.common.vec_env.patch_gym import _patch_env

        self.env = _patch_env(env_fn())

    def step(self, action: Any) -> tuple[Any, float, bool, dict, dict]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        done = terminated or truncated
        info["TimeLimit.truncated"] = truncated and not terminated
        reset_info: dict[str, Any] = {}
        if done:
            info["terminal_observation"] = observation
            observation, reset_info = self.env.reset()
        return observation, reward, done, info, reset_info

    def reset(self, seed: int | None, options: Mapping[str, Any] | None) -> tuple[Any, dict]:
        maybe_options = {"options": options} if options else {}
        return self.env.reset(seed=seed, **maybe_options)

    def render(self) -> Any:
        return self.env.render()

    def spaces(self) -> tuple[gym.Space, gym.Space]:
        return self.env.observation_space, self.env.action_space

    def env_method(self, name: str, args: tuple, kwargs: Mapping[str, Any]) -> Any:
        return self.env.get_wrapper_attr(name)(*args, **kwargs)

    def get_attr(self, name: str) -> Any:
        return self.env.get_wrapper_attr(name)

    def has_attr(self, name: str) -> bool:
        try:
            self.env.get_wrapper_attr(name)
            return True
        except AttributeError:
            return False

    def set_attr(self, name: str, value: Any) -> None:
        setattr(self.env, name, value)

    def is_wrapped(self, wrapper_class: type[gym.Wrapper]) -> bool:
        from stable_baselines3.common.env_util import is_wrapped

        return is_wrapped(self.env, wrapper_class)

    def pid(self) -> int:
        """The worker's process id (tests, diagnostics)."""
        return os.getpid()

    def cpu_time(self) -> float:
        """CPU seconds the worker's process has used (``time.process_time``; benchmarks)."""
        return time.process_time()

    def close(self) -> None:
        self.env.close()


_ACTOR_CLASS: Any = None


def _actor_class() -> Any:
    global _ACTOR_CLASS
    if _ACTOR_CLASS is None:
        _ACTOR_CLASS = require_ray().remote(_EnvWorker)
    return _ACTOR_CLASS


def restart_seed(seed: int | None, env_index: int, restarts: int) -> int | None:
    """Reset seed of env ``env_index`` after its ``restarts``-th restart: None when its last reset had none, else a
    32-bit seed derived from ``(seed, env_index, restarts)`` (``numpy.random.SeedSequence``)."""
    if seed is None:
        return None
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, env_index, restarts]).generate_state(1)[0])


class RayVecEnv(VecEnv):
    """``len(env_fns)`` envs, each in its own Ray actor (see the module docstring).

    Args:
        env_fns: one constructor per env (called in the actor; pickled with cloudpickle).
        address: Ray cluster to join (:func:`envs.vec.cluster.init_ray`; None: the running Ray, else a local one).
        num_cpus_per_worker: CPUs each actor reserves (> 0; fractions share a core).
        max_restarts: restarts allowed per env before :class:`WorkerRestartError` (>= 0).
        step_timeout: seconds a ``step`` / ``reset`` / call may take before its actor is killed and restarted
            (None: wait forever).
        actor_options: more ``ray.remote`` options for every actor (``resources``, ``scheduling_strategy`` ...).
    """

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], address: str | None = None,
                 num_cpus_per_worker: float = 1.0, max_restarts: int = 5, step_timeout: float | None = None,
                 actor_options: Mapping[str, Any] | None = None) -> None:
        if not env_fns:
            raise ValueError("RayVecEnv: env_fns is empty (need at least one env constructor)")
        if not num_cpus_per_worker > 0:
            raise ValueError(f"RayVecEnv: num_cpus_per_worker must be > 0, got {num_cpus_per_worker!r}")
        if isinstance(max_restarts, bool) or not isinstance(max_restarts, (int, np.integer)) or max_restarts < 0:
            raise ValueError(f"RayVecEnv: max_restarts must be an int >= 0, got {max_restarts!r}")
        if step_timeout is not None and not step_timeout > 0:
            raise ValueError(f"RayVecEnv: step_timeout must be None or > 0 [s], got {step_timeout!r}")
        self._ray = init_ray(address)
        self.env_fns = list(env_fns)
        self.num_cpus_per_worker = float(num_cpus_per_worker)
        self.max_restarts = int(max_restarts)
        self.step_timeout = step_timeout
        self.actor_options = dict(actor_options or {})
        self.waiting = False
        self.closed = False
        n = len(self.env_fns)
        self.restarts = [0] * n
        """Restarts so far, per env."""
        self._attrs: list[dict[str, Any]] = [{} for _ in range(n)]
        self._reset_seed: list[int | None] = [None] * n
        self._pending: list[Any] = [None] * n
        self._restart_notes: list[dict[str, Any] | None] = [None] * n
        self._last_obs: list[Any] = [None] * n
        self.actors = [self._spawn(i) for i in range(n)]
        """The Ray actor handle of each env (replaced on a restart)."""
        try:
            observation_space, action_space = self._get(0, lambda a: a.spaces.remote(), retry=False)
        except BaseException:  # e.g. env 0's constructor failed (Ray's error carries its traceback)
            for i in range(n):
                self._kill(i)
            raise
        super().__init__(n, observation_space, action_space)

    # ------------------------------------------------------------------------------------------------ workers
    def _spawn(self, i: int) -> Any:
        """A new actor owning env ``i`` (built from ``env_fns[i]``)."""
        options = {"num_cpus": self.num_cpus_per_worker, "max_restarts": 0, **self.actor_options}
        return _actor_class().options(**options).remote(self.env_fns[i])

    def _kill(self, i: int) -> None:
        try:
            self._ray.kill(self.actors[i])
        except Exception:  # noqa: BLE001  (already dead)
            pass

    def _dead_errors(self) -> tuple[type[BaseException], ...]:
        exc = self._ray.exceptions
        return (exc.RayActorError, exc.GetTimeoutError)

    def _restart(self, i: int, reason: str, seed: int | None, options: Mapping[str, Any] | None) -> tuple[Any, dict]:
        """Replace env ``i``'s actor, set its attributes again and reset it; ``(obs, reset_info)``."""
        while True:
            self.restarts[i] += 1
            if self.restarts[i] > self.max_restarts:
                raise WorkerRestartError(f"RayVecEnv: env {i}'s worker died {self.restarts[i]} times "
                                         f"(max_restarts={self.max_restarts}); last cause: {reason}")
            warnings.warn(f"RayVecEnv: env {i}'s worker died ({reason}); restarting it "
                          f"(restart {self.restarts[i]} of at most {self.max_restarts})", RuntimeWarning,
                          stacklevel=3)
            self._kill(i)
            self.actors[i] = self._spawn(i)
            try:
                for name, value in self._attrs[i].items():
                    self._ray.get(self.actors[i].set_attr.remote(name, value), timeout=self.step_timeout)
                obs, info = self._ray.get(self.actors[i].reset.remote(seed, options), timeout=self.step_timeout)
            except self._dead_errors() as exc:
                reason = f"the restarted worker failed too: {_short(exc)}"
                continue
            self._last_obs[i] = obs
            return obs, info

    def _truncate(self, i: int, reason: str) -> dict[str, Any]:
        """Restart env ``i`` mid-episode (derived seed); the note its next step reports."""
        terminal = self._last_obs[i]
        seed = restart_seed(self._reset_seed[i], i, self.restarts[i] + 1)
        obs, reset_info = self._restart(i, reason, seed, None)
        return {"obs": obs, "reset_info": reset_info, "terminal_observation": terminal,
                "info": {"env_index": i, "restarts": self.restarts[i], "reason": reason}}

    def _get(self, i: int, submit: Callable[[Any], Any], retry: bool = True, ref: Any = None) -> Any:
        """``ray.get`` of ``submit(actor_i)`` (or of ``ref``, already submitted); on a dead worker: restart it (the
        episode is truncated at the next step) and, with ``retry``, submit once more to the new actor."""
        try:
            return self._ray.get(submit(self.actors[i]) if ref is None else ref, timeout=self.step_timeout)
        except self._dead_errors() as exc:
            if not retry:
                raise
            if self._restart_notes[i] is None:
                self._restart_notes[i] = self._truncate(i, _short(exc))
            else:  # died again before the note was reported: keep the first terminal observation
                note = self._truncate(i, _short(exc))
                note["terminal_observation"] = self._restart_notes[i]["terminal_observation"]
                self._restart_notes[i] = note
            return self._ray.get(submit(self.actors[i]), timeout=self.step_timeout)

    def _gather(self, indices: VecEnvIndices, submit: Callable[[Any, int], Any]) -> list[Any]:
        """Send ``submit(actor, k)`` to the ``k``-th target env, all at once, then gather in order."""
        targets = list(self._get_indices(indices))
        refs = [submit(self.actors[i], k) for k, i in enumerate(targets)]
        try:  # one gather for all (the common case: no worker died)
            return list(self._ray.get(refs, timeout=self.step_timeout))
        except self._dead_errors():
            pass  # find which one and restart it, below
        return [self._get(i, lambda a, k=k: submit(a, k), ref=ref) for k, (i, ref) in enumerate(zip(targets, refs))]

    # ------------------------------------------------------------------------------------------------ stepping
    def step_async(self, actions: np.ndarray) -> None:
        if len(actions) != self.num_envs:
            raise ValueError(f"RayVecEnv.step_async: {len(actions)} actions for {self.num_envs} envs")
        for i, action in enumerate(actions):
            self._pending[i] = None if self._restart_notes[i] is not None else self.actors[i].step.remote(action)
        self.waiting = True

    def step_wait(self) -> VecEnvStepReturn:
        refs, self._pending = self._pending, [None] * self.num_envs
        results = None
        if all(ref is not None for ref in refs):
            try:  # one gather for all: the common case, no worker died
                results = list(self._ray.get(refs, timeout=self.step_timeout))
            except self._dead_errors():
                pass  # which one: below
        if results is None:
            results = [self._step_result(i, ref) for i, ref in enumerate(refs)]
        self._last_obs = [r[0] for r in results]
        self.waiting = False
        obs, rews, dones, infos, self.reset_infos = zip(*results, strict=True)  # type: ignore[assignment]
        stacked = _stack_obs(obs, self.observation_space)
        return stacked, np.stack(rews), np.stack(dones), infos  # type: ignore[return-value]

    def _step_result(self, i: int, ref: Any) -> tuple[Any, float, bool, dict, dict]:
        """Env ``i``'s step result: its worker's, or a truncation when the worker died (or had died already)."""
        if ref is not None:
            try:
                return self._ray.get(ref, timeout=self.step_timeout)
            except self._dead_errors() as exc:
                self._restart_notes[i] = self._truncate(i, _short(exc))
        return self._restart_step(i)

    def _restart_step(self, i: int) -> tuple[Any, float, bool, dict, dict]:
        """Env ``i``'s step result for an episode cut by a worker restart (module docstring)."""
        note, self._restart_notes[i] = self._restart_notes[i], None
        assert note is not None
        info = {"TimeLimit.truncated": True, "terminal_observation": note["terminal_observation"],
                "termination_reason": WORKER_RESTART, WORKER_RESTART: note["info"]}
        return note["obs"], 0.0, True, info, dict(note["reset_info"])

    def reset(self) -> VecEnvObs:
        if self.waiting:  # abandon the pending step (its results are dropped)
            self.step_wait()
        refs = [a.reset.remote(self._seeds[i], self._options[i]) for i, a in enumerate(self.actors)]
        results = []
        for i, ref in enumerate(refs):
            self._restart_notes[i] = None  # a restarted worker's episode is over anyway
            try:
                results.append(self._ray.get(ref, timeout=self.step_timeout))
            except self._dead_errors() as exc:
                results.append(self._restart(i, _short(exc), self._seeds[i], self._options[i]))
            self._reset_seed[i] = self._seeds[i]
            self._last_obs[i] = results[-1][0]
        obs, self.reset_infos = zip(*results, strict=True)  # type: ignore[assignment]
        self._reset_seeds()
        self._reset_options()
        return _stack_obs(obs, self.observation_space)

    def close(self) -> None:
        if self.closed:
            return
        refs = []
        for actor in self.actors:
            try:
                refs.append(actor.close.remote())
            except Exception:  # noqa: BLE001
                pass
        for ref in refs:
            try:
                self._ray.get(ref, timeout=30.0)
            except Exception:  # noqa: BLE001  (a dead or hung worker: killed below)
                pass
        for i in range(self.num_envs):
            self._kill(i)
        self.closed = True

    # ---------------------------------------------------------------------------------------------- per-env calls
    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            warnings.warn(
                f"The render mode is {self.render_mode}, but this method assumes it is `rgb_array` to obtain images."
            )
            return [None for _ in range(self.num_envs)]
        return self._gather(None, lambda a, k: a.render.remote())

    def has_attr(self, attr_name: str) -> bool:
        return all(self._gather(None, lambda a, k: a.has_attr.remote(attr_name)))

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return self._gather(indices, lambda a, k: a.get_attr.remote(attr_name))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        for i in self._get_indices(indices):
            self._attrs[i][attr_name] = value
        self._gather(indices, lambda a, k: a.set_attr.remote(attr_name, value))

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        return self._gather(indices, lambda a, k: a.env_method.remote(method_name, method_args, method_kwargs))

    def call_each(self, method_name: str, args: Sequence[tuple], kwargs: Sequence[Mapping[str, Any]] | None = None,
                  indices: VecEnvIndices = None) -> list[Any]:
        """``[env_i.method_name(*args[k], **kwargs[k]) for the k-th index i]``, all sent, then all gathered."""
        targets = list(self._get_indices(indices))
        if len(args) != len(targets):
            raise ValueError(f"RayVecEnv.call_each: {len(args)} argument tuples for {len(targets)} envs")
        kw = [{}] * len(targets) if kwargs is None else list(kwargs)
        return self._gather(targets, lambda a, k: a.env_method.remote(method_name, tuple(args[k]), dict(kw[k])))

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return self._gather(indices, lambda a, k: a.is_wrapped.remote(wrapper_class))

    def worker_cpu_times(self) -> list[float]:
        """CPU seconds each env's worker process has used (benchmarks: the work a core would do per worker)."""
        return self._gather(None, lambda a, k: a.cpu_time.remote())

    def worker_pids(self) -> list[int]:
        """Process id of each env's worker (diagnostics; tests check that the envs run in distinct processes)."""
        return self._gather(None, lambda a, k: a.pid.remote())


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."

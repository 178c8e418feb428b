"""An SB3 ``VecEnv`` whose workers are Ray actors: rollouts on every machine of a Ray cluster (issue #31).

:class:`RayVecEnv` mirrors SB3's ``SubprocVecEnv`` (``stable_baselines3/common/vec_env/subproc_vec_env.py``) with a
Ray actor in place of each worker process. Each actor owns ``envs_per_worker`` envs (default 1; the last actor owns
the remainder), built by their ``env_fns`` (replay envs of :func:`agents.rl.env.make_group_env`, or
:class:`envs.carla.CarlaEnv` of :func:`envs.carla.carla_env_fns`, which binds env ``i`` to CARLA server ``hosts[i]``
and Traffic Manager port ``traffic_manager_port + i``). Env ``i`` lives on worker ``i // envs_per_worker``
(:attr:`RayVecEnv.worker_index`); the envs are numbered as in a ``DummyVecEnv`` over the same ``env_fns`` and their
observations, rewards, dones and infos come back in that order. **Several envs per actor**: one actor call steps all
of the actor's envs one after the other (the ``DummyVecEnv`` loop inside the worker, observations stacked there into
one array per key), so one round trip carries ``envs_per_worker`` env steps; the per-env calls (``env_method``,
``call_each``, ``get_attr`` ...) are likewise sent as one batch per actor. The contract is SubprocVecEnv's, call for
call:

* ``step_async`` sends every action at once, ``step_wait`` gathers ``(obs, rewards (n_envs,), dones (n_envs,),
  infos)``; a finished episode is reset in the worker (auto-reset) with ``info["terminal_observation"]`` and
  ``info["TimeLimit.truncated"] = truncated and not terminated``, and the new episode's reset info in
  ``reset_infos``;
* ``reset`` uses the seeds of ``seed(...)`` and the options of ``set_options(...)`` once; ``env_method``,
  ``get_attr``, ``set_attr``, ``has_attr``, ``env_is_wrapped``, ``render`` / ``get_images``, ``close``;
* plus :meth:`RayVecEnv.call_each` (one method per env with per-env arguments, all sent then all gathered: what
  GRPO's group scoring uses, :func:`agents.rl.env.call_each`).

**A worker that dies is restarted, the run goes on.** When an actor dies (its process or node is lost, ``ray.kill``,
or a call exceeds ``step_timeout`` and the actor is killed), a new actor is built from the same ``env_fns``, the
attributes set by ``set_attr`` are set again, and each of its envs is reset (seed derived from that env's last reset
seed, its index and its restart count, so a run stays reproducible). The episode each of those envs was running is
*truncated*: its entry of the step is ``done=True``, reward ``0.0``, the new episode's first observation, and an info
with ``"TimeLimit.truncated": True``, ``"termination_reason": "worker_restart"``, ``"terminal_observation"`` (the last
observation the dead worker returned for that env, so SB3 bootstraps the value of the cut episode as for a time
limit) and ``"worker_restart": {"env_index", "worker_index", "restarts", "reason"}``. A death seen by ``env_method``
/ ``get_attr`` / ... between two steps restarts the worker the same way and retries the call once on the new envs;
the truncations are then reported by the next ``step_wait`` (that worker's actions are not applied). A warning is
issued on every restart; past ``max_restarts`` restarts of one worker (counted per env in :attr:`restarts`: every
env of a worker has its worker's count) a :class:`WorkerRestartError` stops the run. An exception raised by an env
itself is not a death: it propagates (as from ``SubprocVecEnv``). Not carried over to a restarted env: state
changed by ``env_method`` calls, and the ``Monitor`` statistics of the cut episode.

**Deferred reward terms stay in the worker until read** (``deferred_terms``). A closed-loop replay env step defers
the reward terms that need the EP references (``pdms``, ``sp_pdms``, ``ep`` ...: :class:`envs.sim.terms.DeferredTerms`,
most of such a step's work when nothing reads them). Pickling ``info["rewards"]`` would compute them in the worker
for every step; instead the worker sends the eager terms and the deferred names, and the driver's
``info["rewards"]`` is again a :class:`~envs.sim.terms.DeferredTerms`: its first read (``DrivingMetrics`` reads
``pdms`` / ``sp_pdms`` every step in GRPO and PPO, evaluation reads them) asks the workers for that vector step's
terms, every env at once (one call per worker, concurrently), and the worker computes them then. ``"on_read"``
always does that; ``"with_step"`` computes them in the worker before the step returns (one round trip; what a
consumer that reads every step wants); ``"auto"`` (default) computes them with the step when the previous step's
terms were read, else leaves them in the worker: a consumer that reads every step pays one extra round trip on the
first step, one that never reads never pays for them. The values are the same, bit for bit, in every mode and equal
a ``DummyVecEnv``'s. A worker keeps unread terms for :data:`HELD_STEPS` vector steps; terms read later, or lost with
a dead worker, read as NaN with a ``RuntimeWarning`` (``DrivingMetrics`` skips NaN).

**New episodes prepared while the worker would wait** (``prepare_episodes``, default off): right behind each
``step`` (and ``reset``) call, the driver queues a ``prepare`` call on the same actor, which runs the envs' new
episodes' first-step work that does not depend on the action (:meth:`envs.replay_env.ReplayEnv.prepare_episode`: the
driving metrics' reference progress, a few ms per episode while it is not cached): it runs while the driver gathers
the step and the other workers finish theirs, instead of inside the next step (a vector step waits for its slowest
worker). Nothing returned changes. It pays while the envs' caches are cold (the first few hundred vector steps:
1 worker x 8 envs, vector steps 50-350, 23.2 instead of 27.4 ms each, loaded machine); once each env has cached its
(scene, start frame) references the call finds nothing to do (0.07 ms) and costs one more actor call per step.

Placement: each actor asks Ray for ``num_cpus_per_worker`` CPUs (default 1: one core per worker, as SubprocVecEnv's
one process per env), so Ray spreads the workers over the cluster's nodes; ``actor_options`` passes any other
``ray.remote`` option (``resources``, ``scheduling_strategy``, ``runtime_env``). The cluster is joined or started by
:func:`envs.vec.cluster.init_ray` (``address``: None = a local Ray). How many envs per worker: enough that the round
trip (about 2 ms of driver and worker CPU on a 2-core machine) is small against the envs' steps it carries (the
replay env steps in about 2 ms: ``benchmarks/bench_scale`` uses 8); CARLA envs, bound to one server each, keep 1.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn
from stable_baselines3.common.vec_env.subproc_vec_env import _stack_obs

from envs.sim.terms import DeferredTerms
from envs.vec.cluster import init_ray, require_ray

WORKER_RESTART = "worker_restart"
"""``info["termination_reason"]`` of an episode cut short by a worker restart."""

DEFERRED_TERMS_MODES = ("auto", "with_step", "on_read")
"""Where the deferred reward terms of a step (``info["rewards"]``, :class:`envs.sim.terms.DeferredTerms`) are
computed (:class:`RayVecEnv`'s ``deferred_terms``; module docstring)."""

HELD_STEPS = 8
"""``on_read``: vector steps a worker keeps its envs' unread deferred terms (older ones read as NaN, with a warning)."""


class _WorkerTerms(NamedTuple):
    """``info["rewards"]`` as a worker sends it when the env deferred terms (:class:`envs.sim.terms.DeferredTerms`):
    the values (``resolved``: every term; else the eager ones, the deferred ``names`` kept in the worker)."""

    values: dict[str, Any]
    names: tuple[str, ...]
    resolved: bool


class WorkerRestartError(RuntimeError):
    """A worker died more than ``max_restarts`` times (the message names its envs and the last cause)."""


def _call_env(env: gym.Env, op: str, payload: Any) -> Any:
    """One per-env call of the ``VecEnv`` API on ``env`` (``op``: what ``SubprocVecEnv``'s worker loop answers)."""
    if op == "env_method":
        name, args, kwargs = payload
        return env.get_wrapper_attr(name)(*args, **kwargs)
    if op == "get_attr":
        return env.get_wrapper_attr(payload)
    if op == "has_attr":
        try:
            env.get_wrapper_attr(payload)
            return True
        except AttributeError:
            return False
    if op == "set_attr":
        name, value = payload
        setattr(env, name, value)
        return None
    if op == "is_wrapped":
        from stable_baselines3.common.env_util import is_wrapped

        return is_wrapped(env, payload)
    if op == "render":
        return env.render()
    raise ValueError(f"RayVecEnv worker: unknown call {op!r}")


class _EnvWorker:
    """The body of one Ray actor: ``len(env_fns)`` envs (its *slots*), the commands of SB3's ``SubprocVecEnv`` worker
    loop vectorised over them (``DummyVecEnv``'s loop, run in the actor)."""

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]]) -> None:
        from stable_baselines3.common.vec_env.patch_gym import _patch_env

        self.envs = [_patch_env(fn()) for fn in env_fns]
        self.observation_space = self.envs[0].observation_space
        self.step_cpu = 0.0
        """CPU seconds spent inside the envs' steps (main thread; benchmarks)."""
        self.held: OrderedDict[int, dict[int, DeferredTerms]] = OrderedDict()
        """``{step id: {slot: terms}}``: the unread deferred terms of the last :data:`HELD_STEPS` steps."""
        self.to_prepare: set[int] = set()
        """Slots whose episode began since the last :meth:`prepare`."""
        self.prepare_cpu = 0.0
        """CPU seconds spent inside :meth:`prepare` (main thread; benchmarks)."""
        self.terms_counts = {"with_step": 0, "held": 0, "on_read": 0}
        """Steps whose deferred terms were computed with the step, kept in the worker, computed when read."""

    def step(self, actions: Any, step_id: int | None = None,
             resolve_terms: bool = True) -> tuple[VecEnvObs, np.ndarray, np.ndarray, list[dict], list[dict]]:
        """Step slot ``s`` with ``actions[s]`` (auto-reset as ``DummyVecEnv``); ``(obs stacked (k, ...), rewards (k,),
        dones (k,) bool, infos, reset_infos)`` (a slot's reset info is ``{}`` unless its episode ended). With a
        ``step_id``, an info's deferred reward terms are sent as :class:`_WorkerTerms`: computed now
        (``resolve_terms``) or kept in :attr:`held` under ``step_id`` for :meth:`deferred_terms`."""
        start = time.thread_time()
        try:
            result = self._step(actions)
        finally:
            self.step_cpu += time.thread_time() - start
        if step_id is not None:
            self._ship_terms(result[3], step_id, resolve_terms)
        return result

    def _ship_terms(self, infos: list[dict], step_id: int, resolve: bool) -> None:
        held = {}
        for slot, info in enumerate(infos):
            terms = info.get("rewards")
            if isinstance(terms, DeferredTerms) and terms.pending:
                names = terms.pending_names
                self.terms_counts["with_step" if resolve else "held"] += 1
                if resolve:
                    info["rewards"] = _WorkerTerms(terms.copy(), names, True)
                else:
                    info["rewards"] = _WorkerTerms(terms.known(), names, False)
                    held[slot] = terms
        if held:
            self.held[step_id] = held
            while len(self.held) > HELD_STEPS:
                self.held.popitem(last=False)

    def deferred_terms(self, step_id: int) -> dict[int, dict[str, Any]]:
        """``{slot: {name: value}}``: the deferred terms of step ``step_id`` kept in :attr:`held`, computed now (and
        forgotten here); slots whose terms are no longer held are absent."""
        out = {}
        for slot, terms in self.held.pop(step_id, {}).items():
            names = terms.pending_names
            out[slot] = {name: terms[name] for name in names}
        self.terms_counts["on_read"] += len(out)
        return out

    def _step(self, actions: Any) -> tuple[VecEnvObs, np.ndarray, np.ndarray, list[dict], list[dict]]:
        observations, rewards, dones, infos, reset_infos = [], [], [], [], []
        for env, action in zip(self.envs, actions, strict=True):
            observation, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            info["TimeLimit.truncated"] = truncated and not terminated
            reset_info: dict[str, Any] = {}
            if done:
                info["terminal_observation"] = observation
                observation, reset_info = env.reset()
                self.to_prepare.add(len(observations))
            observations.append(observation)
            rewards.append(reward)
            dones.append(done)
            infos.append(info)
            reset_infos.append(reset_info)
        return (_stack_obs(observations, self.observation_space), np.stack(rewards), np.asarray(dones, dtype=bool),
                infos, reset_infos)

    def reset(self, seeds: Sequence[int | None], options: Sequence[Mapping[str, Any] | None]) -> tuple[VecEnvObs,
                                                                                                      list[dict]]:
        """Reset slot ``s`` with ``seeds[s]`` and ``options[s]``; ``(obs stacked (k, ...), reset infos)``."""
        observations, infos = [], []
        for env, seed, opts in zip(self.envs, seeds, options, strict=True):
            maybe_options = {"options": opts} if opts else {}
            observation, info = env.reset(seed=seed, **maybe_options)
            observations.append(observation)
            infos.append(info)
        self.to_prepare = set(range(len(self.envs)))
        return _stack_obs(observations, self.observation_space), infos

    def prepare(self) -> None:
        """Call ``prepare_episode()`` (where the env has it: :meth:`envs.replay_env.ReplayEnv.prepare_episode`) of
        the envs whose episode began since the last call: the first step's work done now, while the driver and the
        other workers finish the vector step (the same values either way)."""
        start = time.thread_time()
        try:
            slots, self.to_prepare = sorted(self.to_prepare), set()
            for slot in slots:
                prepare = getattr(self.envs[slot].unwrapped, "prepare_episode", None)
                if callable(prepare):
                    prepare()
        finally:
            self.prepare_cpu += time.thread_time() - start

    def call(self, requests: Sequence[tuple[int, str, Any]]) -> list[Any]:
        """``[answer of (slot, op, payload)]`` in order (see :func:`_call_env`)."""
        return [_call_env(self.envs[slot], op, payload) for slot, op, payload in requests]

    def deferred_terms_counts(self) -> dict[str, int]:
        """:attr:`terms_counts` (benchmarks, tests)."""
        return dict(self.terms_counts)

    def spaces(self) -> tuple[gym.Space, gym.Space]:
        return self.observation_space, self.envs[0].action_space

    def pid(self) -> int:
        """The worker's process id (tests, diagnostics)."""
        return os.getpid()

    def cpu_time(self, main_thread_only: bool = False) -> tuple[float, float, float]:
        """``(CPU seconds, of which inside the envs' steps, of which inside prepare)``: the CPU time of the worker's
        process (``time.process_time``; benchmarks), or of its main thread only (``time.thread_time``: the envs' work,
        the (de)serialisation of calls and the waits for the next one, without Ray's background threads)."""
        return (time.thread_time() if main_thread_only else time.process_time()), self.step_cpu, self.prepare_cpu

    def close(self) -> None:
        for env in self.envs:
            env.close()


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


def _obs_item(block: VecEnvObs, slot: int) -> Any:
    """One env's observation out of a stacked block (array, dict or tuple of arrays with the env axis first)."""
    if isinstance(block, dict):
        return {key: value[slot] for key, value in block.items()}
    if isinstance(block, tuple):
        return tuple(value[slot] for value in block)
    return block[slot]


def _concat_obs(blocks: Sequence[VecEnvObs]) -> VecEnvObs:
    """The workers' stacked blocks joined along the env axis (new, writable arrays)."""
    first = blocks[0]
    if isinstance(first, dict):
        return {key: np.concatenate([b[key] for b in blocks]) for key in first}
    if isinstance(first, tuple):
        return tuple(np.concatenate([b[j] for b in blocks]) for j in range(len(first)))
    return np.concatenate(blocks)


class RayVecEnv(VecEnv):
    """``len(env_fns)`` envs on Ray actors, ``envs_per_worker`` per actor (see the module docstring).

    Args:
        env_fns: one constructor per env (called in its actor; pickled with cloudpickle).
        address: Ray cluster to join (:func:`envs.vec.cluster.init_ray`; None: the running Ray, else a local one).
        num_cpus_per_worker: CPUs each actor reserves (> 0; fractions share a core).
        max_restarts: restarts allowed per worker before :class:`WorkerRestartError` (>= 0).
        step_timeout: seconds a ``step`` / ``reset`` / call may take before its actor is killed and restarted
            (None: wait forever). With several envs per worker, the time of all of them.
        actor_options: more ``ray.remote`` options for every actor (``resources``, ``scheduling_strategy`` ...).
        envs_per_worker: envs each actor owns and steps in one call (>= 1; the last actor owns the remainder).
        prepare_episodes: after sending a worker its step (or reset), also send it a :meth:`_EnvWorker.prepare` call:
            the first step of each new episode is partly computed while the worker would wait (module docstring;
            default off: it pays only while the envs' caches are cold).
        deferred_terms: where a step's deferred reward terms are computed (one of :data:`DEFERRED_TERMS_MODES`;
            module docstring): ``"with_step"`` in the worker before the step returns, ``"on_read"`` in the worker
            when the driver first reads them, ``"auto"`` (default) ``with_step`` after a step whose terms were read,
            else ``on_read``. The values are the same in every mode.
    """

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], address: str | None = None,
                 num_cpus_per_worker: float = 1.0, max_restarts: int = 5, step_timeout: float | None = None,
                 actor_options: Mapping[str, Any] | None = None, envs_per_worker: int = 1,
                 deferred_terms: str = "auto", prepare_episodes: bool = False) -> None:
        if not env_fns:
            raise ValueError("RayVecEnv: env_fns is empty (need at least one env constructor)")
        if not num_cpus_per_worker > 0:
            raise ValueError(f"RayVecEnv: num_cpus_per_worker must be > 0, got {num_cpus_per_worker!r}")
        if isinstance(max_restarts, bool) or not isinstance(max_restarts, (int, np.integer)) or max_restarts < 0:
            raise ValueError(f"RayVecEnv: max_restarts must be an int >= 0, got {max_restarts!r}")
        if step_timeout is not None and not step_timeout > 0:
            raise ValueError(f"RayVecEnv: step_timeout must be None or > 0 [s], got {step_timeout!r}")
        if isinstance(envs_per_worker, bool) or not isinstance(envs_per_worker, (int, np.integer)) \
                or envs_per_worker < 1:
            raise ValueError(f"RayVecEnv: envs_per_worker must be an int >= 1, got {envs_per_worker!r}")
        if deferred_terms not in DEFERRED_TERMS_MODES:
            raise ValueError(f"RayVecEnv: deferred_terms must be one of {DEFERRED_TERMS_MODES}, got "
                             f"{deferred_terms!r}")
        self._ray = init_ray(address)
        self.env_fns = list(env_fns)
        self.num_cpus_per_worker = float(num_cpus_per_worker)
        self.max_restarts = int(max_restarts)
        self.step_timeout = step_timeout
        self.actor_options = dict(actor_options or {})
        self.envs_per_worker = int(envs_per_worker)
        self.deferred_terms = deferred_terms
        self.prepare_episodes = bool(prepare_episodes)
        self._step_id = 0
        self._terms_read = False
        self._unread: OrderedDict[int, set[int]] = OrderedDict()  # step id -> workers holding its deferred terms
        self._fetched: OrderedDict[int, dict[tuple[int, int], dict[str, Any]]] = OrderedDict()
        self.waiting = False
        self.closed = False
        n, k = len(self.env_fns), self.envs_per_worker
        self.worker_envs: list[list[int]] = [list(range(s, min(s + k, n))) for s in range(0, n, k)]
        """The env indices of each worker (worker ``w`` owns ``w * k ... w * k + k - 1``)."""
        self.worker_index: list[int] = [i // k for i in range(n)]
        """The worker of each env."""
        self.restarts = [0] * n
        """Restarts so far, per env (its worker's count)."""
        workers = len(self.worker_envs)
        self._attrs: list[dict[str, Any]] = [{} for _ in range(n)]
        self._reset_seed: list[int | None] = [None] * n
        self._pending: list[Any] = [None] * workers
        self._restart_notes: list[dict[str, Any] | None] = [None] * workers
        self._last_obs: list[VecEnvObs | None] = [None] * workers
        self.actors = [self._spawn(w) for w in range(workers)]
        """The Ray actor handle of each worker (replaced on a restart; with 1 env per worker, of each env)."""
        try:
            observation_space, action_space = self._ray.get(self.actors[0].spaces.remote(), timeout=step_timeout)
        except BaseException:  # e.g. env 0's constructor failed (Ray's error carries its traceback)
            for w in range(workers):
                self._kill(w)
            raise
        super().__init__(n, observation_space, action_space)

    @property
    def num_workers(self) -> int:
        """Ray actors (``ceil(num_envs / envs_per_worker)``)."""
        return len(self.worker_envs)

    # ------------------------------------------------------------------------------------------------ workers
    def _spawn(self, w: int) -> Any:
        """A new actor owning worker ``w``'s envs (built from their ``env_fns``)."""
        options = {"num_cpus": self.num_cpus_per_worker, "max_restarts": 0, **self.actor_options}
        return _actor_class().options(**options).remote([self.env_fns[i] for i in self.worker_envs[w]])

    def _kill(self, w: int) -> None:
        try:
            self._ray.kill(self.actors[w])
        except Exception:  # noqa: BLE001  (already dead)
            pass

    def _dead_errors(self) -> tuple[type[BaseException], ...]:
        exc = self._ray.exceptions
        return (exc.RayActorError, exc.GetTimeoutError)

    def _label(self, w: int) -> str:
        """``env 3`` or ``envs 2-3`` (warnings, errors)."""
        envs = self.worker_envs[w]
        return f"env {envs[0]}" if len(envs) == 1 else f"envs {envs[0]}-{envs[-1]}"

    def _restart(self, w: int, reason: str, seeds: Sequence[int | None],
                 options: Sequence[Mapping[str, Any] | None]) -> tuple[VecEnvObs, list[dict]]:
        """Replace worker ``w``'s actor, set its envs' attributes again and reset them; ``(obs block, reset
        infos)``."""
        envs = self.worker_envs[w]
        while True:
            for i in envs:
                self.restarts[i] += 1
            count = self.restarts[envs[0]]
            if count > self.max_restarts:
                raise WorkerRestartError(f"RayVecEnv: {self._label(w)}'s worker died {count} times "
                                         f"(max_restarts={self.max_restarts}); last cause: {reason}")
            warnings.warn(f"RayVecEnv: {self._label(w)}'s worker died ({reason}); restarting it "
                          f"(restart {count} of at most {self.max_restarts})", RuntimeWarning, stacklevel=3)
            self._kill(w)
            self.actors[w] = self._spawn(w)
            requests = [(s, "set_attr", item) for s, i in enumerate(envs) for item in self._attrs[i].items()]
            try:
                if requests:
                    self._ray.get(self.actors[w].call.remote(requests), timeout=self.step_timeout)
                obs, infos = self._ray.get(self.actors[w].reset.remote(list(seeds), list(options)),
                                           timeout=self.step_timeout)
            except self._dead_errors() as exc:
                reason = f"the restarted worker failed too: {_short(exc)}"
                continue
            self._last_obs[w] = obs
            return obs, infos

    def _truncate(self, w: int, reason: str) -> None:
        """Restart worker ``w`` mid-episode (derived seeds); its next step reports the truncations."""
        envs = self.worker_envs[w]
        last, note = self._last_obs[w], self._restart_notes[w]
        if note is not None:  # died again before the note was reported: keep the first terminal observations
            terminal = note["terminal"]
        else:
            terminal = [None if last is None else _obs_item(last, s) for s in range(len(envs))]
        seeds = [restart_seed(self._reset_seed[i], i, self.restarts[i] + 1) for i in envs]
        obs, reset_infos = self._restart(w, reason, seeds, [None] * len(envs))
        self._restart_notes[w] = {"obs": obs, "reset_infos": reset_infos, "terminal": terminal, "reason": reason}

    def _call(self, w: int, requests: list[tuple[int, str, Any]], ref: Any = None) -> list[Any]:
        """Worker ``w``'s answers to ``requests`` (``ref``: already submitted); on a dead worker: restart it (its
        episodes are truncated at the next step) and submit once more to the new actor."""
        try:
            return self._ray.get(self.actors[w].call.remote(requests) if ref is None else ref,
                                 timeout=self.step_timeout)
        except self._dead_errors() as exc:
            self._truncate(w, _short(exc))
            return self._ray.get(self.actors[w].call.remote(requests), timeout=self.step_timeout)

    def _gather(self, indices: VecEnvIndices, request: Callable[[int], tuple[str, Any]]) -> list[Any]:
        """``request(k) = (op, payload)`` for the ``k``-th target env, one batch per worker, all sent at once, then
        gathered; the answers in target order."""
        targets = list(self._get_indices(indices))
        batches: dict[int, list[tuple[int, int, str, Any]]] = {}
        for k, i in enumerate(targets):
            w = self.worker_index[i]
            batches.setdefault(w, []).append((k, i - self.worker_envs[w][0], *request(k)))
        requests = {w: [(slot, op, payload) for _, slot, op, payload in batch] for w, batch in batches.items()}
        refs = {w: self.actors[w].call.remote(reqs) for w, reqs in requests.items()}
        answers = None
        try:  # one gather for all (the common case: no worker died)
            answers = dict(zip(refs, self._ray.get(list(refs.values()), timeout=self.step_timeout)))
        except self._dead_errors():
            pass  # find which one and restart it, below
        if answers is None:
            answers = {w: self._call(w, requests[w], ref) for w, ref in refs.items()}
        out: list[Any] = [None] * len(targets)
        for w, batch in batches.items():
            for (k, *_), answer in zip(batch, answers[w], strict=True):
                out[k] = answer
        return out

    # ------------------------------------------------------------------------------------------------ stepping
    def step_async(self, actions: np.ndarray) -> None:
        if len(actions) != self.num_envs:
            raise ValueError(f"RayVecEnv.step_async: {len(actions)} actions for {self.num_envs} envs")
        self._step_id += 1
        resolve = self.deferred_terms == "with_step" or (self.deferred_terms == "auto" and self._terms_read)
        self._terms_read = False
        for w, envs in enumerate(self.worker_envs):
            if self._restart_notes[w] is not None:
                self._pending[w] = None
            else:
                self._pending[w] = self.actors[w].step.remote(actions[envs[0]:envs[-1] + 1], self._step_id, resolve)
                self._prepare(w)
        self.waiting = True

    def _prepare(self, w: int) -> None:
        """Queue worker ``w``'s :meth:`_EnvWorker.prepare` behind its last call (its result is not awaited: an error
        there is raised again by the episode's first step, which computes the same; a dead worker is found by the
        next call)."""
        if self.prepare_episodes:
            try:
                self.actors[w].prepare.remote()
            except Exception:  # noqa: BLE001  (a dead actor: restarted by the next step)
                pass

    def step_wait(self) -> VecEnvStepReturn:
        refs, self._pending = self._pending, [None] * self.num_workers
        results = None
        if all(ref is not None for ref in refs):
            try:  # one gather for all: the common case, no worker died
                results = list(self._ray.get(refs, timeout=self.step_timeout))
            except self._dead_errors():
                pass  # which one: below
        if results is None:
            results = [self._step_result(w, ref) for w, ref in enumerate(refs)]
        self._last_obs = [r[0] for r in results]
        self.waiting = False
        for w, r in enumerate(results):
            for slot, info in enumerate(r[3]):
                if isinstance(info.get("rewards"), _WorkerTerms):
                    info["rewards"] = self._driver_terms(w, slot, info["rewards"])
        infos = [info for r in results for info in r[3]]
        self.reset_infos = [info for r in results for info in r[4]]
        obs = _concat_obs(self._last_obs)
        return obs, np.concatenate([r[1] for r in results]), np.concatenate([r[2] for r in results]), infos

    def _driver_terms(self, w: int, slot: int, sent: _WorkerTerms) -> DeferredTerms:
        """``info["rewards"]`` on the driver: a :class:`DeferredTerms` whose deferred values are those the worker
        sent with the step, or (``on_read``) asked of the worker on the first read."""
        step_id = self._step_id
        if not sent.resolved:
            self._unread.setdefault(step_id, set()).add(w)
            while len(self._unread) > HELD_STEPS:
                self._unread.popitem(last=False)

        def compute() -> dict[str, Any]:
            self._terms_read = True
            return sent.values if sent.resolved else self._fetch_terms(step_id, w, slot, sent.names)

        return DeferredTerms(sent.values, sent.names, compute)

    def _fetch_terms(self, step_id: int, w: int, slot: int, names: Sequence[str]) -> dict[str, Any]:
        """The deferred terms of worker ``w``'s slot ``slot`` at step ``step_id``: on the first read of a step, those
        of every env of that step are asked of their workers at once (one call per worker, concurrently)."""
        if step_id not in self._fetched:
            refs = {v: self.actors[v].deferred_terms.remote(step_id) for v in sorted(self._unread.pop(step_id, ()))}
            got: dict[tuple[int, int], dict[str, Any]] = {}
            for v, ref in refs.items():
                try:
                    got.update({(v, s): values for s, values in self._ray.get(ref, timeout=self.step_timeout).items()})
                except self._dead_errors():
                    pass  # lost with the worker: NaN below; the next step restarts it
            self._fetched[step_id] = got
            while len(self._fetched) > HELD_STEPS:
                self._fetched.popitem(last=False)
        values = self._fetched[step_id].pop((w, slot), None)
        if values is None:
            warnings.warn(f"RayVecEnv: the deferred reward terms {list(names)} of env {self.worker_envs[w][slot]} at "
                          f"vector step {step_id} are gone (read more than {HELD_STEPS} steps later, or its worker "
                          "died); they read as NaN", RuntimeWarning, stacklevel=2)
            values = {name: math.nan for name in names}
        return values

    def _step_result(self, w: int, ref: Any) -> tuple[VecEnvObs, np.ndarray, np.ndarray, list[dict], list[dict]]:
        """Worker ``w``'s step result: its actor's, or truncations when the actor died (or had died already)."""
        if ref is not None:
            try:
                return self._ray.get(ref, timeout=self.step_timeout)
            except self._dead_errors() as exc:
                self._truncate(w, _short(exc))
        return self._restart_step(w)

    def _restart_step(self, w: int) -> tuple[VecEnvObs, np.ndarray, np.ndarray, list[dict], list[dict]]:
        """Worker ``w``'s step result for episodes cut by its restart (module docstring)."""
        note, self._restart_notes[w] = self._restart_notes[w], None
        assert note is not None
        envs = self.worker_envs[w]
        infos = [{"TimeLimit.truncated": True, "terminal_observation": note["terminal"][s],
                  "termination_reason": WORKER_RESTART,
                  WORKER_RESTART: {"env_index": i, "worker_index": w, "restarts": self.restarts[i],
                                   "reason": note["reason"]}} for s, i in enumerate(envs)]
        return (note["obs"], np.zeros(len(envs)), np.ones(len(envs), dtype=bool), infos,
                [dict(info) for info in note["reset_infos"]])

    def reset(self) -> VecEnvObs:
        if self.waiting:  # abandon the pending step (its results are dropped)
            self.step_wait()
        seeds = [[self._seeds[i] for i in envs] for envs in self.worker_envs]
        options = [[self._options[i] for i in envs] for envs in self.worker_envs]
        refs = [actor.reset.remote(seeds[w], options[w]) for w, actor in enumerate(self.actors)]
        results = []
        for w, ref in enumerate(refs):
            self._restart_notes[w] = None  # a restarted worker's episodes are over anyway
            try:
                results.append(self._ray.get(ref, timeout=self.step_timeout))
            except self._dead_errors() as exc:
                results.append(self._restart(w, _short(exc), seeds[w], options[w]))
            self._last_obs[w] = results[-1][0]
            self._prepare(w)
        for i in range(self.num_envs):
            self._reset_seed[i] = self._seeds[i]
        self.reset_infos = [info for r in results for info in r[1]]
        self._reset_seeds()
        self._reset_options()
        return _concat_obs([r[0] for r in results])

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
        for w in range(self.num_workers):
            self._kill(w)
        self.closed = True

    # ---------------------------------------------------------------------------------------------- per-env calls
    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            warnings.warn(
                f"The render mode is {self.render_mode}, but this method assumes it is `rgb_array` to obtain images."
            )
            return [None for _ in range(self.num_envs)]
        return self._gather(None, lambda k: ("render", None))

    def has_attr(self, attr_name: str) -> bool:
        return all(self._gather(None, lambda k: ("has_attr", attr_name)))

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return self._gather(indices, lambda k: ("get_attr", attr_name))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        for i in self._get_indices(indices):
            self._attrs[i][attr_name] = value
        self._gather(indices, lambda k: ("set_attr", (attr_name, value)))

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        return self._gather(indices, lambda k: ("env_method", (method_name, method_args, method_kwargs)))

    def call_each(self, method_name: str, args: Sequence[tuple], kwargs: Sequence[Mapping[str, Any]] | None = None,
                  indices: VecEnvIndices = None) -> list[Any]:
        """``[env_i.method_name(*args[k], **kwargs[k]) for the k-th index i]``, one batch per worker, all sent, then
        all gathered."""
        targets = list(self._get_indices(indices))
        if len(args) != len(targets):
            raise ValueError(f"RayVecEnv.call_each: {len(args)} argument tuples for {len(targets)} envs")
        kw = [{}] * len(targets) if kwargs is None else list(kwargs)
        return self._gather(targets, lambda k: ("env_method", (method_name, tuple(args[k]), dict(kw[k]))))

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return self._gather(indices, lambda k: ("is_wrapped", wrapper_class))

    def worker_cpu_times(self, main_thread_only: bool = False, in_step: bool = False,
                         in_prepare: bool = False) -> list[float]:
        """CPU seconds each worker's process (or, ``main_thread_only``, its main thread: the one that runs the envs;
        or, ``in_step``, its main thread inside the envs' ``step`` calls; or, ``in_prepare``, inside the ``prepare``
        calls) has used, one per worker (benchmarks: the work a core would do per worker)."""
        refs = [a.cpu_time.remote(main_thread_only) for a in self.actors]
        return [t[1] if in_step else t[2] if in_prepare else t[0]
                for t in self._ray.get(refs, timeout=self.step_timeout)]

    def worker_terms_counts(self) -> dict[str, int]:
        """Env steps whose deferred reward terms the workers computed with the step (``with_step``), kept unread
        (``held``), and computed when the driver read them (``on_read``), summed over the workers (benchmarks,
        tests: ``held - on_read`` steps' terms were never computed)."""
        counts = self._ray.get([a.deferred_terms_counts.remote() for a in self.actors], timeout=self.step_timeout)
        return {key: sum(c[key] for c in counts) for key in counts[0]}

    def worker_pids(self) -> list[int]:
        """Process id of each env's worker, one per env (diagnostics; tests check which envs share a process)."""
        pids = self._ray.get([a.pid.remote() for a in self.actors], timeout=self.step_timeout)
        return [pids[w] for w in self.worker_index]


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."

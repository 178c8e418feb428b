"""``env=carla``: check the configuration and the CARLA servers, drive episodes in :class:`envs.carla.CarlaEnv` with
a baseline policy on every server in parallel, and hand the recordings to the pipeline as the ``"carla"`` scene
sources (training and held-out).

* **Validation** (:func:`validate_carla`, called by :func:`experiments.run.validate` before any stage runs): every
  ``env=carla`` field is checked and a bad one stops the run with a message naming it (``env.episode_time: ...``).
* **Servers**: ``python -m experiments.run env=carla`` fails within seconds when no server answers (a TCP probe of
  each ``env.hosts`` entry, then a version query), naming ``host:port`` and ``docker compose up carla``.
* **Episodes**: ``env.num_episodes`` training episodes (reset seeds ``env.seed``, ``env.seed + 1``, ...) recorded into
  ``<root>/train`` and ``env.eval_num_episodes`` held-out episodes (seeds ``env.eval_seed``, ...; the two seed ranges
  may not overlap) into ``<root>/eval`` (``root``: ``env.root``, default ``<out>/carla``). Episode ``i`` of a split
  runs on server ``i % len(env.hosts)``; each server has one worker thread owning its :class:`CarlaEnv` (its
  ``worker_index``, its own Traffic Manager port ``env.traffic_manager_port + index``), so the servers record in
  parallel and the recordings are those of a serial run with the same seeds (:func:`record_episodes`).
* **Failures**: an episode that fails (a server error or time-out at ``reset`` or during the episode, i.e. a
  :class:`~envs.carla.connection.CarlaError` or ``info["carla_error"]``) is retried on the same seed up to
  ``env.episode_retries`` times (the worker reconnects), then skipped with a warning (its partial recording is
  removed); the description says how many were skipped. Configuration errors (version mismatch, unknown town, a town
  that fits no scenario type) stop the run at once.
* **TensorBoard** (``tensorboard=true``): per episode, under ``<out>/tb/carla``: ``carla/<split>/episode_return``
  (sum of step rewards), ``route_completion``, ``driving_score``, ``infractions`` (their count) and
  ``infractions/<name>``, ``collision`` (0/1), ``steps``; and ``carla/<split>/skipped``.

The later stages (render, mine, evaluate) read the recordings like any other source (evaluation replays the
held-out ones non-reactively in ``ReplayEnv``).
"""

from __future__ import annotations

import dataclasses
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

SPLITS = ("train", "eval")
"""Recording sub-folders of ``env.root``."""


def _field(env: Any, name: str, default: Any = None) -> Any:
    if isinstance(env, Mapping):
        return env.get(name, default)
    return getattr(env, name, default)


def validate_carla(env: Any) -> None:
    """``SystemExit`` naming the first ``env=carla`` field that cannot run (``env``: the ``env`` node, a mapping or
    :class:`experiments.config.CarlaSourceConfig`)."""
    from agents.baselines import BASELINES
    from envs.carla.config import CarlaEnvConfig
    from envs.carla.connection import BACKENDS, parse_host
    from envs.carla.scenarios import SCENARIO_TYPES

    def fail(name: str, message: str) -> None:
        raise SystemExit(f"env.{name}: {message}, got {_field(env, name)!r}")

    def integer(name: str, low: int) -> int:
        value = _field(env, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            fail(name, f"expected an int >= {low}")
        return value

    def positive(name: str) -> float:
        value = _field(env, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            fail(name, "expected a positive number of seconds")
        return float(value)

    hosts = _field(env, "hosts")
    if not hosts or isinstance(hosts, str):
        fail("hosts", "expected a non-empty list of 'host:port'")
    for spec in hosts:
        try:
            parse_host(str(spec))
        except ValueError as exc:
            raise SystemExit(f"env.{exc}") from None
    if _field(env, "backend") not in BACKENDS:
        fail("backend", f"expected one of {list(BACKENDS)}")
    town = _field(env, "town")
    if town is not None and (not isinstance(town, str) or not town.strip()):
        fail("town", "expected a town name such as 'Town03' or null")
    n_train, n_eval = integer("num_episodes", 1), integer("eval_num_episodes", 1)
    seed, eval_seed = integer("seed", 0), integer("eval_seed", 0)
    if eval_seed < seed + n_train and seed < eval_seed + n_eval:
        raise SystemExit(f"env.eval_seed={eval_seed}: the held-out episodes' seeds {eval_seed}..{eval_seed + n_eval - 1} "
                         f"overlap the training seeds {seed}..{seed + n_train - 1} (env.seed={seed}, "
                         f"env.num_episodes={n_train}); held-out episodes must come from seeds never trained on")
    integer("num_background", 0)
    integer("episode_retries", 0)
    for name in ("connect_timeout", "tick_timeout", "sensor_timeout", "load_world_timeout"):
        positive(name)
    warmup = CarlaEnvConfig.warmup_time
    replan = CarlaEnvConfig.replan_interval
    episode_time = positive("episode_time")
    if episode_time < warmup + replan:
        fail("episode_time", f"expected >= {warmup + replan:g} s (the {warmup:g} s warm-up plus one {replan:g} s "
                             "decision)")
    types = _field(env, "scenario_types")
    if types is not None:
        unknown = sorted(set(types) - set(SCENARIO_TYPES))
        if unknown or not types:
            fail("scenario_types", f"unknown {unknown or '(empty list)'}; known: {list(SCENARIO_TYPES)}")
    if _field(env, "policy") not in BASELINES:
        fail("policy", f"expected one of {sorted(BASELINES)}")
    port = integer("traffic_manager_port", 1)
    if port + len(hosts) - 1 > 65535:
        fail("traffic_manager_port", f"the {len(hosts)} workers use ports traffic_manager_port.."
                                     f"traffic_manager_port+{len(hosts) - 1}, which must be <= 65535")
    root = _field(env, "root")
    if root is not None and Path(str(root)).exists() and not Path(str(root)).is_dir():
        fail("root", "expected a folder (or a path to create)")
    try:
        carla_config(env, Path("."))
    except (ValueError, TypeError) as exc:
        raise SystemExit(f"env: {exc}") from None


def carla_config(env: Any, record_dir: Path, reward: Any = None):
    """The :class:`~envs.carla.CarlaEnvConfig` of the ``env`` group (worker 0) recording into ``record_dir``, with the
    run's one reward (:class:`envs.sim.reward.RewardConfig`; None: its defaults)."""
    from envs.carla.config import CarlaEnvConfig
    from envs.carla.scenarios import SCENARIO_TYPES

    types = _field(env, "scenario_types")
    types = tuple(types) if types else SCENARIO_TYPES
    return CarlaEnvConfig(hosts=tuple(str(h) for h in _field(env, "hosts")), backend=str(_field(env, "backend")),
                          town=_field(env, "town") or None, seed=int(_field(env, "seed")), scenario_types=types,
                          episode_time=float(_field(env, "episode_time")),
                          num_background=int(_field(env, "num_background")), bev=None, record_dir=str(record_dir),
                          client_timeout=float(_field(env, "connect_timeout")) * 3.0,
                          tick_timeout=float(_field(env, "tick_timeout")),
                          sensor_timeout=float(_field(env, "sensor_timeout")),
                          load_world_timeout=float(_field(env, "load_world_timeout")),
                          traffic_manager_port=int(_field(env, "traffic_manager_port")), reward=reward)


def check_servers(env: Any) -> None:
    """``SystemExit`` naming ``host:port`` and how to start a server unless every host answers with CARLA 0.9.16."""
    from envs.carla.connection import CarlaError, check_server, parse_host

    for spec in _field(env, "hosts"):
        try:
            host, port = parse_host(str(spec))
            check_server(host, port, timeout=float(_field(env, "connect_timeout")), backend=str(_field(env, "backend")))
        except (CarlaError, ValueError, ImportError) as exc:
            raise SystemExit(f"env=carla: {exc}") from None


# ------------------------------------------------------------------------------------------------------ episodes
@dataclass
class EpisodeResult:
    """One episode of :func:`record_episodes`."""

    index: int
    seed: int
    worker: int
    attempts: int
    """Tries used (1 = no retry)."""
    skipped: bool = False
    """Every try failed; no recording is kept."""
    error: str = ""
    """The last failure (empty when the first try succeeded)."""
    recording: str | None = None
    """Path of the recording."""
    episode_return: float = 0.0
    """Sum of the step rewards."""
    steps: int = 0
    termination: str = ""
    """``info["termination_reason"]`` of the last step."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """``info["driving_metrics"]`` (:class:`envs.sim.metrics.DrivingMetrics` as a dict)."""


class _Abort(Exception):
    """Another worker stopped the run."""


def _drop_recording(env: Any) -> None:
    """Remove the recording of ``env``'s last (failed) episode from its folder."""
    from envs.carla.recording import recording_name

    scene = env.last_recording
    if scene is not None and env.config.record_dir:
        (Path(env.config.record_dir) / recording_name(scene.scene_id)).unlink(missing_ok=True)


def _run_episode(env: Any, policy: Any, index: int, seed: int, retries: int) -> EpisodeResult:
    """One episode on ``env`` with reset seed ``seed``, retried up to ``retries`` times on server failures."""
    from agents.base import policy_input
    from envs.carla.connection import NOT_RETRIED

    error = ""
    for attempt in range(1, retries + 2):
        env.last_recording = None
        try:
            obs, info = env.reset(seed=seed)
            policy.reset()
            total, steps, done = 0.0, 0, False
            while not done:
                action = policy.act(policy_input(env, obs, info, privileged=policy.requires_privileged))
                obs, reward, terminated, truncated, info = env.step(action)
                total, steps, done = total + float(reward), steps + 1, terminated or truncated
            if info["termination_reason"] != "carla_error":
                return EpisodeResult(index, seed, env.config.worker_index, attempt, error=error,
                                     recording=info.get("recording"), episode_return=total, steps=steps,
                                     termination=str(info["termination_reason"]),
                                     metrics=dict(info.get("driving_metrics") or {}))
            error = str(info["carla_error"])
        except NOT_RETRIED:
            raise
        except RuntimeError as exc:  # CarlaError and the client library's errors (time-outs, lost server)
            error = str(exc)
        env.close()  # cleans up; the next reset reconnects
        _drop_recording(env)
        left = retries + 1 - attempt
        warnings.warn(f"env=carla: episode {index} (seed {seed}) on {env.connection.address} failed (try {attempt} of "
                      f"{retries + 1}): {error}; " + (f"retrying ({left} more)" if left else "skipping it"),
                      RuntimeWarning, stacklevel=2)
    return EpisodeResult(index, seed, env.config.worker_index, retries + 1, skipped=True, error=error)


def record_episodes(config: Any, seeds: list[int], policy: str, retries: int = 2, parallel: bool = True,
                    on_episode: Callable[[EpisodeResult], None] | None = None) -> list[EpisodeResult]:
    """Drive one episode per seed (episode ``i`` on worker ``i % len(config.hosts)``, in seed order per worker) with
    the baseline ``policy``, recording into ``config.record_dir``; one worker thread per server when ``parallel``
    (same recordings as the serial run). Returns the results in seed order.

    Raises:
        SystemExit: a configuration error (version mismatch, unknown town, no place for the scenario types): the
            other workers stop after their current episode.
    """
    from agents.baselines import make_baseline
    from envs.carla.connection import NOT_RETRIED
    from envs.carla.env import CarlaEnv
    from envs.carla.scenarios import ScenarioPlacementError

    n = len(config.hosts)
    results: list[EpisodeResult | None] = [None] * len(seeds)
    errors: list[BaseException] = []
    abort = threading.Event()
    lock = threading.Lock()

    def work(worker: int) -> None:
        env = CarlaEnv(dataclasses.replace(config, worker_index=worker))
        baseline = make_baseline(policy)
        try:
            for i in range(worker, len(seeds), n):
                if abort.is_set():
                    raise _Abort
                results[i] = _run_episode(env, baseline, i, int(seeds[i]), retries)
                if on_episode is not None:
                    with lock:
                        on_episode(results[i])  # type: ignore[arg-type]
        except _Abort:
            pass
        except (*NOT_RETRIED, ScenarioPlacementError) as exc:
            errors.append(exc)
            abort.set()
        except BaseException as exc:  # noqa: BLE001  (re-raised in the calling thread)
            errors.append(exc)
            abort.set()
        finally:
            env.close()

    workers = range(min(n, len(seeds)))
    if parallel and len(workers) > 1:
        threads = [threading.Thread(target=work, args=(w,), name=f"carla-worker-{w}") for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for w in workers:
            work(w)
    if errors:
        exc = errors[0]
        if isinstance(exc, (*NOT_RETRIED, ScenarioPlacementError)):
            raise SystemExit(f"env=carla: {exc}") from None
        raise exc
    return [r for r in results if r is not None]


def log_episodes(writer: Any, split: str, results: list[EpisodeResult]) -> None:
    """TensorBoard scalars of one split's episodes (step = episode index; see the module docstring)."""
    from envs.sim.metrics import INFRACTIONS

    for r in results:
        if r.skipped:
            continue
        tag = f"carla/{split}"
        infractions = dict(r.metrics.get("infractions") or {})
        writer.add_scalar(f"{tag}/episode_return", r.episode_return, r.index)
        writer.add_scalar(f"{tag}/route_completion", float(r.metrics.get("route_completion", 0.0)), r.index)
        writer.add_scalar(f"{tag}/driving_score", float(r.metrics.get("driving_score", 0.0)), r.index)
        writer.add_scalar(f"{tag}/infractions", float(sum(infractions.values())), r.index)
        for name in INFRACTIONS:
            writer.add_scalar(f"{tag}/infractions/{name}", float(infractions.get(name, 0)), r.index)
        writer.add_scalar(f"{tag}/collision", float(r.termination == "collision"), r.index)
        writer.add_scalar(f"{tag}/steps", float(r.steps), r.index)
    writer.add_scalar(f"carla/{split}/skipped", float(sum(r.skipped for r in results)), 0)
    writer.flush()


def carla_sources(cfg: Any, out: Path | None) -> tuple[Any, Any, str]:
    """Check the servers, record the training and held-out episodes (see the module docstring) and return
    ``(train, held_out, description)`` :class:`SceneSource` s (``cfg``: the typed run configuration,
    :func:`experiments.run.typed_config`)."""
    from tqdm import tqdm

    from envs.scenes.sources import open_source

    env = cfg.env
    validate_carla(env)
    check_servers(env)
    root = Path(env.root) if env.root else Path(out or ".") / "carla"
    writer = None
    if cfg.tensorboard and out is not None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(Path(out) / "tb" / "carla"))
    plan = {"train": (int(env.seed), int(env.num_episodes)), "eval": (int(env.eval_seed), int(env.eval_num_episodes))}
    sources, skipped = {}, {}
    try:
        with tqdm(total=sum(n for _, n in plan.values()), desc="carla episodes", unit="episode",
                  disable=not cfg.progress) as bar:
            for split in SPLITS:
                first, n = plan[split]
                folder = root / split
                folder.mkdir(parents=True, exist_ok=True)
                config = carla_config(env, folder, cfg.reward)
                results = record_episodes(config, list(range(first, first + n)), str(env.policy),
                                          retries=int(env.episode_retries), on_episode=lambda _: bar.update())
                skipped[split] = sum(r.skipped for r in results)
                if writer is not None:
                    log_episodes(writer, split, results)
                sources[split] = open_source("carla", root=str(folder))
    finally:
        if writer is not None:
            writer.close()
    train, held = sources["train"], sources["eval"]
    (s0, n0), (s1, n1) = plan["train"], plan["eval"]
    lost = sum(skipped.values())
    text = (f"CARLA recordings: {len(train)} training episodes (seeds {s0}..{s0 + n0 - 1}), {len(held)} held-out "
            f"episodes (seeds {s1}..{s1 + n1 - 1}, never trained on; evaluated as replays), recorded on "
            f"{len(env.hosts)} server(s) in parallel; {lost} episode(s) skipped after failures"
            + (f" ({skipped['train']} training, {skipped['eval']} held-out)" if lost else ""))
    if not len(train) or not len(held):
        raise SystemExit(f"env=carla: no {'training' if not len(train) else 'held-out'} episode was recorded "
                         f"({text})")
    return train, held, text

"""``CarlaEnv``: the Gymnasium environment on CARLA 0.9.16 (registered as ``SafeAlign/Carla-v0``).

The same contract as :class:`envs.replay_env.ReplayEnv` (closed loop):

* **Observation**: :func:`envs.spaces.observation_space` of :attr:`CarlaEnvConfig.observation`, built by
  :func:`envs.observation.build_observation` from the episode's recorded world state (the BEV is the shared renderer's
  view of the recording, not a CARLA camera); enabled cameras (:class:`CameraConfig`) add ``"camera_<name>"``
  ``uint8 (H, W, 3)`` RGB images.
* **Action**: the ``(8, 3)`` ego-frame trajectory of :func:`envs.spaces.action_space`, validated by
  :func:`envs.spaces.validate_trajectories`, tracked for ``replan_interval`` (0.5 s = 10 ticks at 20 Hz) by
  :class:`~envs.carla.controller.TrajectoryController` (pure pursuit + PID -> ``carla.VehicleControl``).
* **Reward** (:func:`envs.sim.reward.reward_terms`): the action scored by the PDM scorer from the current state, plus
  ``-reward.w_terminal_collision`` on the step in which CARLA's collision sensor reports an ego collision. CARLA has no
  save/restore, so the scorer's view (:meth:`CarlaEnv.current_problem`) is the recording up to now with the other
  agents **forecast at constant velocity** (:func:`rewards.reference_planner.constant_velocity_agents`): the true
  future is unknown at decision time. :meth:`CarlaEnv.score_group` scores candidates on that view, never touching
  the server.
* **Episode**: a scripted scenario (:mod:`envs.carla.scenarios`) is staged: the ego, its sensors (collision, lane
  invasion, cameras), the adversaries, background traffic on the Traffic Manager; the ego drives its nominal plan
  for ``warmup_time`` (the observation's history), then the policy takes over. It **terminates** on a collision
  (collision sensor), off-road (an ego corner outside the map's drivable area; maps come from the CARLA map's
  waypoints, :mod:`envs.carla.roadmap`) or at the route's end, and is **truncated** at ``episode_time`` or when the
  server fails (``info["carla_error"]``; the next ``reset`` reconnects).
* **Recording**: every episode becomes a :class:`~envs.scenes.scene.Scene` with ``meta.source == "carla"``
  (:mod:`envs.carla.recording`), written to ``record_dir`` when set (``info["recording"]``, ``info["origin"]``);
  the final info carries the leaderboard metrics (``info["driving_metrics"]``, :func:`envs.sim.metrics.driving_metrics`).

Reliability (:mod:`envs.carla.connection`): connect with a timeout and a version check, synchronous mode with a
fixed delta and the Traffic Manager on this worker's port (``traffic_manager_port + worker_index``), every tick with
a timeout, every spawned actor destroyed in one batch on ``reset`` and ``close``, synchronous mode switched off on
``close``. ``hosts`` lists the servers, one per worker (``worker_index``): :func:`carla_env_fns` builds the
per-worker constructors for a vector env.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.carla.connection import BACKENDS, CarlaConnection, CarlaError, CarlaSpawnError, carla_module, parse_host
from envs.carla.controller import ControllerConfig, TimedPath, TrajectoryController
from envs.carla.frames import box_pose, box_size, transform_from_pose, vector_to_world
from envs.carla.metrics import collision_kind
from envs.sim.metrics import driving_metrics
from envs.carla.recording import CarlaRecordingOrigin, EpisodeRecorder, recording_name, write_recording
from envs.carla.roadmap import TownLanes, waypoint_key
from envs.carla.scenarios import (
    SCENARIO_TYPES,
    ScenarioPlacementError,
    ScenarioPlan,
    nominal_poses,
    plan_scenario,
    route_keys,
)
from envs.observation import EgoKinematics, ObservationConfig, Route, build_observation, renderer_for, text_prompt
from envs.render import BEVConfig, BEVRenderer
from envs.registration import CARLA_ENV_ID as ENV_ID  # noqa: F401  (registered by envs on import)
from envs.sim.reward import REWARD_TERMS, RewardConfig, reward_terms
from envs.scenes.scene import AgentClass, SceneMeta, TrafficLight, TrafficLightState
from envs.sim.scoring import agents_future_from_scene, log_as_action, map_geometry_from_scene_map
from envs.configuration import coerce_config
from envs.sim.simulation import DrivableArea
from envs.scenes.sources import UnresolvableOrigin
from envs.spaces import NUM_POSES, POSE_INTERVAL, action_space, observation_space, validate_trajectories
from rewards.config import PDMConfig
from rewards.geometry import VehicleParameters, rotate_vectors, vehicle_corners, wrap_angle
from rewards.pdm import score_states
from rewards.reference_planner import constant_velocity_agents
from rewards.tracking import simulate_candidates
from rewards.types import EgoState, ScoringProblem

from rewards.scorer import reference_for

STEP_TERMS = REWARD_TERMS + ("terminal_collision",)
"""Keys of ``info["rewards"]`` (NaN where not computed, e.g. after ``reset``)."""
TERMINATIONS = ("collision", "offroad", "route_end", "time_limit", "carla_error", "")
"""Values of ``info["termination_reason"]`` (a recording of an episode cut short by ``reset`` / ``close`` says
``"interrupted"`` in ``meta.extra["termination_reason"]``)."""


@dataclass(frozen=True)
class CameraConfig:
    """An RGB camera on the ego, added to the observation as ``"camera_<name>"``; right-handed ego frame."""

    name: str = "front"
    """Observation key suffix."""
    x: float = 1.5
    """Forward offset from the vehicle origin [m]."""
    y: float = 0.0
    """Left offset [m]."""
    z: float = 2.4
    """Height [m]."""
    yaw_deg: float = 0.0
    """Heading relative to the vehicle, counter-clockwise [deg]."""
    width: int = 256
    """Image width [px]."""
    height: int = 256
    """Image height [px]."""
    fov: float = 90.0
    """Horizontal field of view [deg]."""


@dataclass(frozen=True)
class CarlaEnvConfig:
    """Configuration of :class:`CarlaEnv`; every field is documented, units in brackets."""

    hosts: tuple[str, ...] = ("localhost:2000",)
    """CARLA servers as ``"host:port"``, one per vector-env worker (worker ``i`` uses ``hosts[i]``)."""
    worker_index: int = 0
    """This env's worker index (its server and Traffic Manager port)."""
    backend: str = "carla"
    """``"carla"`` (the real client library, the ``[carla]`` extra) or ``"standin"`` (in-process stand-in)."""
    town: str | None = "Town03"
    """Town to load when the server has another one loaded (None: keep the server's)."""
    client_timeout: float = 10.0
    """Bound of every RPC call [s] (``client.set_timeout``)."""
    tick_timeout: float = 5.0
    """Bound of every ``world.tick`` [s]."""
    sensor_timeout: float = 2.0
    """How long to wait for a camera image of the current frame [s]."""
    reconnect_attempts: int = 2
    """Connection attempts per ``reset`` before giving up with :class:`~envs.carla.connection.CarlaConnectionError`."""
    reconnect_wait: float = 2.0
    """Pause between connection attempts [s]."""
    fixed_delta_seconds: float = 0.05
    """Synchronous simulation step [s] (20 Hz); must divide the scene step ``pdm.sim_dt``."""
    traffic_manager_port: int = 8000
    """Base Traffic Manager port; this worker uses ``traffic_manager_port + worker_index``."""
    seed: int = 0
    """Traffic Manager seed (scenarios are seeded by ``reset(seed=...)``)."""
    scenario_types: tuple[str, ...] = SCENARIO_TYPES
    """Scenario types drawn uniformly per episode (:data:`envs.carla.scenarios.SCENARIO_TYPES`)."""
    warmup_time: float = 2.0
    """The ego drives its nominal plan this long before the first decision (the observation's history) [s]."""
    lead_time: float = 3.0
    """Nominal time from the first decision to the scripted contact [s] (``ReplayEnv``'s closed-loop lead)."""
    episode_time: float = 15.0
    """Episode length including the warm-up [s]; the episode is truncated after it."""
    num_background: int = 8
    """Background vehicles on the Traffic Manager (fewer when spawn points are short)."""
    background_clearance: float = 12.0
    """Background vehicles spawn at least this far from the ego route and the adversaries' paths [m]."""
    ego_blueprint: str = "vehicle.lincoln.mkz_2020"
    """Ego vehicle blueprint (role_name ``hero``)."""
    cameras: tuple[CameraConfig, ...] = ()
    """RGB cameras (need a rendering server, not ``-nullrhi``)."""
    bev: BEVConfig | None = field(default_factory=lambda: BEVConfig(antialias=False))
    """BEV observation raster; None drops ``"bev"``."""
    history_poses: int = 4
    """Past poses in ``history``."""
    history_interval: float = 0.5
    """Time between ``history`` poses [s]."""
    command_lookahead: float = 30.0
    """Route length ahead used for the command [m]."""
    command_threshold_deg: float = 15.0
    """Route heading change above which the command is a turn [deg]."""
    replan_interval: float = 0.5
    """Time between decisions [s] (a multiple of the scene step)."""
    map_radius: float = 80.0
    """Lanes within this distance of the route go into the episode's map [m]."""
    route_end_margin: float = 2.0
    """The episode terminates within this distance of the route's end [m]."""
    pdm: PDMConfig = field(default_factory=PDMConfig)
    """Scorer configuration; ``sim_dt`` is the recording step."""
    reference: str | None = "auto"
    """EP normaliser: ``"auto"`` plans the PDM-Closed-like reference from the current state; None normalises among
    the scored trajectories."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    """The reward's score and weights (:class:`envs.sim.reward.RewardConfig`, the same object as the replay env's;
    ``w_terminal_collision`` is added once when CARLA's collision sensor reports an ego collision)."""
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    """Trajectory tracking gains (:mod:`envs.carla.controller`)."""
    record_dir: str | None = None
    """Folder for the episodes' recordings (None: kept in memory only, ``CarlaEnv.last_recording``)."""
    record_after_end: float = 4.0
    """After a collision or off-road end, the world keeps running this long (the ego on its last action) and the
    recording with it [s], so that decisions shortly before the end have their driven 4 s future (the miner's
    negative), as the bank's logs continue after contact. The returned observation and info are those of the end."""
    text_prompt: bool = False
    """Add ``info["prompt"]`` (the VLA's text prompt)."""

    def __post_init__(self) -> None:
        hosts = tuple(self.hosts) if not isinstance(self.hosts, str) else (self.hosts,)
        object.__setattr__(self, "hosts", hosts)
        object.__setattr__(self, "scenario_types", tuple(self.scenario_types))
        object.__setattr__(self, "cameras", tuple(self.cameras))
        if not isinstance(self.reward, RewardConfig):
            object.__setattr__(self, "reward", RewardConfig.coerce(self.reward))
        if not hosts:
            raise ValueError("CarlaEnvConfig.hosts: at least one 'host:port' is required")
        for h in hosts:
            parse_host(h)
        if self.backend not in BACKENDS:
            raise ValueError(f"CarlaEnvConfig.backend: expected one of {BACKENDS}, got {self.backend!r}")
        if isinstance(self.worker_index, bool) or not isinstance(self.worker_index, (int, np.integer)) \
                or self.worker_index < 0:
            raise ValueError(f"CarlaEnvConfig.worker_index: expected an int >= 0, got {self.worker_index!r}")
        if self.worker_index >= len(hosts):
            raise ValueError(f"CarlaEnvConfig.worker_index={self.worker_index}: hosts lists {len(hosts)} server(s); "
                             "give every worker its own server (one synchronous client per server)")
        for name in ("client_timeout", "tick_timeout", "sensor_timeout", "fixed_delta_seconds", "replan_interval",
                     "episode_time", "map_radius", "history_interval"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (np.isfinite(value) and value > 0):
                raise ValueError(f"CarlaEnvConfig.{name}: expected a positive number, got {value!r}")
        for name in ("warmup_time", "lead_time", "reconnect_wait", "background_clearance", "route_end_margin",
                     "record_after_end"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise ValueError(f"CarlaEnvConfig.{name}: expected a number >= 0, got {value!r}")
        unknown = sorted(set(self.scenario_types) - set(SCENARIO_TYPES))
        if unknown or not self.scenario_types:
            raise ValueError(f"CarlaEnvConfig.scenario_types: unknown {unknown or '(empty)'}; known: {SCENARIO_TYPES}")
        k = self.pdm.sim_dt / self.fixed_delta_seconds
        if abs(k - round(k)) > 1e-6:
            raise ValueError(f"CarlaEnvConfig.fixed_delta_seconds={self.fixed_delta_seconds} s must divide the scene "
                             f"step pdm.sim_dt={self.pdm.sim_dt} s")
        r = self.replan_interval / self.pdm.sim_dt
        if abs(r - round(r)) > 1e-6:
            raise ValueError(f"CarlaEnvConfig.replan_interval={self.replan_interval} s is not a multiple of "
                             f"pdm.sim_dt={self.pdm.sim_dt} s")
        if self.episode_time < self.warmup_time + self.replan_interval:
            raise ValueError(f"CarlaEnvConfig.episode_time={self.episode_time} s leaves no decision after the "
                             f"{self.warmup_time} s warm-up")
        if self.reference not in ("auto", None):
            raise ValueError(f"CarlaEnvConfig.reference: expected 'auto' or None, got {self.reference!r}")
        if self.pdm.num_poses != NUM_POSES:
            raise ValueError(f"CarlaEnvConfig.pdm.num_poses: the action space has {NUM_POSES} poses")
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"CarlaEnvConfig.cameras: duplicate names {names}")

    @property
    def observation(self) -> ObservationConfig:
        """The observation part (:func:`envs.observation.build_observation`)."""
        return ObservationConfig(bev=self.bev, history_poses=self.history_poses,
                                 history_interval=self.history_interval, command_lookahead=self.command_lookahead,
                                 command_threshold_deg=self.command_threshold_deg)

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` of this worker's server."""
        return parse_host(self.hosts[self.worker_index])

    @property
    def tm_port(self) -> int:
        """This worker's Traffic Manager port."""
        return int(self.traffic_manager_port) + int(self.worker_index)

    @classmethod
    def coerce(cls, config: "CarlaEnvConfig | Mapping[str, Any] | None", **overrides: Any) -> "CarlaEnvConfig":
        """``config`` (None, an instance or a mapping of fields) with ``overrides``; unknown keys are a ValueError
        (:func:`envs.configuration.coerce_config`)."""
        return coerce_config(cls, config, **overrides)


def carla_env_fns(config: CarlaEnvConfig | Mapping[str, Any] | None = None,
                  num_workers: int | None = None) -> list[Callable[[], "CarlaEnv"]]:
    """Constructors of ``num_workers`` (default: one per host) envs with ``worker_index`` 0.., for
    ``gymnasium.vector.AsyncVectorEnv`` or SB3's ``SubprocVecEnv``: each worker gets its own server and Traffic
    Manager port."""
    cfg = CarlaEnvConfig.coerce(config)
    n = len(cfg.hosts) if num_workers is None else int(num_workers)
    if not 1 <= n <= len(cfg.hosts):
        raise ValueError(f"carla_env_fns: {n} workers need {n} servers, hosts lists {len(cfg.hosts)}")
    return [functools.partial(CarlaEnv, dataclasses.replace(cfg, worker_index=i)) for i in range(n)]


def agent_class(actor: Any, carla: Any) -> AgentClass:
    """SafeAlign class of a CARLA actor: walkers are pedestrians; vehicles tagged ``CityObjectLabel.Bicycle``
    (0.9.16 split the old ``Vehicles`` label into Car/Truck/Bus/Motorcycle/Bicycle) or with two wheels and base
    type bicycle are cyclists; other vehicles are vehicles; ``static.*`` props are static."""
    type_id = str(actor.type_id)
    if type_id.startswith("walker."):
        return AgentClass.PEDESTRIAN
    if type_id.startswith("static."):
        return AgentClass.STATIC
    bicycle = getattr(getattr(carla, "CityObjectLabel", None), "Bicycle", None)
    tags = {int(t) for t in getattr(actor, "semantic_tags", ()) or ()}
    if bicycle is not None and int(bicycle) in tags:
        return AgentClass.CYCLIST
    attrs = getattr(actor, "attributes", {}) or {}
    if str(attrs.get("base_type", "")).lower() == "bicycle":
        return AgentClass.CYCLIST
    return AgentClass.VEHICLE


_TL_STATES = {"Red": TrafficLightState.RED, "Yellow": TrafficLightState.YELLOW, "Green": TrafficLightState.GREEN}


def _light_code(state: Any) -> int:
    name = getattr(state, "name", str(state)).split(".")[-1]
    return int(_TL_STATES.get(name, TrafficLightState.UNKNOWN))


class _EpisodeError(Exception):
    """A CARLA failure that ends the episode (``info["carla_error"]``)."""


class _Sensors:
    """Listener state of the ego's sensors: collision and lane-invasion events, camera images by frame."""

    def __init__(self) -> None:
        self.collisions: list[tuple[int, int, str]] = []
        """``(frame, other actor id, other type id)``."""
        self.invasions: list[int] = []
        self.images: dict[str, tuple[int, np.ndarray]] = {}

    def on_collision(self, event: Any) -> None:
        other = event.other_actor
        self.collisions.append((int(event.frame), int(other.id) if other is not None else -1,
                                str(getattr(other, "type_id", ""))))

    def on_invasion(self, event: Any) -> None:
        self.invasions.append(int(event.frame))

    def on_image(self, name: str, image: Any) -> None:
        bgra = np.frombuffer(bytes(image.raw_data), dtype=np.uint8).reshape(image.height, image.width, 4)
        self.images[name] = (int(image.frame), np.ascontiguousarray(bgra[:, :, 2::-1]))


@dataclass
class _Episode:
    """One staged episode."""

    plan: ScenarioPlan
    ego: Any
    params: VehicleParameters
    adversaries: list[tuple[Any, Any, TrajectoryController | None]]
    agents: list[Any]
    lights: list[tuple[Any, int]]
    frozen: list[Any]
    recorder: EpisodeRecorder
    kinematics: EgoKinematics
    route: Route
    geometry: Any
    drivable: DrivableArea | None
    controller: TrajectoryController
    sensors: _Sensors
    cameras: dict[str, Any]
    spawn_failures: list[str]
    frame0: int = 0
    ticks: int = 0
    path_t0: float = 0.0
    infractions: list[str] = field(default_factory=list)
    collision: tuple[int, int, str] | None = None
    steer: float = 0.0
    """Tire angle of the last ego control, right-handed [rad]."""
    done: bool = False
    index: int = 0
    steps: int = 0
    """Policy steps taken."""
    end_frame: int | None = None
    """The frame the episode ended at (frames after it are the post-end recording)."""


class CarlaEnv(gym.Env):
    """CARLA closed-loop environment (see the module docstring).

    Args:
        config: :class:`CarlaEnvConfig` or a mapping of its fields.
        render_mode: None or ``"rgb_array"`` (a 256 px BEV with the last action).
        **overrides: fields of :class:`CarlaEnvConfig` (e.g. ``gymnasium.make(ENV_ID, hosts=["carla:2000"])``).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 2}

    def __init__(self, config: CarlaEnvConfig | Mapping[str, Any] | None = None, render_mode: str | None = None,
                 **overrides: Any) -> None:
        super().__init__()
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode: expected None or 'rgb_array', got {render_mode!r}")
        self.config = cfg = CarlaEnvConfig.coerce(config, **overrides)
        self.render_mode = render_mode
        self.carla = carla_module(cfg.backend)
        host, port = cfg.address
        self.connection = CarlaConnection(
            self.carla, host, port, client_timeout=cfg.client_timeout, tick_timeout=cfg.tick_timeout,
            tm_port=cfg.tm_port, fixed_delta_seconds=cfg.fixed_delta_seconds, town=cfg.town,
            no_rendering_mode=not cfg.cameras, seed=cfg.seed)
        self._obs_config = cfg.observation
        obs_space = observation_space(self._obs_config)
        extra = {f"camera_{c.name}": spaces.Box(0, 255, (c.height, c.width, 3), dtype=np.uint8) for c in cfg.cameras}
        self.observation_space = spaces.Dict({**obs_space.spaces, **extra})
        self.action_space = action_space()
        self._renderer: BEVRenderer | None = None if cfg.bev is None else renderer_for(cfg.bev)
        self._view_renderer: BEVRenderer | None = None
        self._towns: dict[str, TownLanes] = {}
        self._route_maps: dict[tuple, tuple[Any, Any, DrivableArea]] = {}
        self._places: dict[str, dict[str, list[Any]]] = {}
        self._episode: _Episode | None = None
        self._episodes = 0
        self._problem_cache: tuple[int, ScoringProblem] | None = None
        self._last_action: np.ndarray | None = None
        self._last_obs: dict[str, Any] | None = None
        self.record_every = int(round(cfg.pdm.sim_dt / cfg.fixed_delta_seconds))
        self.ticks_per_step = int(round(cfg.replan_interval / cfg.fixed_delta_seconds))
        self.capacity = int(round(cfg.episode_time / cfg.pdm.sim_dt)) + 1
        """Frames of a full episode (the time limit)."""
        self.view_frames = self.capacity + int(round(cfg.pdm.horizon / cfg.pdm.sim_dt))
        """Frames of the live view: the episode plus one scoring horizon of nominal future (so ``logged_action``
        never runs off the plan's end)."""
        self.last_recording = None
        """The :class:`~envs.scenes.scene.Scene` of the last finished episode."""

    # ------------------------------------------------------------------ accessors (agents.base.policy_input)
    @property
    def scene(self):
        """The live scene view of the episode (recorded frames up to :attr:`t`, the nominal plan after it)."""
        return self._require().recorder.view

    @property
    def t(self) -> int:
        """The current (last recorded) frame (after a collision / off-road end: the last frame of the post-end
        recording, ``CarlaEnvConfig.record_after_end``)."""
        return self._require().recorder.t

    def current_problem(self) -> ScoringProblem:
        """The scorer's view of the current state: recorded ego state, other agents forecast at constant velocity
        from their recorded state (no rewind in CARLA), the episode's map."""
        ep = self._require()
        t = ep.recorder.t
        if self._problem_cache is not None and self._problem_cache[0] == t:
            return self._problem_cache[1]
        view, k = ep.recorder.view, ep.kinematics
        now = agents_future_from_scene(view, t, self.config.pdm)
        ego = EgoState(pose=k.poses[t].copy(), velocity=k.body_velocities[t].copy(),
                       acceleration=k.body_accelerations[t].copy(), params=ep.params, steering_angle=ep.steer)
        problem = ScoringProblem(ego=ego, agents=constant_velocity_agents(now, self.config.pdm.sim_dt),
                                 map=ep.geometry, scene_id=view.scene_id, time_index=t)
        self._problem_cache = (t, problem)
        return problem

    def score_group(self, trajectories: Any) -> dict[str, np.ndarray]:
        """Score candidates ``(G, 8, 3)`` from the current state on :meth:`current_problem` (the same terms as the
        step reward; never touches the server). Returns ``{name: (G,) array}`` as ``ReplayEnv.score_group``."""
        traj = validate_trajectories(trajectories, "trajectories", group=True)
        problem = self.current_problem()
        return self._score(problem, simulate_candidates(problem.ego, traj, self.config.pdm))

    def logged_action(self) -> np.ndarray:
        """The scenario's nominal (non-reacting expert) plan from the current pose as an action ``(8, 3)``."""
        ep = self._require()
        t = ep.recorder.t
        return log_as_action(ep.recorder.view, t, ep.kinematics.poses[t], self.config.pdm)

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: Mapping[str, Any] | None = None):
        """Stage a new episode (options: ``scenario_type``). Raises :class:`~envs.carla.connection.CarlaError`
        subclasses when no server answers, the versions differ or the ego cannot be spawned."""
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = sorted(set(options) - {"scenario_type"})
        if unknown:
            raise ValueError(f"reset options: unknown keys {unknown}; known: scenario_type")
        cfg = self.config
        self._clear()
        self._connect()
        requested = options.get("scenario_type")
        if requested is not None and requested not in SCENARIO_TYPES:
            raise ValueError(f"reset options: unknown scenario_type {requested!r}; known: {SCENARIO_TYPES}")
        # A randomly drawn type that this town cannot host (e.g. a junction typology on a town without junctions)
        # gives way to the next one; a requested type cannot.
        order = [requested] if requested else [str(x) for x in self.np_random.permutation(list(cfg.scenario_types))]
        placement_errors = []
        for scenario_type in order:
            try:
                self._episode = self._stage_with_retries(scenario_type)
                break
            except ScenarioPlacementError as exc:
                if requested:
                    raise
                placement_errors.append(str(exc))
        else:
            raise ScenarioPlacementError("; ".join(placement_errors))
        self._episodes += 1
        try:
            self._warmup()
            obs = self._observation()
        except (RuntimeError, _EpisodeError) as exc:
            if not isinstance(exc, _EpisodeError):
                self.connection.mark_broken()
            self._clear()
            raise CarlaError(f"CARLA server at {self.connection.address} failed during the warm-up ({exc}); "
                             "reset again to reconnect") from None
        info = self._info(obs, {name: float("nan") for name in STEP_TERMS}, False, -1)
        info["spawn_failures"] = list(self._episode.spawn_failures)
        return obs, info

    def step(self, action: Any):
        """Track the action for ``replan_interval``; see the module docstring for reward and termination."""
        ep = self._require()
        if ep.done:
            raise RuntimeError("step() called after the episode ended; call reset()")
        traj = validate_trajectories(action, "action")
        self._last_action = traj
        cfg = self.config
        problem = self.current_problem()
        scored = self._score(problem, simulate_candidates(problem.ego, traj[None], cfg.pdm))
        terms = {name: float(scored[name][0]) for name in REWARD_TERMS}
        terms["terminal_collision"] = 0.0
        t = ep.recorder.t
        ep.controller.set_path(TimedPath.from_trajectory(ep.kinematics.poses[t], traj, POSE_INTERVAL))
        ep.path_t0 = ep.ticks * cfg.fixed_delta_seconds
        n_invasions = len(ep.sensors.invasions)
        error, reason = None, ""
        try:
            for _ in range(self.ticks_per_step):
                recorded = self._tick()
                if recorded:
                    reason = self._check()
                    if reason or ep.recorder.frames >= self.capacity:
                        break
            obs = self._observation()
        except (RuntimeError, _EpisodeError) as exc:
            error = f"sensor failure: {exc}" if isinstance(exc, _EpisodeError) else str(exc)
            if not isinstance(exc, _EpisodeError):  # the server stopped answering (a sensor failure leaves it up)
                self.connection.mark_broken()
            obs = self._last_obs if self._last_obs is not None else self._observation(cameras=False)
            reason = "carla_error"
        collision = reason == "collision"
        if collision:
            terms["terminal_collision"] = -1.0
            terms["reward"] += cfg.reward.w_terminal_collision * terms["terminal_collision"]
        if not reason and ep.recorder.frames >= self.capacity:
            reason = "time_limit"
        terminated = reason in ("collision", "offroad", "route_end")
        truncated = reason in ("time_limit", "carla_error")
        agent = ep.collision[1] if collision and ep.collision is not None else -1
        info = self._info(obs, terms, collision, agent)
        info["termination_reason"] = reason
        info["lane_invasions"] = len(ep.sensors.invasions) - n_invasions
        if error is not None:
            info["carla_error"] = error
        ep.steps += 1
        if terminated or truncated:
            ep.done = True
            ep.end_frame = ep.recorder.t
            if terminated:
                self._record_after_end()
            info.update(self._finish(reason, error))
        return obs, terms["reward"], terminated, truncated, info

    def _record_after_end(self) -> None:
        """Keep the world running for ``record_after_end`` seconds into the recording (stops quietly on errors)."""
        ep = self._require()
        ticks = int(round(self.config.record_after_end / self.config.fixed_delta_seconds))
        try:
            for _ in range(ticks):
                if ep.recorder.frames >= ep.recorder.capacity:
                    break
                self._tick()
        except RuntimeError:
            self.connection.mark_broken()

    def render(self) -> np.ndarray | None:
        """``rgb_array``: ``uint8 (256, 256, 3)`` BEV of the current frame with the last action."""
        if self.render_mode is None:
            return None
        ep = self._require()
        if self._view_renderer is None:
            self._view_renderer = BEVRenderer(BEVConfig(height=256, width=256, meters_per_pixel=0.3, mode="rgb"))
        traj = None if self._last_action is None else self._last_action[None]
        return self._view_renderer.render(ep.recorder.view, ep.recorder.t, traj)

    def close(self) -> None:
        """Destroy every spawned actor (one batch), then switch synchronous mode off."""
        self._clear()
        self.connection.close()
        super().close()

    # ------------------------------------------------------------------ staging
    def _stage_with_retries(self, scenario_type: str, attempts: int = 3) -> _Episode:
        """Stage ``scenario_type``, trying new placements when a spawn fails (everything spawned is destroyed)."""
        last: Exception | None = None
        for _ in range(attempts):
            rng = np.random.default_rng(int(self.np_random.integers(0, 2**63 - 1)))
            try:
                return self._stage(scenario_type, rng)
            except CarlaSpawnError as exc:
                last = exc
                self._clear()
            except RuntimeError as exc:
                self._clear()
                self.connection.mark_broken()
                raise CarlaError(f"CARLA server at {self.connection.address} failed while staging the episode "
                                 f"({exc}); reset again to reconnect") from None
        raise CarlaSpawnError(f"{scenario_type}: {last}; tried {attempts} placements")

    def _connect(self) -> None:
        cfg = self.config
        for attempt in range(max(1, cfg.reconnect_attempts)):
            try:
                self.connection.ensure()
                return
            except CarlaError as exc:
                if attempt + 1 >= max(1, cfg.reconnect_attempts) or type(exc).__name__ == "CarlaVersionError":
                    raise
                time.sleep(cfg.reconnect_wait)

    def _town(self) -> TownLanes:
        name = str(self.connection.map.name)
        if name not in self._towns:
            self._towns[name] = TownLanes.from_map(self.connection.map)
        return self._towns[name]

    def _stage(self, scenario_type: str, rng: np.random.Generator) -> _Episode:
        cfg, conn, carla = self.config, self.connection, self.carla
        plan = plan_scenario(carla, conn.map, scenario_type, rng, cfg.warmup_time, cfg.lead_time,
                             cfg.episode_time + cfg.pdm.horizon + 1.0,
                             places=self._places.setdefault(str(conn.map.name), {}))
        library = conn.world.get_blueprint_library()
        failures: list[str] = []
        bp = library.find(cfg.ego_blueprint)
        if bp.has_attribute("role_name"):
            bp.set_attribute("role_name", "hero")
        ego = conn.spawn(bp, transform_from_pose(carla, plan.ego_spawn, self._z(plan.ego_spawn) + 0.3))
        if ego is None:
            raise CarlaSpawnError(f"ego {cfg.ego_blueprint} could not be spawned at {plan.ego_spawn.round(1).tolist()}")
        length, width = box_size(ego)
        wheelbase = 0.6 * length
        params = VehicleParameters(length=length, width=width, wheelbase=wheelbase, rear_axle_to_center=0.5 * wheelbase)
        sensors = _Sensors()
        for type_id, cb in (("sensor.other.collision", sensors.on_collision),
                            ("sensor.other.lane_invasion", sensors.on_invasion)):
            s = conn.spawn(library.find(type_id), carla.Transform(), ego)
            if s is None:
                raise CarlaSpawnError(f"{type_id} could not be attached to the ego")
            s.listen(cb)
        cameras = {}
        for cam in cfg.cameras:
            cbp = library.find("sensor.camera.rgb")
            for key, value in (("image_size_x", cam.width), ("image_size_y", cam.height), ("fov", cam.fov)):
                cbp.set_attribute(key, str(value))
            rel = carla.Transform(carla.Location(cam.x, -cam.y, cam.z), carla.Rotation(0.0, -cam.yaw_deg, 0.0))
            s = conn.spawn(cbp, rel, ego)
            if s is None:
                raise CarlaSpawnError(f"camera {cam.name!r} could not be attached to the ego")
            s.listen(functools.partial(sensors.on_image, cam.name))
            cameras[cam.name] = s
        adversaries = []
        for adv in plan.adversaries:
            actor = self._spawn_adversary(library, adv)
            if actor is None:
                failures.append(f"{adv.role}:{adv.blueprint}")
                if adv.role == "risk":
                    raise CarlaSpawnError(f"{scenario_type}: the {adv.blueprint} adversary could not be spawned")
                continue
            ctrl = None
            if adv.kind == "vehicle":
                ctrl = TrajectoryController(cfg.controller, 0.6 * box_size(actor)[0])
                ctrl.set_path(adv.path)  # type: ignore[arg-type]
            adversaries.append((adv, actor, ctrl))
        self._spawn_background(library, plan)
        frozen = self._set_lights(plan)
        # ---- the recorded agents, the map, the recorder
        town = self._town()
        ego_id = ego.id
        agents = [a for a in conn.world.get_actors() if a.id != ego_id and (
            str(a.type_id).startswith(("vehicle.", "walker.", "static.prop")))]
        agents = [a for a in agents if np.min(np.linalg.norm(plan.route_xy - box_pose(a)[:2], axis=1))
                  <= cfg.map_radius + 50.0]
        lights, scene_lights = self._map_lights(town, plan)
        base_map, geometry, drivable = self._route_map(town, plan)
        live_map = base_map if not scene_lights else dataclasses.replace(base_map, traffic_lights=tuple(scene_lights))
        times = cfg.pdm.sim_dt * np.arange(self.view_frames)
        nominal = nominal_poses(plan, times)
        # Deterministic per reset seed (same seed, same id: the recording is overwritten), distinct otherwise.
        scene_id = f"carla/{plan.scenario_type}/w{cfg.worker_index}-{int(rng.integers(0, 2**48)):012x}"
        meta = SceneMeta(source="carla", scenario_type=plan.scenario_type, extra=self._extra(plan))
        recorder = EpisodeRecorder(
            scene_id, cfg.pdm.sim_dt, self.view_frames, np.array([a.id for a in agents], dtype=np.int64),
            np.array([int(agent_class(a, carla)) for a in agents], dtype=np.int8),
            np.array([box_size(a) for a in agents], dtype=np.float64).reshape(len(agents), 2), live_map, meta, params,
            nominal)
        kin = EgoKinematics(poses=np.array(nominal), body_velocities=np.zeros((self.view_frames, 2)),
                            body_accelerations=np.zeros((self.view_frames, 2)), yaw_rates=np.zeros(self.view_frames))
        return _Episode(plan=plan, ego=ego, params=params, adversaries=adversaries, agents=agents, lights=lights,
                        frozen=frozen, recorder=recorder, kinematics=kin, route=Route.from_points(plan.route_xy),
                        geometry=geometry, drivable=drivable, sensors=sensors, cameras=cameras,
                        controller=TrajectoryController(cfg.controller, wheelbase), spawn_failures=failures,
                        index=self._episodes)

    def _route_map(self, town: TownLanes, plan: ScenarioPlan) -> tuple[Any, Any, DrivableArea]:
        """The route's scene map, its scorer geometry and drivable area (the last few cached: building the map
        index costs ~0.1 s, and seeded resets repeat routes)."""
        key = (town.name, plan.route_xy.tobytes(), tuple(route_keys(plan)), self.config.map_radius)
        hit = self._route_maps.get(key)
        if hit is None:
            base_map = town.scene_map(plan.route_xy, route_keys(plan), self.config.map_radius)
            geometry = map_geometry_from_scene_map(base_map)
            hit = (base_map, geometry, DrivableArea(geometry))
            self._route_maps[key] = hit
            while len(self._route_maps) > 8:
                self._route_maps.pop(next(iter(self._route_maps)))
        return hit

    def _z(self, pose: np.ndarray) -> float:
        wp = self.connection.map.get_waypoint(self.carla.Location(float(pose[0]), float(-pose[1]), 0.0))
        return float(wp.transform.location.z) if wp is not None else 0.0

    def _spawn_adversary(self, library: Any, adv: Any) -> Any:
        carla, conn = self.carla, self.connection
        bp = library.find(adv.blueprint)
        if bp.has_attribute("role_name"):
            bp.set_attribute("role_name", "scenario")
        if bp.has_attribute("is_invincible"):
            bp.set_attribute("is_invincible", "false")
        lift = 1.0 if adv.kind == "walker" else 0.3
        actor = conn.spawn(bp, transform_from_pose(carla, adv.spawn, self._z(adv.spawn) + lift))
        if actor is not None and adv.kind == "static":
            actor.set_simulate_physics(False)
        return actor

    def _spawn_background(self, library: Any, plan: ScenarioPlan) -> None:
        cfg, conn, carla = self.config, self.connection, self.carla
        if cfg.num_background <= 0:
            return
        keep_clear = [plan.route_xy] + [a.path.points for a in plan.adversaries if a.path is not None] + \
            [a.spawn[None, :2] for a in plan.adversaries]
        clear = np.concatenate(keep_clear)
        points = conn.map.get_spawn_points()
        rng = np.random.default_rng(int(self.np_random.integers(0, 2**31)))
        order = rng.permutation(len(points))
        blueprints = [bp for bp in library.filter("vehicle.*")
                      if not bp.has_attribute("number_of_wheels") or bp.get_attribute("number_of_wheels").as_int() == 4]
        batch = []
        for i in order:
            sp = points[int(i)]
            xy = np.array([sp.location.x, -sp.location.y])
            if np.min(np.linalg.norm(clear - xy, axis=1)) < cfg.background_clearance:
                continue
            bp = blueprints[int(rng.integers(len(blueprints)))]
            if bp.has_attribute("role_name"):
                bp.set_attribute("role_name", "background")
            batch.append(carla.command.SpawnActor(bp, sp).then(
                carla.command.SetAutopilot(carla.command.FutureActor, True, cfg.tm_port)))
            if len(batch) >= cfg.num_background:
                break
        if not batch:
            return
        responses = conn.client.apply_batch_sync(batch, False)
        ids = [r.actor_id for r in responses if not r.has_error()]
        for actor in conn.world.get_actors(ids):
            conn.track(actor)

    def _set_lights(self, plan: ScenarioPlan) -> list[Any]:
        """Set and freeze the lights the plan asks for; returns the frozen lights (unfrozen at the episode's end)."""
        if not plan.lights:
            return []
        carla = self.carla
        wanted = dict(plan.lights)
        frozen = []
        for light in self.connection.world.get_actors().filter("traffic.traffic_light*"):
            keys = {waypoint_key(w) for w in light.get_stop_waypoints()}
            hit = [wanted[k] for k in keys if k in wanted]
            if hit:
                light.set_state(carla.TrafficLightState.Green if hit[0] == "green" else carla.TrafficLightState.Red)
                light.freeze(True)
                frozen.append(light)
        return frozen

    def _map_lights(self, town: TownLanes, plan: ScenarioPlan) -> tuple[list[tuple[Any, int]], list[TrafficLight]]:
        """Traffic lights whose stop lines lie on the episode's map lanes: ``[(light actor, stop index)]`` and the
        scene's :class:`TrafficLight` s (states filled by the recorder)."""
        ids = set(town.lanes_near(plan.route_xy, self.config.map_radius))
        actors, scene_lights = [], []
        for light in self.connection.world.get_actors().filter("traffic.traffic_light*"):
            code = _light_code(light.state)
            for wp in light.get_stop_waypoints():
                xy = np.array([wp.transform.location.x, -wp.transform.location.y])
                seg = town.segment_of(waypoint_key(wp), xy)
                if seg is None or seg not in ids:
                    continue
                actors.append((light, len(scene_lights)))
                scene_lights.append(TrafficLight(seg, xy, np.full(self.view_frames, code, dtype=np.uint8)))
        return actors, scene_lights

    def _extra(self, plan: ScenarioPlan) -> dict[str, Any]:
        cfg, conn = self.config, self.connection
        return {"town": str(conn.map.name), "server": conn.address, "server_version": conn.server_version,
                "worker_index": cfg.worker_index, "conflict": plan.conflict, "description": plan.description,
                "params": plan.params, "contact_time": plan.contact_time, "warmup_time": cfg.warmup_time,
                "fixed_delta_seconds": cfg.fixed_delta_seconds, "backend": cfg.backend,
                "start_frame": int(round(cfg.warmup_time / cfg.pdm.sim_dt))}

    # ------------------------------------------------------------------ simulation loop
    def _warmup(self) -> None:
        """First tick (physics starts), initial speeds, frame 0, then the nominal plan for ``warmup_time``."""
        ep = self._episode
        assert ep is not None
        cfg = self.config
        ep.frame0 = self.connection.tick()
        self._set_speed(ep.ego, ep.plan.ego_speed)
        for adv, actor, _ in ep.adversaries:
            if adv.kind == "vehicle":
                self._set_speed(actor, adv.speed0)
        ep.controller.set_path(ep.plan.ego_plan)
        ep.path_t0 = 0.0
        self._record()
        while ep.recorder.t * cfg.pdm.sim_dt < cfg.warmup_time - 1e-9:
            self._tick()

    def _set_speed(self, actor: Any, speed: float) -> None:
        yaw = math.radians(actor.get_transform().rotation.yaw)
        actor.set_target_velocity(self.carla.Vector3D(speed * math.cos(yaw), speed * math.sin(yaw), 0.0))

    def _tick(self) -> bool:
        """Controls, one synchronous tick, and a recorded frame every ``record_every`` ticks (returns whether)."""
        ep = self._episode
        assert ep is not None
        cfg, carla = self.config, self.carla
        dt = cfg.fixed_delta_seconds
        t = ep.ticks * dt
        pose, speed = self._rear_state(ep.ego, ep.params)
        throttle, steer, brake = ep.controller.control(pose, speed, t - ep.path_t0, dt)
        ep.ego.apply_control(carla.VehicleControl(throttle=throttle, steer=steer, brake=brake))
        ep.steer = -steer * math.radians(cfg.controller.max_steer_deg)
        for adv, actor, ctrl in ep.adversaries:
            if adv.kind == "vehicle" and ctrl is not None:
                c_pose = box_pose(actor)
                c_speed = float(np.dot(vector_to_world(actor.get_velocity()), [math.cos(c_pose[2]), math.sin(c_pose[2])]))
                th, st, br = ctrl.control(c_pose, c_speed, t, dt)
                actor.apply_control(carla.VehicleControl(throttle=th, steer=st, brake=br))
            elif adv.kind == "walker":
                d = adv.walk[0]
                actor.apply_control(carla.WalkerControl(carla.Vector3D(float(d[0]), float(-d[1]), 0.0),
                                                        adv.walker_speed(t)))
        self.connection.tick()
        ep.ticks += 1
        if ep.ticks % self.record_every == 0:
            self._record()
            return True
        return False

    def _rear_state(self, actor: Any, params: VehicleParameters) -> tuple[np.ndarray, float]:
        """Rear-axle pose (right-handed) and signed speed [m/s] of a vehicle."""
        c = box_pose(actor)
        heading = np.array([math.cos(c[2]), math.sin(c[2])])
        pose = c.copy()
        pose[:2] -= params.rear_axle_to_center * heading
        return pose, float(np.dot(vector_to_world(actor.get_velocity()), heading))

    def _record(self) -> None:
        ep = self._episode
        assert ep is not None
        dt = self.config.pdm.sim_dt
        pose, _ = self._rear_state(ep.ego, ep.params)
        vel = vector_to_world(ep.ego.get_velocity())
        n = len(ep.agents)
        poses, vels, valid = np.zeros((n, 3)), np.zeros((n, 2)), np.zeros(n, dtype=bool)
        for i, actor in enumerate(ep.agents):
            if actor.is_alive:
                poses[i], vels[i], valid[i] = box_pose(actor), vector_to_world(actor.get_velocity()), True
        states = None
        if ep.lights:
            states = ep.recorder.light_states[:, max(ep.recorder.t, 0)].copy()
            for light, i in ep.lights:
                states[i] = _light_code(light.state)
        k = ep.recorder.record(pose, vel, poses, vels, valid, states)
        kin = ep.kinematics
        kin.poses[k] = pose
        kin.poses[k + 1:] = ep.recorder.ego_poses[k + 1:]
        kin.body_velocities[k] = rotate_vectors(vel, -pose[2])
        if k > 0:
            prev_v = ep.recorder.ego_velocities[k - 1]
            kin.body_accelerations[k] = rotate_vectors((vel - prev_v) / dt, -pose[2])
            kin.yaw_rates[k] = float(wrap_angle(pose[2] - kin.poses[k - 1, 2])) / dt
        self._problem_cache = None
        self._red_light_check(k)

    def _red_light_check(self, k: int) -> None:
        """Count crossing a stop line on red (rear axle passes the line within the lane's width)."""
        ep = self._episode
        assert ep is not None
        scene_map = ep.recorder.view.map
        if k == 0 or ep.end_frame is not None or scene_map is None or not scene_map.traffic_lights:
            return
        p0, p1 = ep.kinematics.poses[k - 1, :2], ep.kinematics.poses[k, :2]
        for tl in scene_map.traffic_lights:
            if int(tl.states[k]) != int(TrafficLightState.RED):
                continue
            lane = scene_map.lane(tl.lane_id)
            d = lane.centerline[-1] - lane.centerline[-2]
            d = d / np.linalg.norm(d)
            a0, a1 = float(np.dot(p0 - tl.stop_point, d)), float(np.dot(p1 - tl.stop_point, d))
            rel = p1 - tl.stop_point
            lateral = abs(float(d[0] * rel[1] - d[1] * rel[0]))
            if a0 < 0.0 <= a1 and lateral < 0.5 * lane.width:
                ep.infractions.append("red_light")

    def _check(self) -> str:
        """Termination after a recorded frame: ``"collision"``, ``"offroad"``, ``"route_end"`` or ``""``."""
        ep = self._episode
        assert ep is not None
        cfg = self.config
        k = ep.recorder.t
        if ep.sensors.collisions and ep.collision is None:
            ep.collision = ep.sensors.collisions[0]
            ep.infractions.append(collision_kind(ep.collision[2]))
            return "collision"
        pose = ep.kinematics.poses[k]
        if ep.drivable is not None and not ep.drivable.contains(vehicle_corners(pose, ep.params)).all():
            return "offroad"
        if ep.route.project(pose[:2]) >= ep.route.length - cfg.route_end_margin:
            return "route_end"
        return ""

    # ------------------------------------------------------------------ observation, reward, info
    def _observation(self, cameras: bool = True) -> dict[str, Any]:
        ep = self._require()
        obs = build_observation(ep.recorder.view, ep.recorder.t, ep.kinematics, self._obs_config, ep.route,
                                self._renderer)
        if self.config.cameras:
            frame = ep.frame0 + ep.ticks
            for cam in self.config.cameras:
                obs[f"camera_{cam.name}"] = self._image(cam, frame) if cameras else np.zeros(
                    (cam.height, cam.width, 3), dtype=np.uint8)
        self._last_obs = obs
        return obs

    def _image(self, cam: CameraConfig, frame: int) -> np.ndarray:
        """The camera's image of ``frame`` (waits up to ``sensor_timeout``; _EpisodeError if none comes)."""
        ep = self._require()
        deadline = time.monotonic() + self.config.sensor_timeout
        while True:
            got = ep.sensors.images.get(cam.name)
            if got is not None and got[0] >= frame:
                return got[1]
            if time.monotonic() >= deadline:
                actor = ep.cameras.get(cam.name)
                raise _EpisodeError(
                    f"sensor.camera.rgb {cam.name!r} (actor {getattr(actor, 'id', '?')}) sent no image for frame "
                    f"{frame} within {self.config.sensor_timeout} s (a -nullrhi server or no_rendering_mode renders "
                    "no camera images)")
            time.sleep(0.001)

    def _score(self, problem: ScoringProblem, states: np.ndarray) -> dict[str, np.ndarray]:
        cfg = self.config
        ref = None
        if problem.map is not None and cfg.reference == "auto":
            ref = reference_for(problem, cfg.pdm).masked_progress
        result = score_states(problem, states, cfg.pdm, reference_progress=ref)
        return reward_terms(result, cfg.pdm, cfg.reward)

    def _info(self, obs: Mapping[str, Any], rewards: dict[str, float], collision: bool, agent: int) -> dict[str, Any]:
        ep = self._require()
        info: dict[str, Any] = {
            "rewards": rewards, "collision": collision, "colliding_agent": agent,
            "scene_id": ep.recorder.view.scene_id, "scenario_type": ep.plan.scenario_type, "source": "carla",
            "t": ep.recorder.t, "score_kind": "pdms" if ep.geometry is not None else "map_free",
            "server": self.connection.address,
        }
        if self.config.text_prompt:
            info["prompt"] = text_prompt(obs, self.config.history_interval)
        return info

    # ------------------------------------------------------------------ episode end
    def _finish(self, reason: str, error: str | None) -> dict[str, Any]:
        """The recording (saved when ``record_dir`` is set) and the episode's metrics."""
        ep = self._require()
        rec = ep.recorder
        end = rec.t if ep.end_frame is None else ep.end_frame
        collision_frame = agent_id = None
        if ep.collision is not None:
            frame = ep.collision[0]
            collision_frame = int(min(end, max(0, math.ceil((frame - ep.frame0) / self.record_every))))
            if ep.collision[1] in set(rec.view.agent_ids.tolist()):
                agent_id = int(ep.collision[1])
        extra = dict(rec.view.meta.extra)
        extra.update({"termination_reason": reason, "recorded_frames": rec.frames, "end_frame": end,
                      "lane_invasions": len(ep.sensors.invasions), "spawn_failures": ep.spawn_failures})
        if error is not None:
            extra["carla_error"] = error
        meta = SceneMeta(source="carla", scenario_type=ep.plan.scenario_type, colliding_agent_id=agent_id,
                         collision_frame=collision_frame, extra=extra)
        scene = rec.finish(meta)
        self.last_recording = scene
        out: dict[str, Any] = {}
        if self.config.record_dir:
            from pathlib import Path  # noqa: PLC0415

            path = write_recording(scene, Path(self.config.record_dir) / recording_name(scene.scene_id))
            out["recording"] = str(path)
            out["origin"] = CarlaRecordingOrigin(path=str(path.resolve()), scene_id=scene.scene_id).to_dict()
        else:
            out["origin"] = UnresolvableOrigin(source="carla", scene_id=scene.scene_id).to_dict()
        start = ep.route.project(ep.kinematics.poses[0, :2])
        progress = ep.route.project(ep.kinematics.poses[end, :2]) - start
        target = ep.plan.ego_plan.arclength_at(self.config.episode_time) - ep.plan.ego_plan.arclength_at(0.0)
        counts: dict[str, int] = {}
        for name in ep.infractions:
            counts[name] = counts.get(name, 0) + 1
        out["driving_metrics"] = driving_metrics(progress, target, "scenario_plan", counts,
                                                 frames=int(end)).to_dict()
        return out

    def _clear(self) -> None:
        """End the current episode's actors: unfreeze lights, stop sensors, destroy everything in one batch."""
        ep = self._episode
        if ep is not None and not ep.done and ep.steps > 0:  # cut short by reset / close: record what was driven
            ep.done = True
            self._finish("interrupted", None)
        self._episode = None
        self._problem_cache = None
        self._last_action = None
        self._last_obs = None
        if ep is not None and self.connection.connected:
            for light in ep.frozen:
                try:
                    light.freeze(False)
                except RuntimeError:
                    break
        self.connection.destroy_all()

    def _require(self) -> _Episode:
        if self._episode is None:
            raise RuntimeError("CarlaEnv: call reset() before using the environment")
        return self._episode

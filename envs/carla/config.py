"""Configuration of :class:`~envs.carla.env.CarlaEnv`: :class:`CarlaEnvConfig` (servers, timeouts, episode timing,
scenarios, observation, scoring, recording; every field documented with its unit) and :class:`CameraConfig` (an RGB
camera on the ego), validated on construction (``ValueError`` naming the field).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from envs.carla.connection import BACKENDS, parse_host
from envs.carla.controller import ControllerConfig
from envs.carla.scenarios import SCENARIO_TYPES
from envs.configuration import coerce_config
from envs.observation import ObservationConfig
from envs.render import BEVConfig
from envs.sim.reward import RewardConfig
from envs.spaces import NUM_POSES
from rewards.config import PDMConfig


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
    """Configuration of :class:`~envs.carla.env.CarlaEnv`; every field is documented, units in brackets."""

    hosts: tuple[str, ...] = ("localhost:2000",)
    """CARLA servers as ``"host:port"``, one per vector-env worker (worker ``i`` uses ``hosts[i]``)."""
    worker_index: int = 0
    """This env's worker index (its server and Traffic Manager port)."""
    backend: str = "carla"
    """``"carla"`` (the real client library, the ``[carla]`` extra) or ``"standin"`` (in-process stand-in)."""
    town: str | None = "Town03"
    """Town to load when the server has another one loaded (None: keep the server's)."""
    client_timeout: float = 10.0
    """Bound of every RPC call [s] (``client.set_timeout``) but ``load_world``."""
    load_world_timeout: float = 120.0
    """Bound of ``client.load_world`` [s] (set around the call, ``client_timeout`` restored after): a first town load
    often takes longer than ``client_timeout``. An unknown town is a :class:`~envs.carla.connection.CarlaMapError`
    listing the server's maps, never retried."""
    tick_timeout: float = 5.0
    """Bound of every ``world.tick`` [s]."""
    sensor_timeout: float = 2.0
    """How long to wait for the current frame's sensor data [s]: the IMU heartbeat before the frame's collision and
    lane-invasion events are read, a camera image of the frame (CARLA's streaming thread may deliver them after
    ``tick`` returns); none within it ends the episode (``info["carla_error"]``)."""
    reconnect_attempts: int = 2
    """Connection attempts per ``reset`` before giving up with :class:`~envs.carla.connection.CarlaConnectionError`."""
    reconnect_wait: float = 2.0
    """Pause between connection attempts [s]."""
    fixed_delta_seconds: float = 0.05
    """Synchronous simulation step [s] (20 Hz); must divide the scene step ``pdm.sim_dt``."""
    traffic_manager_port: int = 8000
    """Base Traffic Manager port (1..65535); this worker uses ``traffic_manager_port + worker_index``."""
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
    prompt_state: str = "none"
    """Motion as numbers in the observation and the VLA's prompt (:mod:`envs.prompt_state`): ``"none"`` (default,
    unchanged), ``"ego"`` (adds ``"ego_velocity"``) or ``"agents"`` (also ``"agents"``: the ``prompt_agents``
    nearest agents visible in the BEV, relative position and velocity)."""
    prompt_agents: int = 4
    """Agents stated with ``prompt_state="agents"``."""
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
        for name in ("client_timeout", "load_world_timeout", "tick_timeout", "sensor_timeout", "fixed_delta_seconds", "replan_interval",
                     "episode_time", "map_radius", "history_interval"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (np.isfinite(value) and value > 0):
                raise ValueError(f"CarlaEnvConfig.{name}: expected a positive number, got {value!r}")
        for name in ("warmup_time", "lead_time", "reconnect_wait", "background_clearance", "route_end_margin",
                     "record_after_end"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise ValueError(f"CarlaEnvConfig.{name}: expected a number >= 0, got {value!r}")
        port = self.traffic_manager_port
        if isinstance(port, bool) or not isinstance(port, (int, np.integer)) or not 0 < port \
                or port + len(hosts) - 1 > 65535:
            raise ValueError(f"CarlaEnvConfig.traffic_manager_port: expected an int with traffic_manager_port + "
                             f"worker index in 1..65535 for {len(hosts)} host(s), got {port!r}")
        for name in ("reconnect_attempts", "num_background"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"CarlaEnvConfig.{name}: expected an int >= 0, got {value!r}")
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
        from envs.prompt_state import check_prompt_options

        check_prompt_options("CarlaEnvConfig", self.prompt_state, self.prompt_agents)

    @property
    def observation(self) -> ObservationConfig:
        """The observation part (:func:`envs.observation.build_observation`)."""
        return ObservationConfig(bev=self.bev, history_poses=self.history_poses,
                                 history_interval=self.history_interval, command_lookahead=self.command_lookahead,
                                 command_threshold_deg=self.command_threshold_deg,
                                 prompt_state=self.prompt_state, prompt_agents=self.prompt_agents)

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

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
  ``-reward.w_terminal_collision`` on the step in which CARLA's collision sensor reports an ego collision; with
  ``reward.kind="progress"`` route progress first instead (:func:`envs.sim.reward.progress_reward`: the route
  completion gained per step against the scenario plan's progress, the driving metrics' reference), as the replay env (the minimum-speed infraction against
  the recorded vehicles: Traffic Manager traffic and adversaries). CARLA has no
  save/restore, so the scorer's view (:meth:`CarlaEnv.current_problem`) is the recording up to now with the other
  agents **forecast at constant velocity** (:func:`rewards.reference_planner.constant_velocity_agents`): the true
  future is unknown at decision time. :meth:`CarlaEnv.score_group` scores candidates on that view, never touching
  the server.
* **Episode**: a scripted scenario (:mod:`envs.carla.scenarios`) is staged: the ego, its sensors (collision, lane
  invasion, an IMU as the per-frame heartbeat, cameras), the adversaries, background traffic on the Traffic Manager; the ego drives its nominal plan
  for ``warmup_time`` (the observation's history), then the policy takes over. It **terminates** on any collision
  (collision sensor; its events are kept by frame id and read once the frame's data arrived, at most
  ``sensor_timeout`` after the tick, so the collision ends the step it happened in; unlike the replay env, which ends
  only at-fault collisions, :func:`rewards.pdm.contacts_at_fault`: CARLA's contacts are physical, so the ego is
  pushed and the scene after a contact is no longer the scenario, and the classifier would need the other actor's
  box, first-seen speed and the lane areas at the contact frame from the recording, not wired here; so being
  rear-ended ends a CARLA episode and counts as an infraction, as on the CARLA leaderboard), off-road (an ego
  corner outside the map's drivable area; maps come from the CARLA map's waypoints, :mod:`envs.carla.roadmap`) or
  at the route's end, and is **truncated** at ``episode_time`` or when the server fails (``info["carla_error"]``;
  the next ``reset`` reconnects).
* **Recording**: every episode becomes a :class:`~envs.scenes.scene.Scene` with ``meta.source == "carla"``
  (:mod:`envs.carla.recording`), written to ``record_dir`` when set (``info["recording"]``, ``info["origin"]``);
  the final info carries the leaderboard metrics (``info["driving_metrics"]``, :func:`envs.sim.metrics.driving_metrics`).

Reliability (:mod:`envs.carla.connection`): connect with a timeout and a version check, the town loaded under its
own ``load_world_timeout`` (an unknown town is a :class:`~envs.carla.connection.CarlaMapError`, not retried),
synchronous mode with a
fixed delta and the Traffic Manager on this worker's port (``traffic_manager_port + worker_index``), every tick with
a timeout, every spawned actor destroyed in one batch on ``reset`` and ``close``, synchronous mode switched off on
``close``. ``hosts`` lists the servers, one per worker (``worker_index``): :func:`carla_env_fns` builds the
per-worker constructors for a vector env.

This module wires the pieces: :mod:`envs.carla.config` (:class:`CarlaEnvConfig`, :class:`CameraConfig`, re-exported
here), :mod:`envs.carla.staging` (an episode's scenario, actors, sensors, map and recorder at ``reset``),
:mod:`envs.carla.ticking` (controls, ticks, recorded frames, end checks) and :mod:`envs.carla.recording`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, Mapping

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.carla.config import CameraConfig, CarlaEnvConfig
from envs.carla.connection import CarlaConnection, CarlaError, CarlaSensorError, carla_module
from envs.carla.controller import TimedPath
from envs.carla.recording import store_recording
from envs.carla.scenarios import SCENARIO_TYPES, ScenarioPlacementError
from envs.carla.staging import Episode, EpisodeStager
from envs.carla.ticking import EpisodeTicker
from envs.observation import build_observation, renderer_for, text_prompt
from envs.registration import CARLA_ENV_ID as ENV_ID  # noqa: F401  (registered by envs on import)
from envs.render import BEVConfig, BEVRenderer
from envs.scenes.scene import SceneMeta
from envs.sim.metrics import DrivingMetricsConfig, driving_metrics, route_completion
from envs.sim.reward import (PROGRESS_TERMS, REWARD_TERMS, closed_loop_reward, min_speed_ratio, reward_terms,
                             traffic_speeds)
from envs.sim.scoring import agents_future_from_scene, log_as_action
from envs.spaces import POSE_INTERVAL, action_space, observation_space, validate_trajectories
from rewards.pdm import score_states
from rewards.reference_planner import constant_velocity_agents
from rewards.scorer import reference_for
from rewards.tracking import simulate_candidates
from rewards.types import EgoState, ScoringProblem

__all__ = ["CameraConfig", "CarlaEnv", "CarlaEnvConfig", "ENV_ID", "STEP_TERMS", "TERMINATIONS", "carla_env_fns"]

STEP_TERMS = REWARD_TERMS + ("terminal_collision",) + PROGRESS_TERMS
"""Keys of ``info["rewards"]`` (NaN where not computed, e.g. after ``reset``)."""
TERMINATIONS = ("collision", "offroad", "route_end", "time_limit", "carla_error", "")
"""Values of ``info["termination_reason"]`` (a recording of an episode cut short by ``reset`` / ``close`` says
``"interrupted"`` in ``meta.extra["termination_reason"]``)."""


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


_EpisodeError = CarlaSensorError
"""A sensor failure that ends the episode (``info["carla_error"]``) while the server is up."""


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
            no_rendering_mode=not cfg.cameras, seed=cfg.seed, load_world_timeout=cfg.load_world_timeout)
        self._obs_config = cfg.observation
        obs_space = observation_space(self._obs_config)
        extra = {f"camera_{c.name}": spaces.Box(0, 255, (c.height, c.width, 3), dtype=np.uint8) for c in cfg.cameras}
        self.observation_space = spaces.Dict({**obs_space.spaces, **extra})
        self.action_space = action_space()
        self._renderer: BEVRenderer | None = None if cfg.bev is None else renderer_for(cfg.bev)
        self._view_renderer: BEVRenderer | None = None
        self._episode: Episode | None = None
        self._episodes = 0
        self._last_action: np.ndarray | None = None
        self._last_obs: dict[str, Any] | None = None
        self.record_every = int(round(cfg.pdm.sim_dt / cfg.fixed_delta_seconds))
        self.ticks_per_step = int(round(cfg.replan_interval / cfg.fixed_delta_seconds))
        self.capacity = int(round(cfg.episode_time / cfg.pdm.sim_dt)) + 1
        """Frames of a full episode (the time limit)."""
        self.view_frames = self.capacity + int(round(cfg.pdm.horizon / cfg.pdm.sim_dt))
        """Frames of the live view: the episode plus one scoring horizon of nominal future (so ``logged_action``
        never runs off the plan's end)."""
        self._stager = EpisodeStager(cfg, self.carla, self.connection, self.view_frames)
        self._ticker = EpisodeTicker(cfg, self.carla, self.connection, self.record_every)
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
        if ep.problem_cache is not None and ep.problem_cache[0] == t:
            return ep.problem_cache[1]
        view, k = ep.recorder.view, ep.kinematics
        now = agents_future_from_scene(view, t, self.config.pdm)
        ego = EgoState(pose=k.poses[t].copy(), velocity=k.body_velocities[t].copy(),
                       acceleration=k.body_accelerations[t].copy(), params=ep.params, steering_angle=ep.steer)
        problem = ScoringProblem(ego=ego, agents=constant_velocity_agents(now, self.config.pdm.sim_dt),
                                 map=ep.geometry, scene_id=view.scene_id, time_index=t)
        ep.problem_cache = (t, problem)
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
        self._stager.connect()
        requested = options.get("scenario_type")
        if requested is not None and requested not in SCENARIO_TYPES:
            raise ValueError(f"reset options: unknown scenario_type {requested!r}; known: {SCENARIO_TYPES}")
        # A randomly drawn type that this town cannot host (e.g. a junction typology on a town without junctions)
        # gives way to the next one; a requested type cannot.
        order = [requested] if requested else [str(x) for x in self.np_random.permutation(list(cfg.scenario_types))]
        placement_errors = []
        for scenario_type in order:
            try:
                self._episode = self._stager.stage(scenario_type, self.np_random, self._episodes)
                break
            except ScenarioPlacementError as exc:
                if requested:
                    raise
                placement_errors.append(str(exc))
        else:
            raise ScenarioPlacementError("; ".join(placement_errors))
        self._episodes += 1
        try:
            self._ticker.warmup(self._episode)
            obs = self._observation()
        except RuntimeError as exc:
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
        first_frame = ep.frame0 + ep.ticks
        error, reason = None, ""
        try:
            for _ in range(self.ticks_per_step):
                recorded = self._ticker.tick(ep)
                if recorded:
                    reason = self._ticker.check(ep)
                    if reason or ep.recorder.frames >= self.capacity:
                        break
            obs = self._observation()
        except RuntimeError as exc:
            error = f"sensor failure: {exc}" if isinstance(exc, _EpisodeError) else str(exc)
            if not isinstance(exc, _EpisodeError):  # the server stopped answering (a sensor failure leaves it up)
                self.connection.mark_broken()
            obs = self._last_obs if self._last_obs is not None else self._observation(cameras=False)
            reason = "carla_error"
        collision = reason == "collision"
        if collision:
            terms["terminal_collision"] = -1.0
        self._progress_terms(ep, terms, reason in ("collision", "offroad"), t)
        if not reason and ep.recorder.frames >= self.capacity:
            reason = "time_limit"
        terminated = reason in ("collision", "offroad", "route_end")
        truncated = reason in ("time_limit", "carla_error")
        agent = ep.collision[1] if collision and ep.collision is not None else -1
        info = self._info(obs, terms, collision, agent)
        info["termination_reason"] = reason
        info["lane_invasions"] = ep.sensors.invasions_between(first_frame, ep.frame0 + ep.ticks)
        if error is not None:
            info["carla_error"] = error
        ep.steps += 1
        if terminated or truncated:
            ep.done = True
            ep.end_frame = ep.recorder.t
            if terminated:
                self._ticker.record_after_end(ep)
            info.update(self._finish(reason, error))
        return obs, terms["reward"], terminated, truncated, info

    def _progress_terms(self, ep: Any, terms: dict[str, float], ended_badly: bool, t: int) -> None:
        """Route completion gained this step against the episode's target (the scenario plan's arc length over
        ``episode_time``, what the driving metrics divide by), the soft factor (with the minimum-speed ratio of the
        frames recorded after frame ``t`` against the recorded traffic, :func:`envs.sim.reward.traffic_speeds`), and
        the step reward of the configured kind (:func:`envs.sim.reward.closed_loop_reward`)."""
        if ep.route_s is None:
            ep.route_s = ep.route.project(ep.kinematics.poses[0, :2])
        progress = ep.route.project(ep.kinematics.poses[ep.recorder.t, :2]) - ep.route_s
        completion = route_completion(progress, self._route_target(ep), 0.0,
                                      DrivingMetricsConfig().min_reference_progress)
        gained, ep.completion = completion - ep.completion, completion
        view, frames = ep.recorder.view, slice(t + 1, ep.recorder.t + 1)
        speed_ratio = min_speed_ratio(np.hypot(view.ego_velocities[frames, 0], view.ego_velocities[frames, 1]),
                                      traffic_speeds(view)[frames])
        ep.earned = closed_loop_reward(terms, gained, ended_badly, ep.earned, self.config.reward, speed_ratio)

    def _route_target(self, ep: Any) -> float:
        """The driving metrics' reference progress of the episode [m]: the scenario plan over ``episode_time``."""
        plan = ep.plan.ego_plan
        return float(plan.arclength_at(self.config.episode_time) - plan.arclength_at(0.0))

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
        image = ep.sensors.wait_image(cam.name, frame, self.config.sensor_timeout)
        if image is None:
            actor = ep.cameras.get(cam.name)
            raise _EpisodeError(
                f"sensor.camera.rgb {cam.name!r} (actor {getattr(actor, 'id', '?')}) sent no image for frame "
                f"{frame} within {self.config.sensor_timeout} s (a -nullrhi server or no_rendering_mode renders "
                "no camera images)")
        return image

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
                      "lane_invasions": ep.sensors.invasions_between(-1, ep.frame0 + ep.ticks),
                      "spawn_failures": ep.spawn_failures})
        if error is not None:
            extra["carla_error"] = error
        meta = SceneMeta(source="carla", scenario_type=ep.plan.scenario_type, colliding_agent_id=agent_id,
                         collision_frame=collision_frame, extra=extra)
        scene = rec.finish(meta)
        self.last_recording = scene
        out = store_recording(scene, self.config.record_dir)
        start = ep.route.project(ep.kinematics.poses[0, :2])
        progress = ep.route.project(ep.kinematics.poses[end, :2]) - start
        target = self._route_target(ep)
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
        self._last_action = None
        self._last_obs = None
        self._stager.release(ep)

    def _require(self) -> Episode:
        if self._episode is None:
            raise RuntimeError("CarlaEnv: call reset() before using the environment")
        return self._episode

"""Gymnasium replay environment over logged scenes: open-loop decisions and closed-loop simulation, PDM rewards.

Spaces
------
* **Observation** (``Dict``):

  - ``"bev"``: ``uint8 (H, W, C)`` bird's-eye view of the ego frame (:class:`~envs.render.BEVRenderer`, shape from
    ``EnvConfig.bev``; default RGB 128 x 128 px at 0.5 m/px, no anti-aliasing);
  - ``"ego_state"``: ``float32 (3,)`` speed [m/s], longitudinal acceleration [m/s^2], yaw rate [rad/s], clipped to
    :data:`EGO_STATE_LOW` / :data:`EGO_STATE_HIGH`;
  - ``"command"``: ``Discrete(3)`` left / straight / right from the route ahead (:mod:`envs.observation`);
  - ``"history"``: ``float32 (H_hist, 3)`` past rear-axle poses in the current ego frame, oldest first, every
    ``history_interval`` (default 4 poses at 0.5 s: -2.0 .. -0.5 s), clipped to +-200 m.

  With ``EnvConfig.text_prompt`` a text instruction (command and speed) is added to ``info["prompt"]``; it is not
  part of the observation space (SB3 policies cannot take text).
* **Action**: ``Box (8, 3) float32``, a trajectory in the NAVSIM convention: 8 rear-axle poses ``(x, y, yaw)`` at
  0.5 s over 4 s in the ego frame at the decision time, bounds :data:`ACTION_LOW` / :data:`ACTION_HIGH`
  (x in [-10, 80] m, y in [-40, 40] m, yaw in [-pi, pi] rad). An action of another shape, with NaN/inf, or with a
  value outside the bounds raises ``ValueError`` naming the offending index and value; actions are never clipped
  silently (SB3 clips its Gaussian samples to the bounds itself before calling ``step``).

Modes
-----
* ``"open_loop"``: one step per episode at a decision frame: ``lead_time`` (2 s) before ``meta.collision_frame`` for
  accident scenes, else a seeded random frame in ``[history, t_max]``. The reward scores the action from the logged
  state; the episode terminates after the step.
* ``"closed_loop"``: starts ``closed_loop_lead_time`` (3 s) before the logged collision (accident scenes) or at a
  seeded random frame, then re-plans every ``replan_interval`` (0.5 s = 5 frames). The ego tracks the action with
  the scorer's LQR tracker + kinematic bicycle (the first 5 states of :func:`rewards.tracking.simulate_candidates`,
  computed by :func:`envs.simulation.simulate_prefix`, which also carries the steering angle across re-plans);
  other agents replay their logs (non-reactive). After every simulated frame the episode **terminates** on a
  collision (ego box overlapping any agent valid at that frame) or off-road (an ego corner outside every drivable
  polygon; skipped without a map); after the step it terminates at the route's end (within ``route_end_margin``)
  and is **truncated** at the time limit, the first frame after ``t_max = T - 1 - log_end_margin / dt`` (default
  margin: the 4 s scoring horizon, so every scored decision has the logged agents over its whole horizon).
  Replaying the log (:meth:`ReplayEnv.logged_action` every step) collides with the logged agent within one
  re-planning interval (+-5 frames) of ``meta.collision_frame`` (tested over the bank's accident types).

Reward (:mod:`envs.reward`)
---------------------------
``w_score * score + w_collision * collision`` for the action scored by the PDM scorer (:mod:`rewards.pdm`) from the
current state (non-reactive, as NAVSIM), where ``score`` is PDMS, or the map-free score ``NC (5 TTC + 2 C) / 7``
when the scene has no map. Closed loop adds ``-w_terminal_collision`` on the step in which the simulated ego
collides. ``info["rewards"]`` holds every term. With ``reward_mode="lazy"`` the per-step scorer call is skipped
(reward = terminal terms only) and :meth:`ReplayEnv.flush_rewards` scores the stored decisions later (e.g. at the
end of an episode, off the stepping loop).

The closed-loop ego state lives in an :class:`~envs.simulation.EgoTrack` (arrays updated in place); the renderer sees
it through one shallow scene view per episode, and the scorer gets ``ScoringProblem``s built from the log's agents and
map (cached per frame) with the simulated :class:`~rewards.types.EgoState` swapped in. No scene is copied per step.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.observation import COMMANDS, Route, ego_status, pose_history, route_command, text_prompt
from envs.render import BEVConfig, BEVRenderer
from envs.reward import REWARD_TERMS, reward_terms
from envs.scene import Scene
from envs.scoring import map_geometry_from_scene_map, problem_from_scene
from envs.simulation import DrivableArea, EgoTrack, check_frames, simulate_prefix
from envs.sources import SceneSource, make_source
from rewards.config import PDMConfig
from rewards.geometry import world_to_local
from rewards.pdm import score_states
from rewards.scorer import reference_for
from rewards.tracking import simulate_candidates
from rewards.types import EgoState, ScoringProblem

MODES = ("open_loop", "closed_loop")
REWARD_MODES = ("eager", "lazy")
REFERENCES = ("auto", "log", None)

NUM_POSES = 8
"""Poses per action trajectory (NAVSIM: 8 at 0.5 s)."""
ACTION_LOW = np.tile(np.array([-10.0, -40.0, -np.pi], dtype=np.float32), (NUM_POSES, 1))
"""``(8, 3)`` lower action bounds: x [m], y [m], yaw [rad] in the ego frame."""
ACTION_HIGH = np.tile(np.array([80.0, 40.0, np.pi], dtype=np.float32), (NUM_POSES, 1))
"""``(8, 3)`` upper action bounds."""
EGO_STATE_LOW = np.array([0.0, -20.0, -4.0], dtype=np.float32)
"""Lower bounds of ``ego_state``: speed [m/s], longitudinal acceleration [m/s^2], yaw rate [rad/s]."""
EGO_STATE_HIGH = np.array([60.0, 20.0, 4.0], dtype=np.float32)
"""Upper bounds of ``ego_state``."""
HISTORY_RANGE = 200.0
"""History x, y bound [m] (values are clipped to +-200 m)."""


@dataclass(frozen=True)
class EnvConfig:
    """Configuration of :class:`ReplayEnv`; every field is documented, units in brackets."""

    bev: BEVConfig | None = field(default_factory=lambda: BEVConfig(antialias=False))
    """BEV observation raster (size, resolution, RGB or semantic channels); None drops ``"bev"`` from the
    observation (state-only policies; the BEV render is the largest cost of a closed-loop step). Default: 128 px RGB
    without anti-aliasing (a policy needs no smoothed edges; about 1.3x faster to render)."""
    pdm: PDMConfig = field(default_factory=PDMConfig)
    """Scorer configuration (NAVSIM v1.1 defaults); its ``sim_dt`` must equal the scenes' ``dt``."""
    reference: str | None = "log"
    """EP normaliser (see :data:`REFERENCES`): ``"log"`` plans the PDM-Closed-like reference
    (:func:`rewards.scorer.reference_for`) from the *logged* ego state at the decision frame and caches it per
    (scene, frame): exact in open loop, an approximation in closed loop once the ego leaves the log (the reference
    then starts from the logged, not the simulated, state). ``"auto"`` plans it from the current (possibly
    simulated) state: exact, but planning costs tens of ms per new state (cached per state, so ``score_group`` after
    ``step`` at the same state reuses it). None normalises among the scored trajectories only (for a single action
    EP is then 1 unless it progresses < 5 m with NC x DAC = 0)."""
    lead_time: float = 2.0
    """Open loop: decision time before ``meta.collision_frame`` in accident scenes [s]."""
    closed_loop_lead_time: float = 3.0
    """Closed loop: start time before ``meta.collision_frame`` in accident scenes [s]."""
    history_time: float = 2.0
    """Earliest random decision / start time [s] (so the history is logged, not padded), when the log allows."""
    replan_interval: float = 0.5
    """Closed loop: time between re-planning steps [s] (a multiple of the scene step)."""
    history_poses: int = 4
    """Past poses in ``history``."""
    history_interval: float = 0.5
    """Time between ``history`` poses [s]."""
    command_lookahead: float = 30.0
    """Route length ahead used for the command [m]."""
    command_threshold_deg: float = 15.0
    """Route heading change above which the command is a turn [deg]."""
    log_end_margin: float = 4.0
    """Closed loop: episodes are truncated after the frame ``T - 1 - log_end_margin / dt`` (``t_max``, also the
    latest start / decision frame) [s]. The default, the 4 s scoring horizon, keeps every scored decision inside
    the logged agents' window; smaller values (>= ``replan_interval``) let episodes run closer to the log's end,
    where the scorer sees agents beyond the log as absent (lenient)."""
    route_end_margin: float = 2.0
    """Closed loop: the episode terminates when the ego is within this distance of the route's end [m]."""
    w_score: float = 1.0
    """Weight of ``score`` (PDMS, or the map-free score without a map) in the reward."""
    w_collision: float = 1.0
    """Weight of the scorer's collision term (``-PDMConfig.collision_penalty`` for a colliding action)."""
    w_terminal_collision: float = 1.0
    """Closed loop: penalty magnitude added once when the simulated ego collides."""
    reward_mode: str = "eager"
    """``"eager"``: score every action in ``step``; ``"lazy"``: defer to :meth:`ReplayEnv.flush_rewards`."""
    text_prompt: bool = False
    """Add ``info["prompt"]``, a text instruction with command and speed (for VLA policies)."""
    scene_order: str = "shuffle"
    """``"shuffle"``: a seeded permutation per pass over the source; ``"sequential"``: index order."""
    scene_cache_size: int = 16
    """Loaded scenes (and their per-scene precomputations) kept in memory."""
    problem_cache_size: int = 256
    """Scoring problems of the log per (scene, frame) kept in memory, with the scorer's per-problem caches (object
    boxes, the ``"log"`` reference); size it to the decision frames of the scenes in use (~7 per closed-loop
    episode)."""

    def __post_init__(self) -> None:
        if self.reference not in REFERENCES:
            raise ValueError(f"EnvConfig.reference: expected one of {REFERENCES}, got {self.reference!r}")
        if self.reward_mode not in REWARD_MODES:
            raise ValueError(f"EnvConfig.reward_mode: expected one of {REWARD_MODES}, got {self.reward_mode!r}")
        if self.scene_order not in ("shuffle", "sequential"):
            raise ValueError(f"EnvConfig.scene_order: expected 'shuffle' or 'sequential', got {self.scene_order!r}")
        for name in ("lead_time", "closed_loop_lead_time", "history_time", "route_end_margin"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"EnvConfig.{name}: expected >= 0, got {getattr(self, name)!r}")
        if self.log_end_margin < self.replan_interval:
            raise ValueError(f"EnvConfig.log_end_margin: expected >= replan_interval ({self.replan_interval} s), "
                             f"got {self.log_end_margin!r}")
        for name in ("replan_interval", "history_interval", "command_lookahead"):
            if not getattr(self, name) > 0:
                raise ValueError(f"EnvConfig.{name}: expected > 0, got {getattr(self, name)!r}")
        if self.history_poses < 1:
            raise ValueError(f"EnvConfig.history_poses: expected >= 1, got {self.history_poses}")
        if self.pdm.num_poses != NUM_POSES:
            raise ValueError(
                f"EnvConfig.pdm.num_poses: the action space has {NUM_POSES} poses, got {self.pdm.num_poses}"
            )


def validate_trajectories(trajectories: Any, name: str = "action", group: bool = False) -> np.ndarray:
    """Check trajectories against the action space: shape, finiteness and bounds (no clipping).

    Args:
        trajectories: ``(8, 3)`` (``group=False``) or ``(G, 8, 3)`` (``group=True``) ego-frame poses.
        name: what to call it in error messages.
        group: expect a leading group axis.

    Returns:
        float64 array of the same shape.

    Raises:
        ValueError: wrong shape, NaN/inf, or a value outside :data:`ACTION_LOW` / :data:`ACTION_HIGH` (the message
            names the first offending index and value).
    """
    try:
        arr = np.asarray(trajectories, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: cannot convert to a float array ({exc})") from None
    want = ("(G, 8, 3)" if group else "(8, 3)")
    if arr.shape[-2:] != (NUM_POSES, 3) or arr.ndim != (3 if group else 2) or (group and arr.shape[0] == 0):
        raise ValueError(f"{name}: expected shape {want}, got {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = tuple(int(k) for k in np.argwhere(bad)[0])
        raise ValueError(f"{name}: NaN or inf at index {i} (shape {arr.shape}): {arr[i]}")
    tol = 1e-5
    out = (arr < ACTION_LOW - tol) | (arr > ACTION_HIGH + tol)
    if out.any():
        i = tuple(int(k) for k in np.argwhere(out)[0])
        lo, hi = ACTION_LOW[i[-2:]], ACTION_HIGH[i[-2:]]
        raise ValueError(f"{name}: value {arr[i]:.6g} at index {i} is outside the action bounds [{lo:.6g}, {hi:.6g}]")
    return arr


@dataclass
class _SceneContext:
    """Per-scene precomputations, cached with the scene."""

    route: Route
    drivable: DrivableArea | None
    """Drivable area for the off-road checks, None without a map."""
    t_max: int
    """Latest decision / start frame (``log_end_margin`` before the log's end)."""


class ReplayEnv(gym.Env):
    """Replay environment over a source of scenes (see the module docstring for spaces, modes and reward).

    Args:
        source: ``"bank"`` (default), ``"deepaccident"`` (with ``root``), a folder path, a sequence of scenes, or any
            indexable collection of scenes (e.g. a ``ScenarioBank``); see :func:`envs.sources.make_source`.
        mode: ``"open_loop"`` or ``"closed_loop"``.
        config: :class:`EnvConfig`.
        num_scenes, seed, scenario_types: for ``source="bank"`` (``seed`` fixes the bank's scenes; episode randomness
            comes from ``reset(seed=...)``).
        root, split: for DeepAccident.
        render_mode: None or ``"rgb_array"`` (a 256 px RGB view with the last action drawn).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 2}

    def __init__(
        self,
        source: Any = "bank",
        mode: str = "open_loop",
        config: EnvConfig | None = None,
        *,
        num_scenes: int = 16,
        seed: int = 0,
        scenario_types: tuple[str, ...] | list[str] | None = None,
        root: str | None = None,
        split: str | None = None,
        render_mode: str | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode: expected None or one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        self.mode = mode
        self.config = config if config is not None else EnvConfig()
        self.render_mode = render_mode
        self.source: SceneSource = make_source(
            source, num_scenes=num_scenes, seed=seed, scenario_types=scenario_types, root=root, split=split,
            cache_size=self.config.scene_cache_size,
        )
        self._renderer = None if self.config.bev is None else BEVRenderer(self.config.bev)
        self._view_renderer: BEVRenderer | None = None
        obs_spaces: dict[str, spaces.Space] = {}
        if self.config.bev is not None:
            obs_spaces["bev"] = spaces.Box(0, 255, self.config.bev.shape, dtype=np.uint8)
        self.observation_space = spaces.Dict(
            {
                **obs_spaces,
                "ego_state": spaces.Box(EGO_STATE_LOW, EGO_STATE_HIGH, dtype=np.float32),
                "command": spaces.Discrete(len(COMMANDS)),
                "history": spaces.Box(
                    low=np.tile(np.array([-HISTORY_RANGE, -HISTORY_RANGE, -np.pi], dtype=np.float32),
                                (self.config.history_poses, 1)),
                    high=np.tile(np.array([HISTORY_RANGE, HISTORY_RANGE, np.pi], dtype=np.float32),
                                 (self.config.history_poses, 1)),
                    dtype=np.float32,
                ),
            }
        )
        self.action_space = spaces.Box(ACTION_LOW, ACTION_HIGH, dtype=np.float32)
        self._contexts: OrderedDict[str, _SceneContext] = OrderedDict()
        self._problems: OrderedDict[tuple[str, int], ScoringProblem] = OrderedDict()
        self._order: np.ndarray | None = None
        self._cursor = 0
        self._scene: Scene | None = None
        self._track: EgoTrack | None = None
        self._done = False
        # Lazy mode: (scene, frame, ego state, action, episode) per step, until flush_rewards.
        self._pending: list[tuple[Scene, int, EgoState, np.ndarray, int]] = []
        self._episode = -1
        self._last_action: np.ndarray | None = None
        self._command = 1
        self._route_s = 0.0
        self._current: tuple[int, ScoringProblem] | None = None

    # ------------------------------------------------------------------ public API
    @property
    def scene(self) -> Scene:
        """The current episode's (logged) scene."""
        self._require_reset()
        return self._scene  # type: ignore[return-value]

    @property
    def t(self) -> int:
        """The current frame (the decision frame of the next action)."""
        self._require_reset()
        return self._track.frame  # type: ignore[union-attr]

    @property
    def ego_poses(self) -> np.ndarray:
        """``(T, 3)`` read-only ego rear-axle poses of this episode (log before the start, simulated up to
        :attr:`t`, log after it), world frame [m, m, rad]."""
        self._require_reset()
        return self._track.scene_view.ego_poses  # type: ignore[union-attr]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode on the next scene of the seeded order.

        Args:
            seed: reseeds the episode generator (scene order and random decision frames).
            options: ``{"scene_id": str}`` or ``{"scene_index": int}`` picks the scene; ``{"t": int}`` sets the
                decision / start frame (``0 <= t <= t_max``).
        """
        super().reset(seed=seed)
        if seed is not None:
            self._order, self._cursor = None, 0
        options = dict(options or {})
        unknown = set(options) - {"scene_id", "scene_index", "t"}
        if unknown:
            raise ValueError(f"reset options: unknown keys {sorted(unknown)}; known: scene_id, scene_index, t")
        if "scene_id" in options:
            index = self.source.index_of(options["scene_id"])
        elif "scene_index" in options:
            index = int(options["scene_index"])
            if not 0 <= index < len(self.source):
                raise ValueError(f"reset options: scene_index {index} outside [0, {len(self.source)})")
        else:
            index = self._next_index()
        scene = self.source[index]
        ctx = self._context(scene)
        if "t" in options:
            t0 = int(options["t"])
            if not 0 <= t0 <= ctx.t_max:
                raise ValueError(f"reset options: t={t0} outside [0, {ctx.t_max}] for scene {scene.scene_id}")
        else:
            t0 = self._start_frame(scene, ctx)
        self._scene = scene
        self._track = EgoTrack(scene, t0, self._log_problem(scene, t0).ego)
        self._current = None
        self._done = False
        self._episode += 1
        self._last_action = None
        obs = self._observation()
        return obs, self._info({}, False, -1)

    def step(self, action: Any):
        """Apply a trajectory action; see the module docstring for what happens per mode.

        ``info["collision"]`` / ``info["colliding_agent"]``: in open loop, whether the scorer finds a collision of the
        action within its 4 s horizon (and the first agent hit, -1: none); in closed loop, whether the simulated ego
        collided during this step. Closed loop adds ``info["termination_reason"]`` (``"collision"``,
        ``"offroad"``, ``"route_end"``, ``"time_limit"`` or ``""``).
        """
        self._require_reset()
        if self._done:
            raise RuntimeError("step() called after the episode ended; call reset()")
        traj = validate_trajectories(action, "action")
        self._last_action = traj
        cfg = self.config
        scene, track = self._scene, self._track
        assert scene is not None and track is not None
        k = self._replan_frames(scene)
        terms: dict[str, float] = {}
        if cfg.reward_mode == "eager":
            problem = self._problem()
            scored = self._score(scene, problem, simulate_candidates(problem.ego, traj[None], cfg.pdm))
            terms = {name: float(scored[name][0]) for name in REWARD_TERMS}
            collision, agent = bool(scored["is_collision"][0]), int(scored["colliding_agent_id"][0])
        else:  # the scoring problem is built at flush time
            self._pending.append((scene, track.frame, track.ego_state, traj, self._episode))
            terms["reward"], collision, agent = 0.0, False, -1

        if self.mode == "open_loop":
            self._done = True
            obs = self._observation()
            return obs, terms["reward"], True, False, self._info(terms, collision, agent)

        # ---- closed loop: track the first re-planning interval of the action, check every simulated frame.
        ctx = self._context(scene)
        # The scorer's simulation starts each candidate with straight wheels; the closed loop keeps the steering.
        states, steering = simulate_prefix(track.ego_state, traj, cfg.pdm, k, track.steering)
        colliding, offroad_at = check_frames(scene, states[:, :3], track.frame + 1 + np.arange(k), ctx.drivable)
        events = np.flatnonzero((colliding >= 0) | offroad_at)
        n = int(events[0]) + 1 if len(events) else k  # frames actually driven (up to the first event)
        track.advance(states[:n], float(steering[n - 1]))
        collision, agent = bool(colliding[n - 1] >= 0), int(colliding[n - 1])
        offroad = bool(offroad_at[n - 1]) and not collision
        terms["terminal_collision"] = -1.0 if collision else 0.0
        terms["reward"] += cfg.w_terminal_collision * terms["terminal_collision"]
        obs = self._observation()
        route_end = self._route_s >= ctx.route.length - cfg.route_end_margin
        terminated = collision or offroad or route_end
        truncated = not terminated and track.frame > ctx.t_max
        self._done = terminated or truncated
        info = self._info(terms, collision, agent)
        info["termination_reason"] = ("collision" if collision else "offroad" if offroad else
                                      "route_end" if route_end else "time_limit" if truncated else "")
        return obs, terms["reward"], terminated, truncated, info

    def score_group(self, trajectories: Any) -> dict[str, np.ndarray]:
        """Score candidate trajectories ``(G, 8, 3)`` from the current state, without changing the env's state.

        Returns:
            ``{name: (G,) array}``: every reward term (see :func:`envs.reward.reward_terms`), the aggregated
            ``score`` and ``reward``, and the collision flags ``is_collision``, ``at_fault_collision``,
            ``collision_time`` [s], ``colliding_agent_id`` (-1: none). Plain numpy (picklable, for
            ``VecEnv.env_method``).
        """
        self._require_reset()
        cfg = self.config
        traj = validate_trajectories(trajectories, "trajectories", group=True)
        problem = self._problem()
        return self._score(self.scene, problem, simulate_candidates(problem.ego, traj, cfg.pdm))

    def current_problem(self) -> ScoringProblem:
        """The scorer's view of the current state: the log's agents and map with the (possibly simulated) ego state.
        For privileged planners and analysis; treat it as read-only (the scorer caches per problem object)."""
        self._require_reset()
        return self._problem()

    def flush_rewards(self) -> dict[str, np.ndarray]:
        """Lazy mode: score the decisions stored since the last flush (across resets), in order, and forget them.

        Call it regularly (e.g. after each rollout): decisions are kept until then.

        Returns:
            ``{name: (K,) array}`` as :meth:`score_group`, one entry per stored step (``K`` may be 0: empty dict),
            plus ``episode`` (int64, counting resets of this env from 0) and ``t`` (the decision frame). The
            per-step reward is ``reward`` (plus the terminal terms already returned by ``step``).
        """
        pending, self._pending = self._pending, []
        if not pending:
            return {}
        cfg = self.config
        rows = []
        for scene, frame, ego, traj, _ in pending:
            problem = self._log_problem(scene, frame)
            if problem.ego is not ego:
                problem = dataclasses.replace(problem, ego=ego)
            rows.append(self._score(scene, problem, simulate_candidates(ego, traj[None], cfg.pdm)))
        out = {name: np.concatenate([r[name] for r in rows]) for name in rows[0]}
        out["episode"] = np.array([p[4] for p in pending], dtype=np.int64)
        out["t"] = np.array([p[1] for p in pending], dtype=np.int64)
        return out

    def logged_action(self) -> np.ndarray:
        """The ego's logged future as an action from the current (possibly simulated) state: ``(8, 3)`` float32.

        The logged rear-axle poses at ``t + 0.5 s, ..., t + 4 s`` (frames past the log's end repeat its last pose),
        expressed in the current ego frame and clipped to the action bounds. Replaying it closed loop follows the log.
        """
        self._require_reset()
        scene, track = self._scene, self._track
        assert scene is not None and track is not None
        step = self._replan_frames(scene)
        frames = np.minimum(track.frame + step * np.arange(1, NUM_POSES + 1), scene.num_frames - 1)
        local = world_to_local(scene.ego_poses[frames], track.poses[track.frame])
        return np.clip(local, ACTION_LOW, ACTION_HIGH).astype(np.float32)

    def render(self) -> np.ndarray | None:
        """``rgb_array``: ``uint8 (256, 256, 3)`` RGB view of the current frame with the last action drawn."""
        if self.render_mode is None:
            return None
        self._require_reset()
        if self._view_renderer is None:
            self._view_renderer = BEVRenderer(BEVConfig(height=256, width=256, meters_per_pixel=0.3, mode="rgb"))
        track = self._track
        assert track is not None
        traj = None if self._last_action is None else self._last_action[None]
        return self._view_renderer.render(track.scene_view, track.frame, traj)

    # ------------------------------------------------------------------ internals
    def _require_reset(self) -> None:
        if self._track is None:
            raise RuntimeError("ReplayEnv: call reset() before using the environment")

    def _next_index(self) -> int:
        n = len(self.source)
        if self._order is None or self._cursor >= n:
            self._order = (self.np_random.permutation(n) if self.config.scene_order == "shuffle" else np.arange(n))
            self._cursor = 0
        index = int(self._order[self._cursor])
        self._cursor += 1
        return index

    def _replan_frames(self, scene: Scene) -> int:
        """Frames per re-planning step; ``ValueError`` if the scene's step does not fit the scorer's."""
        cfg = self.config
        if abs(scene.dt - cfg.pdm.sim_dt) > 1e-9:
            raise ValueError(
                f"scene {scene.scene_id}: dt={scene.dt} s differs from the simulation step PDMConfig.sim_dt="
                f"{cfg.pdm.sim_dt} s; resample the scene to {cfg.pdm.sim_dt} s"
            )
        k = cfg.replan_interval / scene.dt
        if abs(k - round(k)) > 1e-6:
            raise ValueError(f"EnvConfig.replan_interval={cfg.replan_interval} s is not a multiple of dt={scene.dt} s")
        return int(round(k))

    def _context(self, scene: Scene) -> _SceneContext:
        ctx = self._contexts.get(scene.scene_id)
        if ctx is not None:
            self._contexts.move_to_end(scene.scene_id)
            return ctx
        self._replan_frames(scene)
        t_max = scene.num_frames - 1 - int(round(self.config.log_end_margin / scene.dt))
        if t_max < 0:
            raise ValueError(
                f"scene {scene.scene_id}: {scene.num_frames} frames at dt={scene.dt} s are shorter than "
                f"EnvConfig.log_end_margin={self.config.log_end_margin} s"
            )
        drivable = None if scene.map is None else DrivableArea(map_geometry_from_scene_map(scene.map))
        ctx = _SceneContext(route=Route.from_scene(scene), drivable=drivable, t_max=t_max)
        self._contexts[scene.scene_id] = ctx
        if len(self._contexts) > self.config.scene_cache_size:
            self._contexts.popitem(last=False)
        return ctx

    def _start_frame(self, scene: Scene, ctx: _SceneContext) -> int:
        """Decision frame (open loop) or start frame (closed loop) of an episode on ``scene``."""
        cfg = self.config
        cf = scene.meta.collision_frame
        if cf is not None:
            lead = cfg.lead_time if self.mode == "open_loop" else cfg.closed_loop_lead_time
            return int(np.clip(cf - int(round(lead / scene.dt)), 0, ctx.t_max))
        t_min = min(int(round(cfg.history_time / scene.dt)), ctx.t_max)
        return int(self.np_random.integers(t_min, ctx.t_max + 1))

    def _log_problem(self, scene: Scene, t: int) -> ScoringProblem:
        """The log's scoring problem at frame ``t`` (cached: agents' window and map geometry)."""
        key = (scene.scene_id, t)
        problem = self._problems.get(key)
        if problem is None:
            problem = problem_from_scene(scene, t, self.config.pdm)
            self._problems[key] = problem
            if len(self._problems) > self.config.problem_cache_size:
                self._problems.popitem(last=False)
        return problem

    def _problem(self) -> ScoringProblem:
        """Scoring problem at the current frame with the (possibly simulated) ego state; one object per state, so
        the scorer's per-problem caches (object boxes, reference) serve every call at this state."""
        track = self._track
        assert track is not None and self._scene is not None
        if self._current is not None and self._current[0] == track.frame:
            return self._current[1]
        problem = self._log_problem(self._scene, track.frame)
        if problem.ego is not track.ego_state:
            problem = dataclasses.replace(problem, ego=track.ego_state)
        self._current = (track.frame, problem)
        return problem

    def _score(self, scene: Scene, problem: ScoringProblem, states: np.ndarray) -> dict[str, np.ndarray]:
        """Reward terms of simulated states ``(G, 41, 7)`` at ``problem`` of ``scene`` (EP normaliser per
        ``config.reference``)."""
        cfg = self.config
        ref_progress = None
        if problem.map is not None and cfg.reference is not None:
            base = self._log_problem(scene, problem.time_index) if cfg.reference == "log" else problem
            ref_progress = reference_for(base, cfg.pdm).masked_progress
        result = score_states(problem, states, cfg.pdm, reference_progress=ref_progress)
        return reward_terms(result, cfg.pdm, cfg.w_score, cfg.w_collision)

    def _observation(self) -> dict[str, Any]:
        track = self._track
        assert track is not None
        cfg = self.config
        f = track.frame
        ctx = self._context(track.scene)
        step = int(round(cfg.history_interval / track.scene.dt))
        history = pose_history(track.poses, f, cfg.history_poses, step)
        np.clip(history[:, :2], -HISTORY_RANGE, HISTORY_RANGE, out=history[:, :2])
        status = ego_status(track.body_velocities[f], track.body_accelerations[f], track.yaw_rates[f])
        self._route_s = ctx.route.project(track.poses[f, :2])
        self._command = route_command(ctx.route, self._route_s, cfg.command_lookahead,
                                      np.radians(cfg.command_threshold_deg))
        obs: dict[str, Any] = {}
        if self._renderer is not None:
            obs["bev"] = self._renderer.render(track.scene_view, f)
        obs["ego_state"] = np.clip(status, EGO_STATE_LOW, EGO_STATE_HIGH)
        obs["command"] = np.int64(self._command)
        obs["history"] = history
        return obs

    def _info(self, rewards: dict[str, float], collision: bool, colliding_agent: int) -> dict[str, Any]:
        """The step/reset info (call after :meth:`_observation`, whose command it reuses)."""
        scene, track = self._scene, self._track
        assert scene is not None and track is not None
        info: dict[str, Any] = {
            "rewards": rewards,
            "collision": collision,
            "colliding_agent": colliding_agent,
            "scene_id": scene.scene_id,
            "scenario_type": scene.meta.scenario_type,
            "source": scene.meta.source,
            "t": track.frame,
            "score_kind": "pdms" if scene.map is not None else "map_free",
        }
        if self.config.text_prompt:
            info["prompt"] = text_prompt(self._command, float(np.hypot(*track.body_velocities[track.frame])))
        return info

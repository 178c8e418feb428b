"""Gymnasium replay environment over logged scenes: open-loop decisions and closed-loop simulation, PDM rewards.

Spaces
------
Observation and action spaces are those of :mod:`envs.spaces` (shared with ``CarlaEnv`` and every policy); the
observation of a state is built by :func:`envs.observation.build_observation` (a pure function of the scene view,
the frame and the ego's kinematics, also used by the SFT data builder):

* **Observation** (``Dict``): ``"bev"`` (optional, ``EnvConfig.bev``), ``"ego_state"``, ``"command"``, ``"history"``.
  With ``EnvConfig.text_prompt`` the VLA's text prompt (:func:`envs.observation.text_prompt`) is added to
  ``info["prompt"]``; it is not part of the observation space (SB3 policies cannot take text).
* **Action**: ``Box (8, 3) float32``, a NAVSIM trajectory (8 ego-frame rear-axle poses at 0.5 s). An action of
  another shape, with NaN/inf, or outside the bounds raises ``ValueError`` naming the offending index and value;
  actions are never clipped silently. SB3 users should wrap the env in
  :class:`envs.wrappers.NormalizedTrajectoryAction` (actions in ``[-1, 1]``; see its docstring).

Modes
-----
* ``"open_loop"``: one step per episode at a decision frame: ``lead_time`` (2 s) before ``meta.collision_frame`` for
  accident scenes, else a seeded random frame in ``[history, t_max]``. The reward scores the action from the logged
  state; the episode terminates after the step.
* ``"closed_loop"``: starts ``closed_loop_lead_time`` (3 s) before the logged collision (accident scenes) or at a
  seeded random frame, from the logged state with the steering angle of the logged path there
  (``EnvConfig.start_steering="log"``, the default; ``"zero"``: the scorer's straight wheels, see the field), then
  re-plans every ``replan_interval`` (0.5 s = 5 frames). The ego tracks the action with
  the scorer's LQR tracker + kinematic bicycle (the first 5 states of :func:`rewards.tracking.simulate_candidates`,
  computed by :func:`envs.sim.simulation.simulate_prefix`, which also carries the steering angle across re-plans);
  other agents replay their logs (non-reactive). After every simulated frame the episode **terminates** on an
  **at-fault collision** (ego box overlapping an agent valid at that frame, classified by the scorer's NC rule,
  NAVSIM's ``get_collision_type``: :func:`rewards.pdm.contacts_at_fault`, via :func:`envs.sim.simulation.first_event`)
  or off-road (an ego corner outside every drivable polygon; skipped without a map). A contact that is **not** the
  ego's fault (the ego stopped, the agent behind it, or a side contact by the agent while the ego keeps to one lane
  on the road) neither ends the episode nor costs anything: it is reported in ``info["contacts"]`` (agent ids, per
  step) and ``driving_metrics["contacts_not_at_fault"]``, and that agent is **ignored for the rest of the episode**
  (as NAVSIM ignores an object after a not-at-fault contact for the rest of a candidate: the non-reactive replay
  leaves the boxes overlapping for a while, and one event is one contact). The 4 s plan the scorer rates each step
  is unchanged (its ``collision`` term and NC see every agent). After the step the episode terminates at the
  route's end (within ``route_end_margin``)
  and is **truncated** when less than ``episode_end_margin`` (one re-planning interval) of log remains, so episodes
  run to the log's end and reach logged collisions late in short logs (DeepAccident scenarios end a few seconds
  after the crash). Replaying the log (:meth:`ReplayEnv.logged_action` every step) collides with the logged agent
  within one re-planning interval (+-5 frames) of ``meta.collision_frame`` (tested over the bank's accident types
  and on short DeepAccident-layout logs).

Decisions near the end of the log
---------------------------------
A decision less than the 4 s horizon before the log's end is scored with the horizon the log allows:
``info["logged_horizon"]`` [s] says how much logged future the decision had (``< 4``: shortened). The scorer still
simulates the ego over 4 s; what adapts is what it compares against: NC and TTC see the other agents only while
they are logged (absent afterwards: never an invented collision, possibly a missed one), the EP reference (PDM-
Closed-like) plans against the same truncated agents, and DAC, DDC and comfort depend on the ego and the map only
(unchanged). Random start / decision frames stay ``log_end_margin`` (4 s) before the end, so only episodes that run
on, and open-loop decisions pinned to a collision, see shortened horizons.

Reward (:mod:`envs.sim.reward`)
---------------------------
Open loop (and ``score_group``, GRPO's group score): ``w_score * score + w_collision * collision``
(``EnvConfig.reward``, :class:`envs.sim.reward.RewardConfig`) for the action scored by the PDM scorer
(:mod:`rewards.pdm`) from the current state (non-reactive, as NAVSIM), where ``score`` is SP-PDMS (or PDMS), or the
map-free score ``NC (5 TTC + 2 C) / 7`` when the scene has no map. Closed loop, by default
(``RewardConfig.kind="progress"``), the step reward is **route progress first**: the route completion gained this
step (the driving score's RC after the step minus RC before it, :meth:`envs.sim.metrics.EpisodeMetrics.route_completion`:
capped at 1, progress past the reference earns nothing, so the progress terms sum to the episode's RC), scaled down by the
action's soft infractions (TTC, comfort, driving direction) and by the driven step's minimum-speed infraction (the
ego's mean speed over the step as a fraction of the surrounding traffic's, leaderboard 2.0 / CaRL,
``RewardConfig.min_speed_penalty``; the traffic's speed per frame is computed once per scene,
:func:`envs.sim.reward.traffic_speeds`), and an at-fault collision or leaving the road ends the
episode with a penalty that takes back the episode's progress rewards and costs ``w_terminal_collision`` more
(:func:`envs.sim.reward.progress_reward`); with ``kind="score"`` it is the open-loop reward plus
``-w_terminal_collision`` on the step in which the simulated ego collides at fault. Both kinds report
``route_progress``, ``speed_ratio`` (NaN without traffic) and ``soft_factor``. ``info["rewards"]`` holds every term. A closed-loop step with the
progress-first reward does not read the terms that depend on the EP references (``ep``, ``pdms``, ``sp_ep``,
``sp_pdms``, ``score``), so they are computed when ``info["rewards"]`` is first read
(:class:`envs.sim.terms.DeferredTerms`, a dict; the same values, bit for bit, as planning them in ``step``): a
consumer that never reads them never pays for planning the references (most of a step that leaves the log); one
that reads them (``agents.rl.metrics.DrivingMetrics``, ``agents.evaluation``) pays at that moment, and GRPO's
``score_group`` at the same state has planned them already (cached per problem). An unread info keeps its step's
scoring inputs alive until it is read or dropped; an info sent to another process (``SubprocVecEnv``) is pickled as a
plain dict, so the worker computes them before sending (a Ray worker keeps them until the driver reads them:
:class:`envs.vec.RayVecEnv`'s ``deferred_terms``). With ``reward_mode="lazy"`` the
per-step scorer call is skipped (reward = terminal terms only) and :meth:`ReplayEnv.flush_rewards` scores the
stored decisions later (e.g. at the end of an episode, off the stepping loop).

The closed-loop ego state lives in an :class:`~envs.sim.simulation.EgoTrack` (arrays updated in place); the renderer sees
it through one shallow scene view per episode, and the scorer gets ``ScoringProblem``s built from the log's agents and
map (cached per frame) with the simulated :class:`~rewards.types.EgoState` swapped in. No scene is copied per step.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import gymnasium as gym
import numpy as np

from envs.observation import EgoKinematics, ObservationConfig, Route, build_observation, text_prompt
from envs.prompt_state import check_prompt_options
from envs.render import BEVConfig, BEVRenderer
from envs.configuration import coerce_config
from envs.sim.metrics import DrivingMetricsConfig, EpisodeMetrics, reference_progress
from envs.sim.reward import (EP_TERMS, PROGRESS_TERMS, REWARD_TERMS, RewardConfig, closed_loop_reward, min_speed_ratio,
                              reward_terms, traffic_speeds)
from envs.sim.terms import DeferredTerms
from envs.scenes.scene import Scene
from envs.sim.scoring import (
    BEST_RESPONSE_FRACTIONS,
    log_as_action,
    logged_steering_angle,
    map_geometry_from_scene_map,
    present_forecast,
    problem_from_scene,
    slowed,
)
from envs.sim.simulation import DrivableArea, EgoTrack, first_event, simulate_prefix, simulate_with_steering
from envs.scenes.sources import Origin, SceneSource, make_source
from envs.spaces import NUM_POSES, action_space, observation_space, validate_trajectories
from rewards.config import PDMConfig
from rewards.pdm import PDMResult, score_states
from rewards.geometry import rear_axle_to_center
from rewards.scorer import reference_for, safe_progress_for
from rewards.tracking import simulate_candidates
from rewards.types import EgoState, ScoringProblem

Forecast = Callable[[ScoringProblem], ScoringProblem]
"""Replaces the other agents' futures of a scoring problem (:meth:`ReplayEnv.score_group`'s ``forecast``)."""

MODES = ("open_loop", "closed_loop")
REWARD_MODES = ("eager", "lazy")
REFERENCES = ("auto", "log", None)
START_STEERING = ("zero", "log")
"""Closed loop: the tire steering angle an episode starts from (:attr:`EnvConfig.start_steering`)."""
STEP_TERMS = {"open_loop": REWARD_TERMS, "closed_loop": REWARD_TERMS + ("terminal_collision",) + PROGRESS_TERMS}
"""Keys of ``info["rewards"]`` per mode: the same keys in every info of the mode, ``reset`` included; a term that
was not computed is NaN (every term after ``reset``, which scores nothing; the scorer's terms in lazy mode until
:meth:`ReplayEnv.flush_rewards`)."""
_PERMUTE_MAX = 1 << 20
"""Sources up to this size are shuffled with a full permutation per pass; larger ones with a seeded affine
bijection ``i -> (a i + b) mod n`` (no index list is materialised, so a bank of 10**9 scenes resets at once)."""


@dataclass(frozen=True)
class EnvConfig:
    """Configuration of :class:`ReplayEnv`; every field is documented, units in brackets."""

    bev: BEVConfig | None = field(default_factory=lambda: BEVConfig(antialias=False))
    """BEV observation raster (size, resolution, RGB or semantic channels); None drops ``"bev"`` from the
    observation (state-only policies; the BEV render is the largest cost of a closed-loop step). Default: 128 px RGB
    without anti-aliasing (a policy needs no smoothed edges; about 1.3x faster to render)."""
    pdm: PDMConfig = field(default_factory=PDMConfig)
    """Scorer configuration (NAVSIM v1.1 defaults); its ``sim_dt`` must equal the scenes' ``dt``."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    """The reward (:class:`envs.sim.reward.RewardConfig`, a mapping of its fields is accepted): the closed-loop kind
    (``progress`` by default, or ``score``), the score (``sp_pdms`` by default, or ``pdms``), ``w_score``,
    ``w_collision``, ``w_terminal_collision`` and the soft-infraction penalties."""
    driving_metrics: DrivingMetricsConfig = field(default_factory=DrivingMetricsConfig)
    """Closed loop: coefficients of the driving metrics reported at episode end (``info["driving_metrics"]``)."""
    reference: str | None = "log"
    """EP normalisers (see :data:`REFERENCES`; the PDM-Closed-like reference of PDMS and the safe-progress reference
    of SP-PDMS alike): ``"log"`` plans them from the *logged* ego state at the decision frame while the ego is within
    ``reference_log_tolerance`` of it (cached per (scene, frame): exact in open loop) and from the current simulated
    state once it has left the log (a reference planned from where the log is, e.g. after the log's own crash,
    would say nothing about what the ego can achieve); ``"auto"`` always plans from the current state (exact; about
    9 ms of planning per new state, cached per state so ``score_group`` after ``step`` reuses it). None normalises
    among the scored trajectories only (for a single action EP is then 1 unless it progresses < 5 m with
    NC x DAC = 0)."""
    reference_log_tolerance: float = 1.0
    """``reference="log"``: the ego is "on the log" while its position is within this of the logged rear axle [m]
    and its speed within this of the logged speed [m/s]."""
    lead_time: float = 2.0
    """Open loop: decision time before ``meta.collision_frame`` in accident scenes [s]."""
    closed_loop_lead_time: float = 3.0
    """Closed loop: start time before ``meta.collision_frame`` in accident scenes [s]."""
    history_time: float = 2.0
    """Earliest random decision / start time [s] (so the history is logged, not padded), when the log allows."""
    replan_interval: float = 0.5
    """Closed loop: time between re-planning steps [s] (a multiple of the scene step)."""
    start_steering: str = "log"
    """Closed loop: the tire steering angle the ego starts an episode with (:data:`START_STEERING`). ``"log"``
    (default): the steering of the kinematic bicycle that follows the logged path at the start frame
    (:func:`envs.sim.scoring.logged_steering_angle`), so a start mid-turn keeps turning. ``"zero"`` (the behaviour
    before): the scorer's start state, straight wheels (NAVSIM starts from a logged steering angle, which our sources
    lack); an episode that starts inside a junction turn then straightens and drifts to the outside of the turn (on
    48 normal scenes of bank seed 5000, 5 log-replay episodes, 2 safe-oracle and 3 PDM-Closed-like ones left the road
    that way: README, "Closed-loop start steering"; what remains are turn exits, where the tracker overshoots the
    bank's line-arc-line connectors whatever the start). Only the closed loop's start changes: open-loop decisions and
    the scorer's state of a logged frame (:func:`envs.sim.scoring.problem_from_scene`, and the EP references planned
    from it) keep NAVSIM's 0."""
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
    privileged_hazard: bool = False
    """Add the PRIVILEGED ``"hazard"`` observation ``(8,)``: the scenario's designated hazard agent's relative motion
    and closest approach (:func:`envs.prompt_state.hazard_state`; a diagnostic / teacher input, default off)."""
    log_end_margin: float = 4.0
    """Latest random start / decision frame: ``t_max = T - 1 - log_end_margin / dt`` [s] (the default, the 4 s
    scoring horizon, keeps such decisions inside the logged agents' window)."""
    episode_end_margin: float = 0.5
    """Closed loop: the episode is truncated once less than this much log remains after the current frame [s]
    (>= ``replan_interval``; the default, one re-planning interval, lets episodes run to the log's end; decisions in
    the last 4 s are scored with a shortened logged horizon, see the module docstring)."""
    route_end_margin: float = 2.0
    """Closed loop: the episode terminates when the ego is within this distance of the route's end [m]."""
    reward_mode: str = "eager"
    """``"eager"``: score every action in ``step``; ``"lazy"``: defer to :meth:`ReplayEnv.flush_rewards` (with
    ``reward.kind="progress"`` a lazy step's progress term is not scaled by the plan's soft infractions, which need
    the score; the minimum-speed infraction, which needs none, still applies)."""
    text_prompt: bool = False
    """Add ``info["prompt"]``, a text instruction with command and speed (for VLA policies)."""
    scene_order: str = "shuffle"
    """``"shuffle"``: a seeded permutation per pass over the source; ``"sequential"``: index order."""
    scene_cache_size: int = 16
    """Loaded scenes (and their per-scene precomputations) kept in memory."""
    problem_cache_size: int = 2048
    """Scoring problems of the log per (scene, frame) kept in memory, with the scorer's per-problem caches (object
    boxes, the ``"log"`` reference); size it to the decision frames of the scenes in use (~7 per closed-loop
    episode)."""

    def __post_init__(self) -> None:
        if not isinstance(self.reward, RewardConfig):
            object.__setattr__(self, "reward", RewardConfig.coerce(self.reward))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in ("float", float) and (isinstance(value, bool) or not isinstance(value, (int, float, np.number))
                                               or not np.isfinite(value)):
                raise ValueError(f"EnvConfig.{f.name}: expected a finite number, got {value!r}")
        for name in ("history_poses", "scene_cache_size", "problem_cache_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"EnvConfig.{name}: expected an int >= 1, got {value!r}")
        if self.bev is not None and not isinstance(self.bev, BEVConfig):
            raise ValueError(f"EnvConfig.bev: expected a BEVConfig or None, got {type(self.bev).__name__}")
        if not isinstance(self.pdm, PDMConfig):
            raise ValueError(f"EnvConfig.pdm: expected a PDMConfig, got {type(self.pdm).__name__}")
        if self.reference not in REFERENCES:
            raise ValueError(f"EnvConfig.reference: expected one of {REFERENCES}, got {self.reference!r}")
        if self.reward_mode not in REWARD_MODES:
            raise ValueError(f"EnvConfig.reward_mode: expected one of {REWARD_MODES}, got {self.reward_mode!r}")
        if self.start_steering not in START_STEERING:
            raise ValueError(f"EnvConfig.start_steering: expected one of {START_STEERING}, got {self.start_steering!r}")
        if self.scene_order not in ("shuffle", "sequential"):
            raise ValueError(f"EnvConfig.scene_order: expected 'shuffle' or 'sequential', got {self.scene_order!r}")
        for name in ("lead_time", "closed_loop_lead_time", "history_time", "route_end_margin"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"EnvConfig.{name}: expected >= 0, got {getattr(self, name)!r}")
        for name in ("log_end_margin", "episode_end_margin"):
            if getattr(self, name) < self.replan_interval:
                raise ValueError(f"EnvConfig.{name}: expected >= replan_interval ({self.replan_interval} s), "
                                 f"got {getattr(self, name)!r}")
        for name in ("replan_interval", "history_interval", "command_lookahead"):
            if not getattr(self, name) > 0:
                raise ValueError(f"EnvConfig.{name}: expected > 0, got {getattr(self, name)!r}")
        if self.pdm.num_poses != NUM_POSES:
            raise ValueError(
                f"EnvConfig.pdm.num_poses: the action space has {NUM_POSES} poses, got {self.pdm.num_poses}"
            )
        check_prompt_options("EnvConfig", self.prompt_state, self.prompt_agents)
        if not isinstance(self.privileged_hazard, (bool, np.bool_)):
            raise ValueError(f"EnvConfig.privileged_hazard: expected a bool, got {self.privileged_hazard!r}")

    @property
    def observation(self) -> ObservationConfig:
        """The observation part of this configuration (:func:`envs.observation.build_observation`)."""
        return ObservationConfig(bev=self.bev, history_poses=self.history_poses,
                                 history_interval=self.history_interval, command_lookahead=self.command_lookahead,
                                 command_threshold_deg=self.command_threshold_deg,
                                 prompt_state=self.prompt_state, prompt_agents=self.prompt_agents,
                                 privileged_hazard=self.privileged_hazard)

    @classmethod
    def coerce(cls, config: "EnvConfig | Mapping[str, Any] | None") -> "EnvConfig":
        """``config`` as an :class:`EnvConfig`: None -> defaults, a mapping -> ``EnvConfig(**mapping)`` (e.g.
        ``gymnasium.make(id, config={"bev": None})``); ``ValueError`` naming unknown keys or other types
        (:func:`envs.configuration.coerce_config`)."""
        return coerce_config(cls, config)



@dataclass
class _SceneContext:
    """Per-scene precomputations, cached with the scene."""

    route: Route
    drivable: DrivableArea | None
    """Drivable area for the off-road checks, None without a map."""
    t_max: int
    """Latest random decision / start frame (``log_end_margin`` before the log's end)."""
    t_end: int
    """Closed loop: the last frame from which a step may start (``episode_end_margin`` before the log's end)."""
    log_kinematics: EgoKinematics
    """The logged ego's kinematics (:meth:`EgoKinematics.from_scene`), copied into each episode's
    :class:`~envs.sim.simulation.EgoTrack` (read-only here)."""
    traffic_speed: np.ndarray
    """``(T,)`` the surrounding traffic's mean speed per frame [m/s], NaN without traffic
    (:func:`envs.sim.reward.traffic_speeds`; the minimum-speed infraction of the progress reward)."""


def _ep_terms(result: PDMResult, base: ScoringProblem, pdm: PDMConfig, reward: RewardConfig) -> dict[str, float]:
    """The :data:`envs.sim.reward.EP_TERMS` of a one-candidate ``result`` (scored without a reference) with EP
    normalised against the references planned from ``base`` (as :meth:`ReplayEnv._score`: the same aggregation,
    :meth:`rewards.pdm.PDMResult.renormalized`, so the values are bit-identical)."""
    ref_progress = reference_for(base, pdm).masked_progress
    safe = safe_progress_for(base, pdm).progress
    scored = reward_terms(result.renormalized(ref_progress, pdm), pdm, reward, safe)
    return {name: float(scored[name][0]) for name in EP_TERMS}


def _nan_terms(mode: str) -> dict[str, float]:
    return {name: float("nan") for name in STEP_TERMS[mode]}


def _check_int(name: str, value: Any) -> int:
    """``value`` as an int if it is an integer (Python or numpy, not bool); ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"reset options: {name} must be an integer, got {value!r} ({type(value).__name__})")
    return int(value)


class ReplayEnv(gym.Env):
    """Replay environment over a source of scenes (see the module docstring for spaces, modes and reward).

    Args:
        source: ``"bank"`` (default), ``"deepaccident"`` (with ``root``), a registered source name, a folder path, a
            sequence of scenes, or any indexable collection of scenes; see :func:`envs.scenes.sources.make_source`.
        mode: ``"open_loop"`` or ``"closed_loop"``.
        config: :class:`EnvConfig` (or a mapping of its fields).
        num_scenes, seed, scenario_types: for ``source="bank"`` (``seed`` fixes the bank's scenes; episode randomness
            comes from ``reset(seed=...)``).
        root, split: for DeepAccident (``split``: ``"train"`` by default, None for every scenario folder).
        render_mode: None or ``"rgb_array"`` (a 256 px RGB view with the last action drawn). ``"human"`` is refused
            with a clear error (``gymnasium.make(id, render_mode="human")`` wraps the ``rgb_array`` env in
            gymnasium's ``HumanRendering``, which needs pygame and a display).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 2}
    _defer_ep_terms = True
    """Closed loop, progress-first reward: plan the EP references when ``info["rewards"]`` is first read
    (:class:`envs.sim.terms.DeferredTerms`); False plans them in ``step`` (the same values; the tests compare)."""
    # Only the modes that work are listed (gymnasium's check_env makes the env once per listed mode).
    # ``gymnasium.make(id, render_mode="human")`` wraps the rgb_array env in gymnasium's HumanRendering (a pygame
    # window, where pygame and a display exist); constructing ReplayEnv(render_mode="human") directly is refused.

    def __init__(
        self,
        source: Any = "bank",
        mode: str = "open_loop",
        config: EnvConfig | Mapping[str, Any] | None = None,
        num_scenes: int = 16,
        seed: int = 0,
        scenario_types: Any = None,
        root: Any = None,
        split: str | None = "train",
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
        if render_mode == "human":
            raise ValueError("render_mode='human' is not supported by ReplayEnv itself: use render_mode='rgb_array' "
                             "and save or show env.render() frames, or gymnasium.make(id, render_mode='human'), which "
                             "wraps the rgb_array env in gymnasium's HumanRendering (needs pygame and a display)")
        if render_mode is not None and render_mode != "rgb_array":
            raise ValueError(f"render_mode: expected None or 'rgb_array', got {render_mode!r}")
        self.mode = mode
        self.config = EnvConfig.coerce(config)
        self.render_mode = render_mode
        self.source: SceneSource = make_source(
            source, num_scenes=num_scenes, seed=seed, scenario_types=scenario_types, root=root, split=split,
            cache_size=self.config.scene_cache_size,
        )
        self._obs_config = self.config.observation
        self._renderer = None if self.config.bev is None else BEVRenderer(self.config.bev)
        self._view_renderer: BEVRenderer | None = None
        self.observation_space = observation_space(self._obs_config)
        self.action_space = action_space()
        self._contexts: OrderedDict[str, _SceneContext] = OrderedDict()
        self._problems: OrderedDict[tuple[str, int], ScoringProblem] = OrderedDict()
        self._order: tuple[int, int] | np.ndarray | None = None
        self._cursor = 0
        self._index = -1
        self._scene: Scene | None = None
        self._track: EgoTrack | None = None
        self._done = False
        # Lazy mode: (scene, frame, ego state, action, episode) per step, until flush_rewards.
        self._pending: list[tuple[Scene, int, EgoState, np.ndarray, int]] = []
        self._episode = -1
        self._last_action: np.ndarray | None = None
        self._current: tuple[int, ScoringProblem] | None = None
        self._metrics: EpisodeMetrics | None = None
        self._ignored: np.ndarray | None = None
        self._start = 0
        self._rc_references: OrderedDict[tuple[str, int], tuple[float, str]] = OrderedDict()

    # ------------------------------------------------------------------ public API
    @property
    def scene(self) -> Scene:
        """The current episode's (logged) scene."""
        self._require_reset()
        return self._scene  # type: ignore[return-value]

    @property
    def scene_index(self) -> int:
        """Index of the current episode's scene in :attr:`source`."""
        self._require_reset()
        return self._index

    @property
    def origin(self) -> Origin:
        """How to re-create the current scene (:meth:`envs.scenes.sources.SceneSource.origin`)."""
        self._require_reset()
        return self.source.origin(self._index)

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

    @property
    def scene_view(self) -> Scene:
        """The current scene as the policy sees it: the log with the ego replaced by this episode's (simulated)
        ego up to :attr:`t` (frames after :attr:`t` are stale; renderers read frames ``<= t`` only)."""
        self._require_reset()
        return self._track.scene_view  # type: ignore[union-attr]

    def reset(self, *, seed: int | None = None, options: Mapping[str, Any] | None = None):
        """Start an episode on the next scene of the seeded order.

        Args:
            seed: reseeds the episode generator (scene order and random decision frames).
            options: ``{"scene_id": str}`` or ``{"scene_index": int}`` picks the scene; ``{"t": int}`` sets the
                decision / start frame (``0 <= t <= t_max``). Values are not converted: ``2.7`` or ``"3"`` are
                errors.
        """
        super().reset(seed=seed)
        if seed is not None:
            self._order, self._cursor = None, 0
        if options is None:
            options = {}
        if not isinstance(options, Mapping):
            raise ValueError(f"reset options: expected a dict (keys scene_id, scene_index, t) or None, got "
                             f"{options!r} ({type(options).__name__})")
        unknown = set(options) - {"scene_id", "scene_index", "t"}
        if unknown:
            raise ValueError(f"reset options: unknown keys {sorted(unknown)}; known: scene_id, scene_index, t")
        if "scene_id" in options:
            if not isinstance(options["scene_id"], str):
                raise ValueError(f"reset options: scene_id must be a string, got {options['scene_id']!r}")
            index = self.source.index_of(options["scene_id"])
        elif "scene_index" in options:
            index = _check_int("scene_index", options["scene_index"])
            if not 0 <= index < len(self.source):
                raise ValueError(f"reset options: scene_index {index} outside [0, {len(self.source)})")
        else:
            index = self._next_index()
        scene = self.source[index]
        ctx = self._context(scene)
        if "t" in options:
            t0 = _check_int("t", options["t"])
            if not 0 <= t0 <= ctx.t_max:
                raise ValueError(f"reset options: t={t0} outside [0, {ctx.t_max}] for scene {scene.scene_id}")
        else:
            t0 = self._start_frame(scene, ctx)
        self._index = index
        self._start = t0
        self._scene = scene
        self._track = EgoTrack(scene, t0, self._start_state(scene, t0), ctx.log_kinematics)
        self._metrics = None if self.mode == "open_loop" else EpisodeMetrics(
            scene, ctx.route, self._track.poses[t0], None if scene.map is None else self._log_problem(scene, t0).map,
            self.config.driving_metrics)
        self._current = None
        self._ignored = np.zeros(scene.num_agents, dtype=bool)  # agents touched without fault (closed loop)
        self._done = False
        self._earned = 0.0  # progress rewards of the episode so far (RewardConfig.kind="progress")
        self._last_completion = 0.0  # the episode's route completion RC at the last step (before the first: 0)
        self._episode += 1
        self._last_action = None
        obs = self._observation()
        return obs, self._info(obs, _nan_terms(self.mode), False, -1)

    def step(self, action: Any):
        """Apply a trajectory action; see the module docstring for what happens per mode.

        ``info["collision"]`` / ``info["colliding_agent"]``: in open loop, whether the scorer finds a collision of the
        action within its 4 s horizon (and the first agent hit, -1: none); in closed loop, whether the simulated ego
        collided **at fault** during this step (the episode's end); ``info["contacts"]``: closed loop, the ids of
        agents touched without fault during this step (empty otherwise). Closed loop adds
        ``info["termination_reason"]`` (``"collision"``, ``"offroad"``, ``"route_end"``, ``"time_limit"`` or ``""``).
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
        terms = _nan_terms(self.mode)
        states = steering = deferred = None
        if cfg.reward_mode == "eager":
            problem = self._problem()
            # One simulation serves the score (41 states) and, in closed loop, the driven prefix (first k states).
            states, steering = simulate_with_steering(problem.ego, traj[None], cfg.pdm)
            base = self._reference_base(scene, problem)
            if (self._defer_ep_terms and base is not None and self.mode == "closed_loop"
                    and cfg.reward.kind == "progress" and len(base.map.route) >= 2):
                # The progress-first reward reads no EP term: the references are planned when info["rewards"] is
                # first read (envs.sim.terms.DeferredTerms; the NaN EP terms and reward here are replaced).
                result = score_states(problem, states, cfg.pdm)
                scored = reward_terms(result, cfg.pdm, cfg.reward, ep_terms=False)
                deferred = functools.partial(_ep_terms, result, base, cfg.pdm, cfg.reward)
            else:
                scored = self._score_from(problem, states, base)  # the base chosen above, once
            terms.update({name: float(scored[name][0]) for name in REWARD_TERMS})
            collision, agent = bool(scored["is_collision"][0]), int(scored["colliding_agent_id"][0])
        else:  # the scoring problem is built at flush time
            self._pending.append((scene, track.frame, track.ego_state, traj, self._episode))
            terms["reward"], collision, agent = 0.0, False, -1

        if self.mode == "open_loop":
            self._done = True
            obs = self._observation()
            return obs, terms["reward"], True, False, self._info(obs, terms, collision, agent)

        # ---- closed loop: drive the first re-planning interval of the action, check every simulated frame.
        ctx = self._context(scene)
        if states is None:
            prefix, prefix_steering = simulate_prefix(track.ego_state, traj, cfg.pdm, k)
        else:
            prefix, prefix_steering = states[0, 1 : k + 1], steering[0, 1 : k + 1]
        assert self._ignored is not None
        driven = first_event(scene, prefix, track.frame + 1 + np.arange(k), ctx.drivable,
                             self._log_problem(scene, track.frame), cfg.pdm, self._ignored)
        n = driven.driven  # frames actually driven (up to the first at-fault collision or off-road frame)
        speeds = np.hypot(prefix[:n, 3], prefix[:n, 4])  # (n,) [m/s]
        speed_ratio = min_speed_ratio(speeds, ctx.traffic_speed[track.frame + 1 : track.frame + 1 + n])
        track.advance(prefix[:n], float(prefix_steering[n - 1]))
        collision, agent, offroad = driven.collision_agent >= 0, driven.collision_agent, driven.offroad
        assert self._metrics is not None
        self._metrics.add(rear_axle_to_center(prefix[:n, :3], scene.ego_params)[:, :2], prefix[:n, :2], speeds,
                          driven.offroad_at, agent, driven.contacts)
        terms["terminal_collision"] = -1.0 if collision else 0.0
        completion = self._metrics.route_completion(self._reference_progress(scene, ctx)[0])
        gained, self._last_completion = completion - self._last_completion, completion
        self._earned = closed_loop_reward(terms, gained, collision or offroad, self._earned, cfg.reward, speed_ratio)
        obs = self._observation()
        route_end = ctx.route.project(track.poses[track.frame, :2]) >= ctx.route.length - cfg.route_end_margin
        terminated = collision or offroad or route_end
        truncated = not terminated and track.frame > ctx.t_end
        self._done = terminated or truncated
        info = self._info(obs, terms if deferred is None else DeferredTerms(terms, EP_TERMS, deferred), collision,
                          agent, list(driven.contacts))
        info["termination_reason"] = ("collision" if collision else "offroad" if offroad else
                                      "route_end" if route_end else "time_limit" if truncated else "")
        if self._done:
            info["driving_metrics"] = self._metrics.finish(*self._reference_progress(scene, ctx)).to_dict()
        return obs, terms["reward"], terminated, truncated, info

    def score_group(self, trajectories: Any, forecast: Forecast | None = None) -> dict[str, np.ndarray]:
        """Score candidate trajectories ``(G, 8, 3)`` from the current state, without changing the env's state.

        The candidates start from the same ego state (steering included) as the next ``step``'s action, so a group
        member scores exactly as it would when stepped. ``forecast`` (analysis only; None: the logged futures, as
        ``step`` scores): a function of a :class:`~rewards.types.ScoringProblem` returning it with the other agents'
        futures replaced (e.g. :func:`rewards.reference_planner.forecast_problem`), applied to the scored problem
        and to the problem the EP references are planned from.

        Returns:
            ``{name: (G,) array}``: every reward term (see :func:`envs.sim.reward.reward_terms`), the aggregated
            ``score`` and ``reward``, and the collision flags ``is_collision``, ``at_fault_collision``,
            ``collision_time`` [s], ``colliding_agent_id`` (-1: none). Plain numpy (picklable, for
            ``VecEnv.env_method``).
        """
        self._require_reset()
        cfg = self.config
        traj = validate_trajectories(trajectories, "trajectories", group=True)
        problem = self._problem()
        states = simulate_candidates(problem.ego, traj, cfg.pdm)
        if forecast is None:
            return self._score(self.scene, problem, states)
        base = self._reference_base(self.scene, problem)
        scored = forecast(problem)
        return self._score_from(scored, states, None if base is None else scored if base is problem else forecast(base))

    def current_problem(self) -> ScoringProblem:
        """The scorer's view of the current state: the log's agents and map with the (possibly simulated) ego state.
        For privileged planners and analysis (its arrays are read-only; the scorer caches per problem object)."""
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

    def prepare_episode(self) -> None:
        """Compute now what the episode's first closed-loop ``step`` would compute before anything else: the driving
        metrics' reference progress over the episode's window (cached per (scene, start frame)). Nothing the env
        returns changes; a vector env's worker calls it in the time it would wait (:class:`envs.vec.RayVecEnv`).
        Open loop, before ``reset`` or after the episode's end: nothing to do."""
        if self.mode != "closed_loop" or self._scene is None or self._done:
            return
        self._reference_progress(self._scene, self._context(self._scene))

    def logged_action(self) -> np.ndarray:
        """The ego's logged future as an action from the current (possibly simulated) state: ``(8, 3)`` float32
        (:func:`envs.sim.scoring.log_as_action`). Replaying it closed loop follows the log."""
        self._require_reset()
        track = self._track
        assert track is not None
        return log_as_action(self.scene, track.frame, track.poses[track.frame], self.config.pdm)

    def best_response(self, fractions: Sequence[float] = BEST_RESPONSE_FRACTIONS,
                      forecast: str | Forecast | Sequence[Forecast] | None = None,
                      path: Any = None) -> dict[str, Any]:
        """Privileged: the group score's best response over "the logged path, slower" from the current state.

        The ego's logged future from the current pose (:meth:`logged_action`; or ``path``, any ego-frame trajectory
        ``(8, 3)`` [m, m, rad], e.g. a policy's own) driven at each of ``fractions`` (in [0, 1]) of its speed (:func:`envs.sim.scoring.slowed`), ``(F, 8, 3)`` [m, m, rad], scored together by
        :meth:`score_group` (GRPO's group score, the other agents' logged futures, or ``forecast``'s; with a list of
        forecasts each candidate keeps its scores under the one that rewards it least, the worst case; a name of
        :data:`envs.sim.scoring.PRESENT_FUTURES`, e.g. ``"cv"``, is built for the current scene by
        :func:`~envs.sim.scoring.present_forecast` and can be passed through ``VecEnv.env_method``); the highest
        ``reward`` wins (ties: the first). The env's state is unchanged.

        Returns:
            ``{"trajectory": (8, 3) float32, "fraction": float, "reward": float, "is_collision": bool,
            "at_fault_collision": bool, "ttc": float}`` of the winner (picklable, for ``VecEnv.env_method``).
        """
        fractions = [float(f) for f in fractions]
        if not fractions or any(not 0.0 <= f <= 1.0 for f in fractions):
            raise ValueError(f"ReplayEnv.best_response: fractions must be a non-empty list in [0, 1], got {fractions}")
        if isinstance(forecast, str):
            forecast = present_forecast(forecast, self.scene, self.config.pdm)
        base = self.logged_action() if path is None else np.asarray(path, dtype=np.float64)
        candidates = np.stack([slowed(base, f, self.config.pdm.pose_interval) for f in fractions])
        if forecast is None or callable(forecast):
            scored = self.score_group(candidates, forecast)
        else:
            if not forecast:
                raise ValueError("ReplayEnv.best_response: an empty list of forecasts")
            each = [self.score_group(candidates, f) for f in forecast]
            worst = np.argmin(np.stack([np.nan_to_num(np.asarray(e["reward"], dtype=np.float64), nan=-np.inf)
                                        for e in each]), axis=0)  # (F,) the forecast each candidate fares worst in
            scored = {k: np.array([each[w][k][i] for i, w in enumerate(worst)]) for k in each[0]}
        j = int(np.argmax(np.nan_to_num(np.asarray(scored["reward"], dtype=np.float64), nan=-np.inf)))
        return {"trajectory": candidates[j].astype(np.float32), "fraction": fractions[j],
                "reward": float(scored["reward"][j]), "is_collision": bool(scored["is_collision"][j]),
                "at_fault_collision": bool(scored["at_fault_collision"][j]), "ttc": float(scored["ttc"][j])}

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
            self._cursor = 0
            if self.config.scene_order == "sequential":
                self._order = (1, 0)
            elif n <= _PERMUTE_MAX:
                self._order = self.np_random.permutation(n)
            else:  # seeded affine bijection of [0, n): a multiplier coprime with n
                while True:
                    a = int(self.np_random.integers(1, n))
                    if np.gcd(a, n) == 1:
                        break
                self._order = (a, int(self.np_random.integers(0, n)))
        i = self._cursor
        self._cursor += 1
        if isinstance(self._order, tuple):
            a, b = self._order
            return (a * i + b) % n
        return int(self._order[i])

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
        k = self._replan_frames(scene)
        if scene.num_frames - 1 < k:
            raise ValueError(f"scene {scene.scene_id}: {scene.num_frames} frames at dt={scene.dt} s are shorter than "
                             f"one re-planning interval ({self.config.replan_interval} s)")
        # Logs shorter than the start margin (DeepAccident: a few seconds around the crash) start at frame 0.
        t_max = max(0, scene.num_frames - 1 - int(round(self.config.log_end_margin / scene.dt)))
        drivable = None if scene.map is None else DrivableArea(map_geometry_from_scene_map(scene.map))
        t_end = max(0, scene.num_frames - 1 - int(round(self.config.episode_end_margin / scene.dt)))
        ctx = _SceneContext(route=Route.from_scene(scene), drivable=drivable, t_max=min(t_max, t_end), t_end=t_end,
                            log_kinematics=EgoKinematics.from_scene(scene), traffic_speed=traffic_speeds(scene))
        self._contexts[scene.scene_id] = ctx
        if len(self._contexts) > self.config.scene_cache_size:
            self._contexts.popitem(last=False)
        return ctx

    def _reference_progress(self, scene: Scene, ctx: _SceneContext) -> tuple[float, str]:
        """The driving metrics' reference over this episode's window (:func:`envs.sim.metrics.reference_progress`), cached
        per (scene, start frame)."""
        key = (scene.scene_id, self._start)
        cached = self._rc_references.get(key)
        if cached is None:
            k = self._replan_frames(scene)
            end = min(scene.num_frames - 1, ctx.t_end + k)
            cached = reference_progress(scene, ctx.route, self._start, end, k, ctx.drivable,
                                        lambda t: self._log_problem(scene, t), self.config.pdm)
            self._rc_references[key] = cached
            if len(self._rc_references) > self.config.problem_cache_size:
                self._rc_references.popitem(last=False)
        return cached

    def _start_frame(self, scene: Scene, ctx: _SceneContext) -> int:
        """Decision frame (open loop) or start frame (closed loop) of an episode on ``scene``."""
        cfg = self.config
        cf = scene.meta.collision_frame
        if cf is not None:
            lead = cfg.lead_time if self.mode == "open_loop" else cfg.closed_loop_lead_time
            return int(np.clip(cf - int(round(lead / scene.dt)), 0, ctx.t_max))
        t_min = min(int(round(cfg.history_time / scene.dt)), ctx.t_max)
        return int(self.np_random.integers(t_min, ctx.t_max + 1))

    def _start_state(self, scene: Scene, t0: int) -> EgoState:
        """The ego state an episode starts from at frame ``t0``: the log's scoring state (the same object, so the
        scorer's per-problem caches serve the first step), with the logged steering angle in closed loop when
        ``config.start_steering == "log"`` (a copy; the log's problem keeps 0)."""
        ego = self._log_problem(scene, t0).ego
        if self.mode != "closed_loop" or self.config.start_steering == "zero":
            return ego
        return dataclasses.replace(ego, steering_angle=logged_steering_angle(scene, t0))

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
        if problem.ego is not track.ego_state:  # dataclasses.replace(problem, ego=...), without its introspection
            problem = ScoringProblem(ego=track.ego_state, agents=problem.agents, map=problem.map,
                                     scene_id=problem.scene_id, time_index=problem.time_index)
        self._current = (track.frame, problem)
        return problem

    def _score(self, scene: Scene, problem: ScoringProblem, states: np.ndarray) -> dict[str, np.ndarray]:
        """Reward terms of simulated states ``(G, 41, 7)`` at ``problem`` of ``scene`` (EP normaliser per
        ``config.reference``)."""
        return self._score_from(problem, states, self._reference_base(scene, problem))

    def _score_from(self, problem: ScoringProblem, states: np.ndarray,
                    base: ScoringProblem | None) -> dict[str, np.ndarray]:
        """:meth:`_score` with the reference base already chosen (:meth:`_reference_base`)."""
        cfg = self.config
        ref_progress = safe = None
        if base is not None:
            ref_progress = reference_for(base, cfg.pdm).masked_progress
            safe = safe_progress_for(base, cfg.pdm).progress
        result = score_states(problem, states, cfg.pdm, reference_progress=ref_progress)
        return reward_terms(result, cfg.pdm, cfg.reward, safe)

    def _reference_base(self, scene: Scene, problem: ScoringProblem) -> ScoringProblem | None:
        """The problem the EP references of ``problem`` are planned from (``config.reference``): the log's problem
        at its frame while the ego is on the log (``"log"``), else ``problem`` itself; None without a map or with
        ``reference=None``."""
        cfg = self.config
        if problem.map is None or cfg.reference is None:
            return None
        if cfg.reference == "log":
            logged = self._log_problem(scene, problem.time_index)
            if self._on_log(logged.ego, problem.ego):
                return logged
        return problem

    def _on_log(self, logged: EgoState, current: EgoState) -> bool:
        """Whether ``current`` is within ``reference_log_tolerance`` of the logged ego state (position, speed)."""
        tol = self.config.reference_log_tolerance
        if current is logged:
            return True
        dx, dy = current.pose[:2] - logged.pose[:2]  # np.hypot of two float64 scalars (math.hypot may differ)
        return float(np.hypot(dx, dy)) <= tol and abs(float(current.velocity[0] - logged.velocity[0])) <= tol

    def _observation(self) -> dict[str, Any]:
        track = self._track
        assert track is not None
        return build_observation(track.scene_view, track.frame, track.kinematics, self._obs_config,
                                 self._context(track.scene).route, self._renderer)

    def _info(self, obs: Mapping[str, Any], rewards: dict[str, float], collision: bool,
              colliding_agent: int, contacts: list[int] | None = None) -> dict[str, Any]:
        """The step/reset info of the observation ``obs`` (``contacts``: the not-at-fault contacts of a closed-loop
        step)."""
        scene, track = self._scene, self._track
        assert scene is not None and track is not None
        info: dict[str, Any] = {
            "rewards": rewards,
            "collision": collision,
            "colliding_agent": colliding_agent,
            "contacts": [] if contacts is None else contacts,
            "scene_id": scene.scene_id,
            "scenario_type": scene.meta.scenario_type,
            "source": scene.meta.source,
            "t": track.frame,
            "score_kind": "pdms" if scene.map is not None else "map_free",
            "logged_horizon": min(self.config.pdm.horizon, (scene.num_frames - 1 - track.frame) * scene.dt),
        }
        if self.config.text_prompt:
            info["prompt"] = text_prompt(obs, self.config.history_interval)
        return info

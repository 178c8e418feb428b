"""The agents' motion as numbers in the observation and the prompt (issue #29): one extractor, one text format, one
parser.

Risk is a time to contact, and one BEV frame shows positions, not speeds. With
:attr:`envs.observation.ObservationConfig.prompt_state` (pipeline: ``agent.prompt_state``) the observation carries
the state of the current frame as numbers and :func:`envs.observation.text_prompt` states them:

* ``"none"`` (default): nothing is added; observation and prompt are unchanged, bit for bit;
* ``"ego"``: ``"ego_velocity"`` ``float32 (2,)``: the ego's body-frame velocity (longitudinal, lateral) [m/s]
  (the speed is already in the prompt's ``Speed ...``; this is the state block's format without agents, a control);
* ``"agents"``: ``"ego_velocity"`` and ``"agents"`` ``float32 (K, 6)``: the ``K``
  (:attr:`~envs.observation.ObservationConfig.prompt_agents`) agents nearest to the ego rear axle among those
  **visible in the BEV** (valid at ``t``, box centre inside :attr:`envs.render.BEVConfig.view_extent`), nearest
  first, one row each of :data:`AGENT_COLUMNS`: ``valid`` (1; 0 on padding rows, which are all zero), ``class``
  (:class:`envs.scenes.scene.AgentClass` code), ``x``, ``y`` (box centre relative to the ego rear axle, ego frame
  [m]) and ``vx``, ``vy`` (the agent's velocity minus the ego's, ego frame [m/s]).

Separately, :attr:`envs.observation.ObservationConfig.privileged_hazard` adds ``"hazard"`` ``float32 (8,)``
(:func:`hazard_state`, rows of :data:`HAZARD_COLUMNS`): the scenario's **designated hazard agent**
(:func:`envs.scenes.scene.designated_hazard`, named by the scene's meta data) relative to the ego and its
constant-velocity closest approach. PRIVILEGED: a policy cannot know which agent the scenario made the hazard; it is
a diagnostic (how a policy does once it sees the hazard's motion, docs/grpo_ablation.md) and a teacher's input, never
stated in the prompt and never a deployable observation.

Only frame ``t`` is read (poses, velocities and validity at ``t``: never the future). The numbers are rounded to
the prompt's precision when extracted (positions to :data:`POSITION_DECIMALS`, velocities to
:data:`VELOCITY_DECIMALS` decimals; clipped to :data:`POSITION_RANGE` / :data:`VELOCITY_RANGE`), so the
observation holds exactly what the prompt says and :func:`parse_state_text` gives it back.

Text (:func:`state_text`; fixed, compact, one sentence before the prompt's last one)::

    State (ego frame, m, m/s): ego vx+8.3 vy+0.0; vehicle x+12 y-3 vx-5.2 vy+0.0; pedestrian x+6 y+4 vx-8.3 vy-1.3.
    State (ego frame, m, m/s): ego vx+8.3 vy+0.0.                        # "ego"
    State (ego frame, m, m/s): ego vx+8.3 vy+0.0; no agents in view.     # "agents", none visible
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import numpy as np

from envs.scenes.scene import AgentClass, Scene, designated_hazard
from rewards.geometry import rotate_vectors, world_to_local

PROMPT_STATES = ("none", "ego", "agents")
"""Values of ``prompt_state``: what the observation and the prompt add (module docstring)."""
STATE_KEYS = ("ego_velocity", "agents")
"""Observation keys this module adds (absent with ``prompt_state="none"``)."""
AGENT_COLUMNS = ("valid", "class", "x", "y", "vx", "vy")
"""Columns of the ``"agents"`` observation ``(K, 6)``."""
POSITION_DECIMALS = 0
"""Decimals of the agents' relative positions in the prompt (1 m)."""
VELOCITY_DECIMALS = 1
"""Decimals of the velocities in the prompt (0.1 m/s)."""
POSITION_RANGE = 200.0
"""Bound of the relative positions [m] (a visible agent is well inside it)."""
VELOCITY_RANGE = 60.0
"""Bound of the velocities [m/s] (values are clipped to +-60 m/s)."""
CLASS_WORDS = tuple(c.name.lower() for c in sorted(AgentClass))
"""Prompt word of each :class:`AgentClass` code (``vehicle``, ``pedestrian``, ``cyclist``, ``static``)."""
STATE_HEAD = " State (ego frame, m, m/s): "
"""Start of the state block (after the ego and command sentences of the prompt)."""
NO_AGENTS = "no agents in view"
"""What the block says in ``"agents"`` mode when no agent is visible."""


def check_prompt_options(owner: str, prompt_state: Any, prompt_agents: Any) -> tuple[str, int]:
    """``(prompt_state, prompt_agents)`` as ``(str, int)``; ``ValueError`` naming ``owner.prompt_state`` /
    ``owner.prompt_agents`` and the value unless they are one of :data:`PROMPT_STATES` and an int >= 1.

    The one check of these two settings: the observation's, the replay and CARLA envs', the pipeline agents' and the
    VLA's configs share it (``owner``: the config class, ``"agent"``, or the policy folder's settings file)."""
    if prompt_state not in PROMPT_STATES:
        raise ValueError(f"{owner}.prompt_state: expected one of {PROMPT_STATES}, got {prompt_state!r}")
    if isinstance(prompt_agents, bool) or not isinstance(prompt_agents, (int, np.integer)) or prompt_agents < 1:
        raise ValueError(f"{owner}.prompt_agents: expected an int >= 1, got {prompt_agents!r}")
    return str(prompt_state), int(prompt_agents)


def _round(values: np.ndarray, decimals: int, bound: float) -> np.ndarray:
    """Clip to ``+-bound``, round to ``decimals`` (half to even, numpy's rule) and drop negative zeros."""
    return np.round(np.clip(values, -bound, bound), decimals) + 0.0


def ego_velocity(body_velocity: np.ndarray) -> np.ndarray:
    """``float32 (2,)`` the ego's body-frame velocity ``(2,)`` [m/s] at the prompt's precision."""
    return _round(np.asarray(body_velocity, dtype=np.float64), VELOCITY_DECIMALS, VELOCITY_RANGE).astype(np.float32)


def visible_agents(scene: Scene, t: int, ego_pose: np.ndarray, ego_body_velocity: np.ndarray,
                   extent: tuple[float, float, float, float], k: int) -> np.ndarray:
    """The ``k`` nearest agents visible in the BEV at frame ``t`` (module docstring), reading frame ``t`` only.

    Args:
        scene: the scene (a closed loop's scene view: its agents are the logged ones).
        t: frame index.
        ego_pose: ``(3,)`` ego rear-axle pose at ``t``, world frame [m, m, rad].
        ego_body_velocity: ``(2,)`` ego velocity at ``t`` in its body frame [m/s].
        extent: ``(x_min, x_max, y_min, y_max)`` [m] of the ego-frame rectangle the BEV covers.
        k: rows.

    Returns:
        ``float32 (k, 6)`` rows of :data:`AGENT_COLUMNS`, nearest first (ties: smaller id), zero rows after the
        visible ones.
    """
    out = np.zeros((k, len(AGENT_COLUMNS)), dtype=np.float32)
    idx = np.flatnonzero(scene.agent_valid[:, t])
    if not len(idx) or k == 0:
        return out
    pos = world_to_local(scene.agent_poses[idx, t, :2], ego_pose)  # (N, 2) box centres [m]
    x_min, x_max, y_min, y_max = extent
    seen = (pos[:, 0] >= x_min) & (pos[:, 0] < x_max) & (pos[:, 1] >= y_min) & (pos[:, 1] < y_max)
    idx, pos = idx[seen], pos[seen]
    if not len(idx):
        return out
    order = np.lexsort((np.asarray(scene.agent_ids)[idx], np.hypot(pos[:, 0], pos[:, 1])))[:k]
    idx, pos = idx[order], pos[order]
    vel = rotate_vectors(scene.agent_velocities[idx, t], -float(ego_pose[2])) - np.asarray(ego_body_velocity)[None]
    n = len(idx)
    out[:n, 0] = 1.0
    out[:n, 1] = scene.agent_classes[idx]
    out[:n, 2:4] = _round(pos, POSITION_DECIMALS, POSITION_RANGE)
    out[:n, 4:6] = _round(vel, VELOCITY_DECIMALS, VELOCITY_RANGE)
    return out


HAZARD_COLUMNS = ("present", "x", "y", "vx", "vy", "distance", "closest_distance", "closest_time")
"""Columns of the privileged ``"hazard"`` observation ``(8,)`` (:func:`hazard_state`)."""
HAZARD_HORIZON = 5.0
"""Horizon of the hazard's constant-velocity closest approach [s]."""
HAZARD_STEP = 0.1
"""Time grid of the closest approach [s] (the logs' step)."""


def agent_motion(scene: Scene, row: int, t: int, ego_pose: np.ndarray, ego_body_velocity: np.ndarray,
                 horizon: float = HAZARD_HORIZON, step: float = HAZARD_STEP) -> np.ndarray:
    """``float64 (7,)`` the motion of agent ``row`` (array index) at frame ``t`` relative to the ego: box centre
    ``x, y`` in the ego rear-axle frame [m], velocity minus the ego's ``vx, vy`` in the ego frame [m/s], the current
    centre distance [m], and the constant-velocity (both) projection's closest centre distance [m] and its time [s]
    on a ``step`` grid over ``[0, horizon]`` (ties: the earliest). Reads frame ``t`` only (the agent must be valid)."""
    p = world_to_local(scene.agent_poses[row, t, :2], ego_pose)
    v = rotate_vectors(scene.agent_velocities[row, t], -float(ego_pose[2])) - np.asarray(ego_body_velocity)
    times = np.arange(0.0, horizon + 1e-9, step)
    dist = np.hypot(p[0] + v[0] * times, p[1] + v[1] * times)
    k = int(np.argmin(dist))
    return np.array([p[0], p[1], v[0], v[1], np.hypot(p[0], p[1]), dist[k], times[k]])


def hazard_state(scene: Scene, t: int, ego_pose: np.ndarray, ego_body_velocity: np.ndarray) -> np.ndarray:
    """PRIVILEGED ``float32 (8,)`` (:data:`HAZARD_COLUMNS`): ``present`` (1) and :func:`agent_motion` of the scene's
    designated hazard agent (:func:`envs.scenes.scene.designated_hazard`) at frame ``t``, positions and distances
    clipped to +-:data:`POSITION_RANGE` [m], velocities to +-:data:`VELOCITY_RANGE` [m/s]; all zeros when the scene
    names no hazard or the hazard is not logged at ``t``.

    Args:
        scene: the scene (a closed loop's scene view: its agents are the logged ones).
        t: frame index.
        ego_pose: ``(3,)`` ego rear-axle pose at ``t``, world frame [m, m, rad].
        ego_body_velocity: ``(2,)`` ego velocity at ``t`` in its body frame [m/s].
    """
    out = np.zeros(len(HAZARD_COLUMNS), dtype=np.float32)
    hazard = designated_hazard(scene)
    if hazard is None:
        return out
    row = int(np.flatnonzero(np.asarray(scene.agent_ids) == hazard)[0])
    if not scene.agent_valid[row, t]:
        return out
    m = agent_motion(scene, row, t, ego_pose, ego_body_velocity)
    out[0] = 1.0
    out[1:3] = np.clip(m[0:2], -POSITION_RANGE, POSITION_RANGE)
    out[3:5] = np.clip(m[2:4], -VELOCITY_RANGE, VELOCITY_RANGE)
    out[5:7] = np.minimum(m[4:6], POSITION_RANGE)
    out[7] = m[6]
    return out


def _num(value: float, decimals: int) -> str:
    return f"{float(value) + 0.0:+.{decimals}f}"


def state_text(observation: Mapping[str, Any]) -> str:
    """The state block of an observation (module docstring), ``""`` when it holds no ``"ego_velocity"``."""
    if "ego_velocity" not in observation:
        if "agents" in observation:
            raise ValueError("observation: 'agents' without 'ego_velocity' (build it with build_observation)")
        return ""
    vx, vy = (float(v) for v in np.asarray(observation["ego_velocity"]).reshape(2))
    parts = [f"ego vx{_num(vx, VELOCITY_DECIMALS)} vy{_num(vy, VELOCITY_DECIMALS)}"]
    if "agents" in observation:
        rows = np.asarray(observation["agents"], dtype=np.float64).reshape(-1, len(AGENT_COLUMNS))
        rows = rows[rows[:, 0] > 0.5]
        for valid, cls, x, y, ax, ay in rows:
            code = int(round(cls))
            if not 0 <= code < len(CLASS_WORDS):
                raise ValueError(f"observation['agents']: class code {cls!r} is not an AgentClass")
            parts.append(f"{CLASS_WORDS[code]} x{_num(x, POSITION_DECIMALS)} y{_num(y, POSITION_DECIMALS)} "
                         f"vx{_num(ax, VELOCITY_DECIMALS)} vy{_num(ay, VELOCITY_DECIMALS)}")
        if not len(rows):
            parts.append(NO_AGENTS)
    return STATE_HEAD + "; ".join(parts) + "."


_NUM = r"([+-]\d+(?:\.\d+)?)"
_EGO_RE = re.compile(rf"ego vx{_NUM} vy{_NUM}")
_AGENT_RE = re.compile(rf"({'|'.join(CLASS_WORDS)}) x{_NUM} y{_NUM} vx{_NUM} vy{_NUM}")


def parse_state_text(prompt: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The numbers of the state block of ``prompt`` back (the inverse of :func:`state_text`).

    Returns:
        ``(ego_velocity float64 (2,) or None, agents float64 (M, 6) rows of AGENT_COLUMNS or None)``: None where the
        prompt has no state block (``ego_velocity``) or no agents part (``"ego"`` mode); ``M`` = the agents stated
        (0 for "no agents in view").
    """
    start = prompt.find(STATE_HEAD)
    if start < 0:
        return None, None
    block = prompt[start + len(STATE_HEAD):]  # up to the block's full stop (". " or the end; "8.3" has none)
    block = block[: block.find(". ")] if ". " in block else block.rstrip(".")
    parts = block.split("; ")
    ego = _EGO_RE.fullmatch(parts[0])
    if ego is None:
        raise ValueError(f"prompt: state block {block!r} does not start with the ego's velocity")
    ego_v = np.array([float(ego.group(1)), float(ego.group(2))])
    if len(parts) == 1:
        return ego_v, None
    if parts[1:] == [NO_AGENTS]:
        return ego_v, np.zeros((0, len(AGENT_COLUMNS)))
    rows = []
    for part in parts[1:]:
        m = _AGENT_RE.fullmatch(part)
        if m is None:
            raise ValueError(f"prompt: state block part {part!r} is not '<class> x.. y.. vx.. vy..'")
        rows.append([1.0, float(CLASS_WORDS.index(m.group(1))), *(float(m.group(i)) for i in range(2, 6))])
    return ego_v, np.array(rows, dtype=np.float64)

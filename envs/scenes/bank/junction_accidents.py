"""Accident builders at the signalized 4-way junction (synthetic; NHTSA pre-crash typologies as used by
DeepAccident): red-light runner from the left / right, unprotected left turn, right turn across a crossing VRU.

The ego always approaches from the southern arm (green); the east-west road is red. The ego log is a speed plan
that slows for turns (lateral acceleration cap) and is cropped so that its box centre crosses the conflicting
agent's path at the target frame; the agent is timed to arrive at that point within a fraction of a second.
Parameter ranges: :mod:`envs.scenes.bank.ranges` (shared with the CARLA scenarios).
"""

from __future__ import annotations

import numpy as np

from envs.scenes.bank.actors import Actor, EgoTrack, sample_size
from envs.scenes.bank.core import Core, cropped_ego, finish_accident, interp_frame, target_frame, time_shift_family
from envs.scenes.bank.motion import frame_times, ped_start_time, ramp_profile, speed_caps
from envs.scenes.bank.ranges import EGO_SPEED_PLAN, RED_LIGHT_RUNNER, RIGHT_TURN_VRU, UNPROTECTED_LEFT_TURN, Range
from envs.scenes.bank.roads import T_MISSING, TYPOLOGY_FAMILIES, Roads
from envs.scenes.layouts import Layout, Path, get_layout
from envs.scenes.scene import AgentClass

SHIFT_SPANS = ((0.0, 2.5), (0.0, -2.5))
"""Outcome-varied bank: the crossing vehicles arrive up to 2.5 s later or earlier than in their colliding draw [s]
(the VRUs up to 4 s)."""
JUNCTIONS = ("junction_1x1", "junction_2x2", "junction_2x1", "junction_1x2")
"""Junction layout variants used by the bank."""


def _lanes(layout: Layout) -> tuple[int, int]:
    """Lanes per direction of the north-south and east-west roads."""
    if layout.params:
        return int(layout.params["N"]), int(layout.params["E"])
    n_ns, n_ew = (int(v) for v in layout.name.split("_")[1].split("x"))
    return n_ns, n_ew


def junction_layout(
    rng: np.random.Generator, roads: Roads | None, need: str, choices: tuple[str, ...] = JUNCTIONS, min_ns: int = 1
) -> Layout:
    """A classic junction of ``choices`` (``roads`` None) or a junction family layout for the typology / normal
    variant ``need`` (a ``junction_t`` lacks the arm :data:`~envs.scenes.bank.roads.T_MISSING` names)."""
    if roads is None:
        return get_layout(str(rng.choice(choices)))
    candidates = TYPOLOGY_FAMILIES.get(need, TYPOLOGY_FAMILIES["red_light_runner_left"])
    return roads.pick(rng, candidates, missing=T_MISSING.get(need), min_ns=min_ns)


def _ego_through(
    rng: np.random.Generator, layout: Layout, route: tuple[str, ...], gate: Path, v_ego: Range
) -> tuple[EgoTrack, float, np.ndarray, float]:
    """Ego along ``route`` crossing ``gate`` near a target frame, cruising at a speed drawn from ``v_ego`` [m/s]
    with the :data:`~envs.scenes.bank.ranges.EGO_SPEED_PLAN` speed plan.

    Returns:
        ``(ego, t_c, point, v_cruise)``: the ego, crossing time [s], its box centre ``(2,)`` [m] then, cruise speed.
    """
    path = layout.path(route)
    plan = EGO_SPEED_PLAN
    v = v_ego.draw(rng)
    a_down = plan.a_down.draw(rng)
    caps = speed_caps(path, v, a_lat=plan.a_lat.draw(rng), a_down=plan.caps_brake_fraction * a_down)
    ego, t_c = cropped_ego(path, caps, v, gate, target_frame(rng, 55, 61), plan.a_up.draw(rng), a_down)
    return ego, t_c, interp_frame(ego.centres[:, :2], t_c), v


def _timed_vehicle(rng: np.random.Generator, path: Path, point: np.ndarray, t_arrive: float, v: float) -> Actor:
    """A vehicle at constant speed ``v`` [m/s] along ``path`` whose box centre passes ``point`` at ``t_arrive``."""
    s_conf = float(path.project(point[None])[0][0])
    length, width = sample_size(rng, AgentClass.VEHICLE)
    return Actor(AgentClass.VEHICLE, length, width, path, s_conf + v * (frame_times() - t_arrive), role="risk")


def red_light_runner(rng: np.random.Generator, variant: str, side: str, roads: Roads | None = None) -> Core:
    """The ego crosses on green; a vehicle from the ``side`` ("left": west arm, "right": east arm) runs the red.

    On a ``junction_t`` (no arm opposite the runner's) the runner turns across the ego's path instead: from the
    left into the outer northbound exit lane (the ego in an inner lane), from the right into a southbound exit."""
    typology = f"red_light_runner_{side}"
    layout = junction_layout(rng, roads, typology, min_ns=2 if side == "left" else 1)  # (T only: 2 lanes to cross)
    n_ns, n_ew = _lanes(layout)
    arm, dest = ("W", "E") if side == "left" else ("E", "W")
    turning = layout.family == "junction_t"
    if turning and side == "left":  # W_in0 turns left into N_out<n_ns - 1>, crossing the ego's inner lane
        i, j = int(rng.integers(n_ns - 1)), n_ns - 1
        other = ("W_in0", f"W_in0>N_out{j}", f"N_out{j}")
    elif turning:  # E_in0 turns left into S_out<j>, crossing every northbound lane
        i, j = int(rng.integers(n_ns)), int(rng.integers(n_ns))
        other = ("E_in0", f"E_in0>S_out{j}", f"S_out{j}")
    else:
        i, j = int(rng.integers(n_ns)), int(rng.integers(n_ew))
        other = (f"{arm}_in{j}", f"{arm}_in{j}>{dest}_out{j}", f"{dest}_out{j}")
    route = (f"S_in{i}", f"S_in{i}>N_out{i}", f"N_out{i}")
    r = RED_LIGHT_RUNNER
    ego, t_c, point, _ = _ego_through(rng, layout, route, layout.path(other[1:2]), r.v_ego)
    v_x = r.v_runner.draw(rng)
    jitter = r.arrival_jitter.draw(rng)
    risk = _timed_vehicle(rng, layout.path(other), point, t_c + jitter, v_x)
    family = time_shift_family("arrival_offset_s", jitter, ego, risk, SHIFT_SPANS)
    ego, risk, k, avoid = finish_accident(ego, risk, [])
    return Core(
        layout.name, route, ego, [risk], variant,
        f"red_light_runner_{side}: {'turning' if turning else 'crossing'} vehicle from the {side} runs the red "
        f"light at {v_x:.1f} m/s", k, avoid,
        family=family,
    )


def red_light_runner_left(rng: np.random.Generator, variant: str, roads: Roads | None = None) -> Core:
    """Red-light runner crossing from the ego's left."""
    return red_light_runner(rng, variant, "left", roads)


def red_light_runner_right(rng: np.random.Generator, variant: str, roads: Roads | None = None) -> Core:
    """Red-light runner crossing from the ego's right."""
    return red_light_runner(rng, variant, "right", roads)


def unprotected_left_turn(rng: np.random.Generator, variant: str, roads: Roads | None = None) -> Core:
    """The ego turns left on a permissive green across an oncoming vehicle going straight."""
    layout = junction_layout(rng, roads, "unprotected_left_turn")
    n_ns, _ = _lanes(layout)
    j = int(rng.integers(n_ns))
    route = ("S_in0", "S_in0>W_out0", "W_out0")
    other = (f"N_in{j}", f"N_in{j}>S_out{j}", f"S_out{j}")
    r = UNPROTECTED_LEFT_TURN
    ego, t_c, point, _ = _ego_through(rng, layout, route, layout.path(other[1:2]), r.v_ego)
    v_o = r.v_oncoming.draw(rng)
    jitter = r.arrival_jitter.draw(rng)
    risk = _timed_vehicle(rng, layout.path(other), point, t_c + jitter, v_o)
    # no uncrashed variant on the 1x1 junction: a left-turning ego swings a corner a few cm past the one-lane
    # exit's curb after the conflict point (as in envs.scenes.bank.normal), which only the crash hides
    family = None if layout.name == "junction_1x1" else time_shift_family(
        "arrival_offset_s", jitter, ego, risk, SHIFT_SPANS
    )
    ego, risk, k, avoid = finish_accident(ego, risk, [])
    return Core(
        layout.name, route, ego, [risk], variant,
        f"unprotected_left_turn: oncoming vehicle in lane {j} at {v_o:.1f} m/s", k, avoid, family=family,
    )


def right_turn_vru(rng: np.random.Generator, variant: str, roads: Roads | None = None) -> Core:
    """The ego turns right across a pedestrian or cyclist (``variant``) on the crosswalk of the destination arm."""
    layout = junction_layout(rng, roads, "right_turn_vru")
    n_ns, n_ew = _lanes(layout)
    route = (f"S_in{n_ns - 1}", f"S_in{n_ns - 1}>E_out{n_ew - 1}", f"E_out{n_ew - 1}")
    crosswalk = layout.crosswalks["E"]  # south corner -> north corner
    from_south = rng.random() < (0.75 if variant == "pedestrian" else 0.5)
    gate = Path.from_points(crosswalk if from_south else crosswalk[::-1])
    r = RIGHT_TURN_VRU
    ego, t_c, point, _ = _ego_through(rng, layout, route, gate, r.v_ego)
    s_conf = float(gate.project(point[None])[0][0])
    if variant == "pedestrian":
        cls, v, accel = AgentClass.PEDESTRIAN, r.v_pedestrian.draw(rng), r.pedestrian_accel.draw(rng)
    else:
        cls, v, accel = AgentClass.CYCLIST, r.v_cyclist.draw(rng), r.cyclist_accel.draw(rng)
    jitter = r.arrival_jitter.draw(rng)
    t_start = ped_start_time(s_conf, v, accel, t_c + jitter)
    length, width = sample_size(rng, cls)
    vru = Actor(cls, length, width, gate, ramp_profile(frame_times(), 0.0, 0.0, t_start, accel, v), role="risk")
    family = time_shift_family("arrival_offset_s", jitter, ego, vru, ((0.0, 4.0), (0.0, -4.0)))
    ego, vru, k, avoid = finish_accident(ego, vru, [])
    return Core(
        layout.name, route, ego, [vru], variant,
        f"right_turn_vru: {variant} crossing from the {'south' if from_south else 'north'} corner", k, avoid,
        family=family,
    )

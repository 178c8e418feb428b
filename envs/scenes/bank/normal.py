"""Non-accident ("normal") synthetic scenes: the ego drives its route without touching anyone.

Variants: ``cruise`` (straight road, gentle speed changes), ``follow`` (straight road behind a lead that slows
down; the ego replays the lead's speed profile with a time gap), ``junction_straight`` / ``junction_left`` /
``junction_right`` (through the signalized junction on green, slowing for turns) and ``merge`` (on-ramp or main
road of the merge layout). Background traffic is added afterwards and kept clear of the ego.
"""

from __future__ import annotations

import numpy as np

from envs.scenes.bank.actors import Actor, EgoTrack, sample_size
from envs.scenes.bank.core import Core, Retry
from envs.scenes.bank.junction_accidents import JUNCTIONS, _lanes, junction_layout
from envs.scenes.bank.motion import NUM_FRAMES, frame_times, ramp_profile, speed_caps, speed_plan
from envs.scenes.bank.road_accidents import EGO_FRONT
from envs.scenes.bank.roads import NORMAL_VARIANT_FAMILIES, Roads, eastbound_routes, merging_lane
from envs.scenes.layouts import Layout, get_layout
from envs.scenes.scene import AgentClass

NORMAL_VARIANTS = ("cruise", "follow", "junction_straight", "junction_left", "junction_right", "merge")
"""Variants of the ``normal`` scenario type."""


def _planned_ego(rng: np.random.Generator, layout_name: str, route: tuple[str, ...], s0: float, v_hi: float) -> EgoTrack:
    """Ego following a speed plan along ``route`` from arc length ``s0`` [m] (cruise speed up to ``v_hi``)."""
    path = get_layout(layout_name).path(route)
    v = rng.uniform(8.0, v_hi)
    a_down = rng.uniform(1.5, 2.5)
    caps = speed_caps(path, v, a_lat=rng.uniform(2.0, 3.0), a_down=0.9 * a_down)
    v0 = float(np.clip(v + rng.uniform(-3.0, 1.0), 5.0, v_hi))
    v0 = min(v0, float(caps[min(int(s0 / 0.5), len(caps) - 1)]))  # not too fast for an upcoming curve
    return EgoTrack(path, speed_plan(caps, v, s0, v0, NUM_FRAMES, rng.uniform(0.6, 1.5), a_down))


def _road(rng: np.random.Generator, roads: Roads | None, variant: str, classic: str) -> Layout:
    """The classic layout (``roads`` None, no draw) or a family layout the normal ``variant`` runs on."""
    return get_layout(classic) if roads is None else roads.pick(rng, NORMAL_VARIANT_FAMILIES[variant])


def _lane_route(rng: np.random.Generator, roads: Roads | None, layout: Layout) -> tuple[str, ...]:
    """A random eastbound lane of a two-way road (classic: E0 or E1)."""
    if roads is None:
        return (str(rng.choice(["E0", "E1"])),)
    lanes = eastbound_routes(layout)
    return lanes[int(rng.integers(len(lanes)))]


def normal(rng: np.random.Generator, variant: str, roads: Roads | None = None) -> Core:
    """A collision-free scene of the given :data:`NORMAL_VARIANTS` variant."""
    if variant == "cruise":
        layout = _road(rng, roads, variant, "straight")
        route = _lane_route(rng, roads, layout)
        ego = _planned_ego(rng, layout.name, route, rng.uniform(60.0, 150.0), 13.5)
        return Core(layout.name, route, ego, [], variant, "none: cruising")
    if variant == "follow":
        return _follow(rng, variant, roads)
    if variant.startswith("junction_"):
        # A Pacifica whose rear axle follows the 1x1 junction's left-turn connector swings its front-left corner a
        # few cm past the curb of the one-lane exit, so the expert's normal left turns use the wider junctions
        # (the invariant "a normal expert log never leaves the drivable area" is tested).
        choices = JUNCTIONS if variant != "junction_left" else tuple(j for j in JUNCTIONS if j != "junction_1x1")
        layout = junction_layout(rng, roads, variant, choices)
        n_ns, n_ew = _lanes(layout)
        if variant == "junction_straight":
            i = int(rng.integers(n_ns))
            route = (f"S_in{i}", f"S_in{i}>N_out{i}", f"N_out{i}")
        elif variant == "junction_left":
            route = ("S_in0", "S_in0>W_out0", "W_out0")
        else:
            route = (f"S_in{n_ns - 1}", f"S_in{n_ns - 1}>E_out{n_ew - 1}", f"E_out{n_ew - 1}")
        entry = layout.lane(route[0]).centerline
        in_len = float(np.linalg.norm(entry[-1] - entry[0]))
        ego = _planned_ego(rng, layout.name, route, in_len - rng.uniform(15.0, 70.0), 13.0)
        return Core(layout.name, route, ego, [], variant, f"none: {variant.replace('_', ' ')} on green")
    if variant == "merge":
        layout = _road(rng, roads, variant, "merge")
        up, down = eastbound_routes(layout)[-1]
        merging = merging_lane(layout)
        inner = eastbound_routes(layout)[:-1] or [(up, down)]
        route = ((merging, down), (up, down), inner[-1])[int(rng.integers(3))]
        s0 = rng.uniform(30.0, 120.0) if route[0] == "ramp" else rng.uniform(120.0, 220.0)
        ego = _planned_ego(rng, layout.name, route, s0, 13.5)
        return Core(layout.name, route, ego, [], variant, "none: merge area")
    raise ValueError(f"unknown normal variant {variant!r}; known: {NORMAL_VARIANTS}")


def _follow(rng: np.random.Generator, variant: str, roads: Roads | None = None) -> Core:
    """Car following: the lead slows down moderately; the ego replays the lead's motion ``headway`` seconds later."""
    t = frame_times()
    layout = _road(rng, roads, variant, "straight")
    route = _lane_route(rng, roads, layout)
    path = layout.path(route)
    v0 = rng.uniform(8.0, 13.5)
    v1 = max(v0 - rng.uniform(2.0, 6.0), 2.0)
    t_brake, a = rng.uniform(1.0, 6.0), rng.uniform(1.0, 2.5)
    headway, standstill = rng.uniform(1.2, 2.2), rng.uniform(2.0, 5.0)
    length, width = sample_size(rng, AgentClass.VEHICLE)
    s_lead0 = rng.uniform(100.0, 160.0)
    lead_s = ramp_profile(t, s_lead0, v0, t_brake, a, v1)
    ego_s = ramp_profile(t - headway, s_lead0, v0, t_brake, a, v1) - (0.5 * length + EGO_FRONT + standstill)
    if np.any(np.diff(ego_s) < 0):
        raise Retry
    lead = Actor(AgentClass.VEHICLE, length, width, path, lead_s, role="lead")
    return Core(layout.name, route, EgoTrack(path, ego_s), [lead], variant, f"none: following at {headway:.1f} s headway")

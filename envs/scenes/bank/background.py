"""Background traffic for synthetic scenes: vehicles on lanes, parked cars, cyclists, pedestrians on sidewalks
and cones, rejection-sampled so that nobody touches the ego (or its avoidability counterfactuals) or each other.

Each candidate is drawn near the ego's position at mid-scene; a candidate whose (slightly inflated) box overlaps
an already placed box track at any frame is dropped, and a new one is drawn (at most 3 draws per wanted agent).
"""

from __future__ import annotations

import functools

import numpy as np

from envs.scenes.bank.actors import Actor, EgoTrack, Occupancy, sample_size
from envs.scenes.bank.motion import frame_times, ramp_profile
from envs.scenes.layouts import Layout, Path, get_layout
from envs.scenes.scene import AgentClass

EGO_MARGIN = 0.4
"""Inflation of the ego box on each side for placement checks [m]."""
AGENT_MARGIN = 0.2
"""Inflation of other boxes on each side for placement checks [m]."""


@functools.lru_cache(maxsize=128)
def _polyline_path(layout_name: str, kind: str, index: int, reverse: bool) -> Path:
    """Cached :class:`Path` of a layout's walkway / parking polyline, optionally reversed."""
    layout = get_layout(layout_name)
    pts = (layout.walkways if kind == "walk" else layout.parking)[index]
    return Path.from_points(pts[::-1] if reverse else pts)


def _near(path: Path, focus: np.ndarray, rng: np.random.Generator, behind: float, ahead: float) -> float:
    """Random arc length [m] on ``path`` from ``behind`` before to ``ahead`` after the projection of ``focus``."""
    s_f = float(path.s[np.argmin(np.sum((path.points - focus) ** 2, axis=1))])  # nearest vertex (~1 m spacing)
    return s_f + rng.uniform(-behind, ahead)


def _mover(rng: np.random.Generator, cls: AgentClass, path: Path, s0: float, v: float) -> Actor:
    """An agent at ``s0`` [m] on ``path`` at speed ``v`` [m/s], with a gentle speed change half the time."""
    t = frame_times()
    if v > 0 and rng.random() < 0.5:
        s = ramp_profile(t, s0, v, rng.uniform(0.0, 8.0), rng.uniform(0.3, 1.0), float(np.clip(v + rng.uniform(-3.0, 2.0), 0.0, 16.0)))
    else:
        s = s0 + v * t
    length, width = sample_size(rng, cls)
    return Actor(cls, length, width, path, s)


def _parked(rng: np.random.Generator, cls: AgentClass, path: Path, s: float) -> Actor:
    length, width = sample_size(rng, cls)
    return Actor(cls, length, width, path, np.full(len(frame_times()), s))


def _pedestrian(rng: np.random.Generator, layout: Layout, focus: np.ndarray) -> Actor:
    path = _polyline_path(layout.name, "walk", int(rng.integers(len(layout.walkways))), bool(rng.random() < 0.5))
    v = 0.0 if rng.random() < 0.3 else rng.uniform(0.8, 1.6)
    return _mover(rng, AgentClass.PEDESTRIAN, path, _near(path, focus, rng, 50.0, 50.0), v)


def _roadside(rng: np.random.Generator, layout: Layout, focus: np.ndarray, parking: Path, u: float) -> Actor:
    """A roadside actor along the parking strip ``parking`` for the draw ``u`` in [0.45, 1): a parked vehicle, a
    cyclist, a pedestrian or a static obstacle (the straight road's and the road families' shared mix)."""
    if u < 0.65:
        return _parked(rng, AgentClass.VEHICLE, parking, _near(parking, focus, rng, 60.0, 90.0))
    if u < 0.75:
        return _mover(rng, AgentClass.CYCLIST, parking, _near(parking, focus, rng, 60.0, 60.0), rng.uniform(3.0, 6.0))
    if u < 0.95:
        return _pedestrian(rng, layout, focus)
    return _parked(rng, AgentClass.STATIC, parking, _near(parking, focus, rng, 30.0, 90.0))


def _straight_candidate(rng: np.random.Generator, layout: Layout, focus: np.ndarray) -> Actor:
    u = rng.random()
    if u < 0.45:
        path = layout.path([str(rng.choice(["E0", "E1", "W0", "W1"]))])
        return _mover(rng, AgentClass.VEHICLE, path, _near(path, focus, rng, 80.0, 80.0), rng.uniform(7.0, 13.5))
    side = int(rng.integers(2))
    return _roadside(rng, layout, focus, _polyline_path(layout.name, "park", side, False), u)


def _junction_candidate(rng: np.random.Generator, layout: Layout, focus: np.ndarray) -> Actor:
    u = rng.random()
    names = list(layout.lane_ids)
    if u < 0.3:  # through traffic on the green (north-south) road
        conn = str(rng.choice([n for n in names if ">" in n and n[0] in layout.green_arms]))
        src, dst = conn.split(">")
        path = layout.path([src, conn, dst])
        v = rng.uniform(5.0, 11.0)
        if path.curvature().max() > 0.02:  # turning: at most ~2.5 m/s^2 lateral
            v = min(v, float(np.sqrt(2.5 / path.curvature().max())))
        s0 = layout.path([src]).length + rng.uniform(-120.0, 40.0)
        return _mover(rng, AgentClass.VEHICLE, path, s0, v)
    if u < 0.5:  # leaving the junction
        cls = AgentClass.CYCLIST if rng.random() < 0.2 else AgentClass.VEHICLE
        path = layout.path([str(rng.choice([n for n in names if "_out" in n and ">" not in n]))])
        v = rng.uniform(3.0, 6.0) if cls == AgentClass.CYCLIST else rng.uniform(6.0, 12.0)
        return _mover(rng, cls, path, rng.uniform(0.0, 80.0), v)
    if u < 0.75:  # queued at the red light of the east-west road
        red = [n for n in names if "_in" in n and ">" not in n and n[0] not in layout.green_arms]
        path = layout.path([str(rng.choice(red))])
        length, width = sample_size(rng, AgentClass.VEHICLE)
        s = path.length - 1.0 - 0.5 * length - int(rng.integers(3)) * rng.uniform(7.0, 8.5)
        return Actor(AgentClass.VEHICLE, length, width, path, np.full(len(frame_times()), s))
    return _pedestrian(rng, layout, focus)


def _merge_candidate(rng: np.random.Generator, layout: Layout, focus: np.ndarray) -> Actor:
    if rng.random() < 0.9:
        route = (("E0",), ("E1_up", "E1_down"), ("W0",), ("W1",), ("ramp", "E1_down"))[int(rng.integers(5))]
        path = layout.path(route)
        v = rng.uniform(9.0, 13.5) if route[0] == "ramp" else rng.uniform(10.0, 16.0)
        return _mover(rng, AgentClass.VEHICLE, path, _near(path, focus, rng, 100.0, 100.0), v)
    parking = _polyline_path(layout.name, "park", 0, False)
    return _parked(rng, AgentClass.STATIC, parking, _near(parking, focus, rng, 50.0, 80.0))


def _family_road_candidate(rng: np.random.Generator, layout: Layout, focus: np.ndarray) -> Actor:
    """Traffic on a two-way road / merge family layout: its through routes, parking strips and walkways."""
    u = rng.random()
    if u < 0.45 or not layout.parking:
        if u >= 0.9 and layout.walkways:
            return _pedestrian(rng, layout, focus)
        route = layout.through_routes[int(rng.integers(len(layout.through_routes)))]
        path = layout.path(route)
        return _mover(rng, AgentClass.VEHICLE, path, _near(path, focus, rng, 80.0, 80.0), rng.uniform(7.0, 13.5))
    parking = _polyline_path(layout.name, "park", int(rng.integers(len(layout.parking))), False)
    return _roadside(rng, layout, focus, parking, u)


_SAMPLERS = {"straight": _straight_candidate, "merge": _merge_candidate}


def add_background(
    rng: np.random.Generator, layout: Layout, ego_tracks: list[EgoTrack], actors: list[Actor], num_wanted: int
) -> list[Actor]:
    """Draw up to ``num_wanted`` background agents clear of ``ego_tracks`` (log and counterfactuals) and ``actors``.

    Returns:
        The accepted agents (fewer than wanted when draws keep colliding).
    """
    if layout.family:
        sampler = _junction_candidate if layout.family.startswith("junction") else _family_road_candidate
    else:
        sampler = _SAMPLERS.get(layout.name, _junction_candidate)
    occupancy = Occupancy()
    for ego in ego_tracks:
        occupancy.add(ego.corners(EGO_MARGIN))
    for actor in actors:
        occupancy.add(actor.corners(AGENT_MARGIN))
    focus = ego_tracks[0].poses[len(frame_times()) // 2, :2]
    out: list[Actor] = []
    for _ in range(3 * num_wanted):
        if len(out) >= num_wanted:
            break
        cand = sampler(rng, layout, focus)
        if cand.s.min() < 0.0 or cand.s.max() > cand.path.length:  # would leave the map (or its sidewalk)
            continue
        corners = cand.corners(AGENT_MARGIN)
        if occupancy.collides(corners):
            continue
        occupancy.add(corners)
        out.append(cand)
    return out

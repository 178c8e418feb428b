"""The reacting expert of the outcome-varied bank (opt-in: ``ScenarioBank(..., outcomes="varied",
expert="reacting")``), SYNTHETIC.

In the varied bank's default (``expert="logged"``) the ego follows a speed plan fixed before the hazard is placed:
it never reacts to its hazard, so the decision labels' ``action`` (the expert's own motion against the keep-speed
projection, :func:`counterfactual.frame_labels.frame_label`) is almost always ``keep_lane``. The reacting expert
re-times the ego along its logged path (same path, same lateral offsets; only the arc length ``s (T,)`` changes) by
a deterministic rule on the geometry only (:func:`react`):

1. **Perception.** The hazard is *seen* from the first frame at which it is within :attr:`Reaction.sight_range_m`
   of the ego's box centre and the sight line (ego box centre -> hazard box centre) crosses no occluder (the
   scenario's props, e.g. ``pedestrian_occluded``'s parked vehicle; background traffic is placed after the ego and
   occludes nothing); once seen it stays tracked.
2. **Projected conflict** (:func:`conflict_time`): both boxes projected at constant velocity (the ego straight along
   its heading at its current speed, the hazard at its current velocity), the hazard's box taken as its
   axis-aligned extent in the ego frame, both grown by :attr:`Reaction.margin_m`; the conflict time is the first
   time [s] at which they overlap, ``inf`` when they do not within the horizon.
3. **Reaction.** Once the seen hazard's conflict time falls to :attr:`Reaction.trigger_s` or below (frame ``k_p``)
   while a *stopped* ego would not be hit within :attr:`Reaction.release_s` (the same projection with the ego's
   speed 0: where stopping leaves the ego in the hazard's way, e.g. a left turn already across the oncoming lane,
   slowing does not open the gap and the ego keeps going),
   the ego starts braking :attr:`Reaction.delay_s` later (perception and reaction delay), its acceleration moving
   towards ``-decel`` at most ``jerk`` [m/s^3] (easing off to 0 once the speed is what that ramp sheds,
   ``a^2 / (2 jerk)``, so that a stop keeps the jerk bound too); it keeps braking (to a stop if need be) until the projected conflict
   within :attr:`Reaction.release_s` clears (or a stopped ego would be hit) and it has braked for
   :attr:`Reaction.min_hold_s`, then resumes: it
   tracks the speed its plan had at the same arc length (never faster), accelerating at most
   :attr:`Reaction.resume_accel`, same jerk bound; a conflict while resuming brakes it again at once (the hazard is
   tracked: no new delay).

Until ``k_p + delay`` the log is the plan, bit for bit; a hazard never seen, or never projected into a conflict,
leaves the log unchanged. The bounds (``decel`` 3.0 m/s^2, ``jerk`` 3.5 m/s^3, ``resume_accel`` 1.0 m/s^2) lie inside
the PDM scorer's comfort bounds (longitudinal acceleration -4.05 .. 2.40 m/s^2, jerk 4.13 m/s^3) and the bank's
validity checks (``tests/test_bank.py``); with 3.5 m/s^2 the scorer's tracked 4 s trajectories overshot -4.05 m/s^2
on 28 of 680 braking frames (red-light runners, occluded pedestrians) whose logged-expert frames were comfortable, at
3.0 m/s^2 on none (``tests/test_bank_react.py`` pins comfort).

The outcome solver (:func:`envs.scenes.bank.outcomes.vary`) recomputes the reaction for every candidate hazard (the
reaction depends on the hazard's motion) and VERIFIES the outcome on the reacted log. In collision scenes the ego is
the **inattentive driver** of the colliding draw (no reaction; see :mod:`envs.scenes.bank.outcomes`).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from envs.scenes.bank.actors import Actor, EgoTrack, corners_of
from envs.scenes.bank.motion import DT
from rewards.geometry import segment_intersects_box

EXPERTS = ("logged", "reacting")
"""``ScenarioBank(expert=...)`` of the varied bank: ``"logged"`` (default: the speed plan, never reacting) or
``"reacting"`` (:func:`react`)."""


@dataclass(frozen=True)
class Reaction:
    """Parameters of the reacting expert's rule (module docstring)."""

    sight_range_m: float = 50.0
    """The hazard is seen within this distance of the ego's box centre [m] (and with a clear sight line)."""
    trigger_s: float = 3.0
    """The ego reacts once the seen hazard's projected conflict time is at most this [s]."""
    release_s: float = 4.0
    """Braking ends once no conflict is projected within this horizon [s] (hysteresis over ``trigger_s``)."""
    margin_m: float = 1.0
    """Both boxes are grown by this much for the projected conflict [m] (a projected pass closer than it is a
    conflict, as the decision labels' 1 m near-miss gap)."""
    delay_s: float = 0.5
    """Perception and reaction delay from the trigger to the start of braking [s]."""
    decel: float = 3.0
    """Braking deceleration [m/s^2]."""
    jerk: float = 3.5
    """Largest change of the acceleration per second [m/s^3] (braking onset, release and resume)."""
    resume_accel: float = 1.0
    """Largest acceleration while resuming [m/s^2]."""
    min_hold_s: float = 0.5
    """Shortest braking phase [s]."""
    track_gain: float = 2.0
    """Resuming: acceleration command ``track_gain * (v_plan(s) - v)`` [1/s] (clipped)."""


REACTION = Reaction()
"""The bank's reacting expert."""


@dataclass(frozen=True)
class ReactionFacts:
    """What the reacting expert did: the frames (None when it never reacted) and its lowest speed [m/s]."""

    perceived_frame: int | None
    brake_frame: int | None
    min_speed: float

    def to_meta(self) -> dict:
        """``meta.extra["reaction"]``: ``{"perceived_frame", "brake_frame", "min_speed_mps"}``."""
        return {"perceived_frame": self.perceived_frame, "brake_frame": self.brake_frame,
                "min_speed_mps": round(self.min_speed, 3)}


def conflict_time(rx, ry, ux, uy, half_x, half_y, horizon: float):
    """First time [s] in ``[0, horizon]`` at which a point at ``(rx, ry)`` moving at ``(ux, uy)`` [m, m/s] enters the
    rectangle ``|x| <= half_x, |y| <= half_y`` [m], ``inf`` when it does not (slab method; numpy arrays broadcast).

    In the rule: the hazard's box centre relative to the ego's, in the ego frame, and the Minkowski sum of the two
    (grown) boxes."""
    rx, ry, ux, uy = (np.asarray(a, dtype=np.float64) for a in (rx, ry, ux, uy))
    with np.errstate(divide="ignore", invalid="ignore"):
        lo_x, hi_x = _slab(rx, ux, half_x)
        lo_y, hi_y = _slab(ry, uy, half_y)
    enter = np.maximum(np.maximum(lo_x, lo_y), 0.0)
    leave = np.minimum(hi_x, hi_y)
    return np.where((enter <= leave) & (enter <= horizon), enter, np.inf)


def _slab(r: np.ndarray, u: np.ndarray, half) -> tuple[np.ndarray, np.ndarray]:
    """Time interval ``(lo, hi)`` during which ``|r + u t| <= half`` (``(-inf, inf)`` or empty when ``u == 0``)."""
    still = np.abs(u) < 1e-9
    inside = np.abs(r) <= half
    t1 = (-half - r) / np.where(still, 1.0, u)
    t2 = (half - r) / np.where(still, 1.0, u)
    lo = np.where(still, np.where(inside, -np.inf, np.inf), np.minimum(t1, t2))
    hi = np.where(still, np.where(inside, np.inf, -np.inf), np.maximum(t1, t2))
    return lo, hi


def _conflict_scalar(rx: float, ry: float, ux: float, uy: float, half_x: float, half_y: float,
                     horizon: float) -> float:
    """:func:`conflict_time` for Python floats (the reaction loop's inner step; the same arithmetic)."""
    lo, hi = -math.inf, math.inf
    for r, u, half in ((rx, ux, half_x), (ry, uy, half_y)):
        if abs(u) < 1e-9:
            if abs(r) > half:
                return math.inf
            continue
        t1, t2 = (-half - r) / u, (half - r) / u
        lo, hi = max(lo, min(t1, t2)), min(hi, max(t1, t2))
    enter = max(lo, 0.0)
    return enter if enter <= hi and enter <= horizon else math.inf


class _Hazard:
    """The hazard's per-frame state as Python lists: box centres, velocities (central differences), and the
    half-sizes of the Minkowski rectangle seen from an ego with heading ``h`` (:meth:`halves`)."""

    def __init__(self, hazard: Actor, ego_length: float, ego_width: float, margin: float) -> None:
        poses = hazard.poses
        vel = np.gradient(poses[:, :2], DT, axis=0)
        self.x, self.y, self.h = poses[:, 0].tolist(), poses[:, 1].tolist(), poses[:, 2].tolist()
        self.vx, self.vy = vel[:, 0].tolist(), vel[:, 1].tolist()
        self.hl, self.hw = 0.5 * hazard.length, 0.5 * hazard.width
        self.ex, self.ey = 0.5 * ego_length + margin, 0.5 * ego_width + margin
        self.poses, self.vel = poses, vel

    def halves(self, dh):
        """Half sizes ``(x, y)`` [m] of the grown Minkowski rectangle for a relative heading ``dh`` [rad]."""
        c, s = abs(np.cos(dh)), abs(np.sin(dh))
        return self.ex + c * self.hl + s * self.hw, self.ey + s * self.hl + c * self.hw


def _relative(hz: _Hazard, k, cx, cy, h, v):
    """Hazard centre and velocity relative to an ego box centre ``(cx, cy)`` with heading ``h`` and speed ``v``, in
    the ego frame (arrays over frames ``k``)."""
    c, s = np.cos(h), np.sin(h)
    dx, dy = hz.poses[k, 0] - cx, hz.poses[k, 1] - cy
    ux, uy = hz.vel[k, 0] - v * c, hz.vel[k, 1] - v * s
    return c * dx + s * dy, -s * dx + c * dy, c * ux + s * uy, -s * ux + c * uy


def seen_frames(ego: EgoTrack, hazard: Actor, occluders: Sequence[Actor] = (), config: Reaction = REACTION) -> np.ndarray:
    """``(T,)`` bool: the hazard is within sight range of the ego's box centre and no occluder box crosses the sight
    line (box centre to box centre) at that frame."""
    eye = ego.centres[:, :2]
    target = hazard.poses[:, :2]
    seen = np.hypot(*(target - eye).T) <= config.sight_range_m
    for occ in occluders:
        seen &= ~segment_intersects_box(eye, target, occ.corners())
    return seen


def react(ego: EgoTrack, hazard: Actor, occluders: Sequence[Actor] = (),
          config: Reaction = REACTION) -> tuple[EgoTrack, ReactionFacts]:
    """The ego re-timed by the reacting rule against ``hazard`` (module docstring).

    Args:
        ego: the planned ego (its log when nothing is seen), ``s (T,)`` [m] along ``ego.path``.
        hazard: the hazard agent (box-centre poses ``(T, 3)``).
        occluders: agents that block the sight line (the scenario's props).
        config: the rule's parameters.

    Returns:
        ``(ego, facts)``: the reacted ego (``ego`` itself when it never reacts) and what it did.
    """
    s_plan = np.asarray(ego.s, dtype=np.float64)
    n = len(s_plan)
    v_plan = np.diff(s_plan) / DT  # (T-1,) speed of each step [m/s]
    hz = _Hazard(hazard, ego.params.length, ego.params.width, config.margin_m)
    seen = seen_frames(ego, hazard, occluders, config)
    if not seen.any():
        return ego, ReactionFacts(None, None, float(v_plan.min()))
    first_seen = int(np.argmax(seen))
    k = np.arange(first_seen, n)
    centres = ego.centres[k]
    speed = np.concatenate([v_plan, v_plan[-1:]])[k]
    rx, ry, ux, uy = _relative(hz, k, centres[:, 0], centres[:, 1], centres[:, 2], speed)
    hx, hy = hz.halves(hz.poses[k, 2] - centres[:, 2])
    _, _, sx, sy = _relative(hz, k, centres[:, 0], centres[:, 1], centres[:, 2], 0.0)
    closing = conflict_time(rx, ry, ux, uy, hx, hy, config.trigger_s) <= config.trigger_s
    hit_if_stopped = np.isfinite(conflict_time(rx, ry, sx, sy, hx, hy, config.release_s))
    hits = np.flatnonzero(closing & ~hit_if_stopped)
    if not len(hits):
        return ego, ReactionFacts(None, None, float(v_plan.min()))
    k_p = first_seen + int(hits[0])
    k_b = k_p + int(round(config.delay_s / DT))
    if k_b >= n - 1 or k_b < 1:
        return ego, ReactionFacts(k_p, None, float(v_plan.min()))
    s_new = _loop(ego, hz, s_plan, v_plan, k_b, config)
    reacted = replace(ego, s=s_new)
    return reacted, ReactionFacts(k_p, k_b, float((np.diff(s_new) / DT).min()))


def _loop(ego: EgoTrack, hz: _Hazard, s_plan: np.ndarray, v_plan: np.ndarray, k_b: int, config: Reaction) -> np.ndarray:
    """Arc lengths ``(T,)`` [m] of the reacting ego from its braking onset ``k_b`` on (frames before: the plan)."""
    path, lateral = ego.path, ego.lateral
    ps, px, py = path.s.tolist(), path.points[:, 0].tolist(), path.points[:, 1].tolist()
    mid, heads = path.mid_s.tolist(), path.headings.tolist()
    plan_s, plan_v = s_plan[:-1].tolist(), v_plan.tolist()
    lat = None if lateral is None else np.asarray(lateral, dtype=np.float64).tolist()
    to_centre = ego.params.rear_axle_to_center
    n = len(s_plan)
    out = s_plan.copy()
    s = float(s_plan[k_b])
    v = float(v_plan[k_b - 1])
    a = float(v_plan[k_b] - v_plan[k_b - 1]) / DT if k_b < n - 1 else 0.0
    a = min(max(a, -config.decel), config.resume_accel)
    dj = config.jerk * DT
    braking, held = True, 0
    hold = int(round(config.min_hold_s / DT))
    for k in range(k_b, n - 1):
        x, y, h = _pose(s, ps, px, py, mid, heads)
        if lat is not None:
            x, y = x - math.sin(h) * lat[k], y + math.cos(h) * lat[k]
        cx, cy = x + to_centre * math.cos(h), y + to_centre * math.sin(h)
        c, sn = math.cos(h), math.sin(h)
        dx, dy = hz.x[k] - cx, hz.y[k] - cy
        ux, uy = hz.vx[k] - v * c, hz.vy[k] - v * sn
        dh = hz.h[k] - h
        ac, asn = abs(math.cos(dh)), abs(math.sin(dh))
        half_x = hz.ex + ac * hz.hl + asn * hz.hw
        half_y = hz.ey + asn * hz.hl + ac * hz.hw
        horizon = config.release_s if braking else config.trigger_s
        rx, ry = c * dx + sn * dy, -sn * dx + c * dy
        ttc = _conflict_scalar(rx, ry, c * ux + sn * uy, -sn * ux + c * uy, half_x, half_y, horizon)
        if math.isfinite(ttc):  # would a stopped ego be hit? then braking does not open the gap: keep going
            hvx, hvy = hz.vx[k], hz.vy[k]
            stopped = _conflict_scalar(rx, ry, c * hvx + sn * hvy, -sn * hvx + c * hvy, half_x, half_y,
                                       config.release_s)
            if math.isfinite(stopped):
                ttc = math.inf
        if braking:
            held += 1
            if held > hold and math.isinf(ttc):
                braking = False
        elif ttc <= config.trigger_s:
            braking, held = True, 0
        if braking:  # (easing off near standstill: the speed an acceleration a sheds at the jerk bound is a^2 / 2j)
            harder = max(a - dj, -config.decel)  # braking one more step, then easing off: does it stop in time?
            a_cmd = 0.0 if v < -harder * DT + _shed(harder, dj) else -config.decel
        else:
            i = bisect_right(plan_s, s) - 1
            v_goal = plan_v[min(max(i, 0), len(plan_v) - 1)]
            a_cmd = min(max(config.track_gain * (v_goal - v), -config.decel), config.resume_accel)
        a += min(max(a_cmd - a, -dj), dj)
        v_new = v + a * DT
        if v_new <= 0.0:
            v_new, a = 0.0, 0.0
        s += 0.5 * (v + v_new) * DT
        v = v_new
        out[k + 1] = s
    return out


def _shed(a: float, dj: float) -> float:
    """Speed [m/s] an acceleration ``a < 0`` sheds while it returns to 0 by ``dj`` per step (the discrete
    ``a^2 / (2 jerk)``)."""
    if a >= 0.0:
        return 0.0
    steps = math.ceil(-a / dj - 1e-9)
    return DT * (steps * -a - dj * steps * (steps + 1) / 2.0)


def _pose(s: float, ps: list, px: list, py: list, mid: list, heads: list) -> tuple[float, float, float]:
    """Rear-axle pose ``(x, y, heading)`` at arc length ``s`` on a path given as lists (as
    :meth:`envs.scenes.layouts.Path.poses`: linear between vertices, headings between segment midpoints, straight
    beyond the ends)."""
    last = len(ps) - 1
    if s <= 0.0:
        h = heads[0]
        return px[0] + s * math.cos(h), py[0] + s * math.sin(h), h
    if s >= ps[last]:
        h = heads[-1]
        e = s - ps[last]
        return px[last] + e * math.cos(h), py[last] + e * math.sin(h), h
    i = bisect_right(ps, s) - 1
    f = (s - ps[i]) / (ps[i + 1] - ps[i])
    x, y = px[i] + f * (px[i + 1] - px[i]), py[i] + f * (py[i + 1] - py[i])
    j = bisect_right(mid, s) - 1
    if j < 0:
        h = heads[0]
    elif j >= len(mid) - 1:
        h = heads[-1]
    else:
        g = (s - mid[j]) / (mid[j + 1] - mid[j])
        h = heads[j] + g * (heads[j + 1] - heads[j])
    return x, y, h


def min_gap_track(ego: EgoTrack, hazard: Actor) -> tuple[float, int]:
    """``(gap, frame)``: the smallest box gap [m] between the two logs and its first frame, as
    ``box_distance(ego.corners(), hazard.corners())`` gives it, evaluated only at the frames whose centre distance
    can hold the minimum (a gap lies between the centre distance less both half diagonals and the centre distance)."""
    from rewards.geometry import box_distance

    ec, hc = ego.centres, hazard.poses
    d = np.hypot(ec[:, 0] - hc[:, 0], ec[:, 1] - hc[:, 1])
    r = 0.5 * (math.hypot(ego.params.length, ego.params.width) + math.hypot(hazard.length, hazard.width))
    idx = np.flatnonzero(d - r <= d.min())
    gaps = box_distance(corners_of(ec[idx], ego.params.length, ego.params.width),
                        corners_of(hc[idx], hazard.length, hazard.width))
    j = int(np.argmin(gaps))
    return float(gaps[j]), int(idx[j])

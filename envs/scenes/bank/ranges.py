"""Parameter ranges of the bank's accident typologies, defined once: the synthetic builders
(:mod:`envs.scenes.bank.road_accidents`, :mod:`envs.scenes.bank.junction_accidents`) draw from these objects, and so
do the CARLA scenarios (:mod:`envs.carla.scenarios`), which place the same typologies on a town's waypoints.

A :class:`Range` ``(lo, hi)`` is drawn as ``rng.uniform(lo, hi)`` (:meth:`Range.draw`); one frozen dataclass per
typology holds its speeds, accelerations, gaps, timings and probabilities (units in each field's docstring), with one
module-level instance per typology (:data:`REAR_END`, ...; :data:`TYPOLOGY_RANGES` by scenario type). What is
specific to where a scene is placed stays with its placer: the bank's lanes, start positions and target contact
frames in the builders, the CARLA scenarios' kerb offsets and their own speeds where they differ (named there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


class Range(NamedTuple):
    """A uniform range ``[lo, hi]`` (units: those of the field holding it)."""

    lo: float
    hi: float

    def draw(self, rng: np.random.Generator, scale: float = 1.0) -> float:
        """``rng.uniform(lo * scale, hi * scale)`` (one draw; ``scale`` 1 leaves the bounds bit-identical)."""
        return rng.uniform(self.lo * scale, self.hi * scale)

    def contains(self, value: float, scale: float = 1.0, tol: float = 1e-9) -> bool:
        """Whether ``value`` lies in ``[lo * scale, hi * scale]`` (within ``tol``)."""
        return self.lo * scale - tol <= value <= self.hi * scale + tol


@dataclass(frozen=True)
class EgoSpeedPlan:
    """The ego's speed plan (:func:`envs.scenes.bank.motion.speed_caps` / ``speed_plan``: cruise, slowing for
    curves) in the bank's junction typologies and along every CARLA scenario route."""

    a_down: Range = Range(1.8, 2.8)
    """Braking towards a lower cap [m/s^2]."""
    a_lat: Range = Range(2.5, 3.2)
    """Lateral-acceleration cap in curves [m/s^2]."""
    a_up: Range = Range(0.8, 1.5)
    """Acceleration towards a higher cap [m/s^2]."""
    caps_brake_fraction: float = 0.9
    """The speed caps assume this fraction of ``a_down``."""


@dataclass(frozen=True)
class RearEnd:
    """``rear_end``: the lead ahead in the ego lane brakes hard (to a stop or a crawl)."""

    v_ego: Range = Range(9.0, 13.5)
    """Ego speed [m/s]."""
    lead_slower: Range = Range(0.0, 1.0)
    """Ego speed minus the lead's speed before braking [m/s]."""
    lead_decel: Range = Range(4.5, 7.5)
    """The lead's deceleration [m/s^2]."""
    p_stop: float = 0.6
    """Probability that the lead brakes to a stop (else to a crawl)."""
    crawl_fraction: Range = Range(0.0, 0.4)
    """Crawl end speed as a fraction of the lead's initial speed."""
    gap_headway: Range = Range(0.9, 1.8)
    """Bumper gap when the lead starts braking, as time at the ego speed [s] (at least ``min_gap``)."""
    min_gap: float = 4.0
    """Smallest bumper gap when the lead starts braking [m]."""
    release_floor: Range = Range(0.3, 0.7)
    """Outcome-varied bank, near-miss / benign draws: the lead brakes (at ``lead_decel``) to this fraction of its
    speed (bank only) ..."""
    release_accel: Range = Range(2.0, 3.5)
    """... then drives on at this acceleration [m/s^2] (bank only) ..."""
    release_speed_gain: Range = Range(0.5, 2.0)
    """... up to the ego speed plus this much [m/s] (bank only)."""


@dataclass(frozen=True)
class CutIn:
    """``cut_in``: a slower vehicle changes into the ego lane just ahead (braking after it half the time)."""

    p_from_left: float = 0.5
    """Probability that the cutter comes from the left lane."""
    v_ego: Range = Range(9.0, 13.5)
    """Ego speed [m/s]."""
    cutter_slower: Range = Range(2.0, 5.0)
    """Ego speed minus the cutter's speed [m/s] (the cutter drives at least ``min_cutter_speed``)."""
    min_cutter_speed: float = 4.0
    """[m/s]."""
    p_brake: float = 0.5
    """Probability that the cutter brakes after the lane change."""
    cutter_decel: Range = Range(1.0, 3.0)
    """Its deceleration when it brakes [m/s^2]."""
    brake_speed_drop: float = 4.0
    """It brakes by this much [m/s] ..."""
    min_end_speed: float = 2.0
    """... to at least this speed [m/s]."""
    lane_change_time: Range = Range(2.0, 3.5)
    """Duration of the lane change [s]."""
    gap_end: Range = Range(1.0, 7.0)
    """Bumper gap when the lane change ends [m]."""
    release_accel: Range = Range(2.0, 3.5)
    """Outcome-varied bank, near-miss / benign draws: the cutter speeds up from the end of its lane change at this
    acceleration [m/s^2] (bank only) ..."""
    release_speed_gain: Range = Range(0.5, 2.0)
    """... to the ego speed plus this much [m/s] (bank only)."""


@dataclass(frozen=True)
class PedestrianOccluded:
    """``pedestrian_occluded``: a pedestrian steps onto the road from behind a parked vehicle."""

    v_ego: Range = Range(8.0, 13.0)
    """Ego speed [m/s]."""
    p_child: float = 0.25
    """Probability that the pedestrian is a running child."""
    v_child: Range = Range(2.2, 3.0)
    """A child's speed [m/s]."""
    v_adult: Range = Range(1.2, 2.0)
    """An adult's walking speed [m/s]."""
    accel: Range = Range(1.5, 3.0)
    """The pedestrian's acceleration from standstill [m/s^2]."""
    arrival_jitter: Range = Range(-0.2, 0.25)
    """The pedestrian reaches the ego's path this long after the ego's nominal contact time [s]."""
    occluder_gap: Range = Range(0.4, 1.5)
    """Gap between the parked occluder's front and the pedestrian [m]."""


@dataclass(frozen=True)
class HeadOnDrift:
    """``head_on_drift``: one vehicle drifts out of its lane into the oncoming one (in the bank the ego drifts, in
    CARLA the oncoming vehicle)."""

    v_ego: Range = Range(8.0, 13.0)
    """Ego speed [m/s]."""
    v_oncoming: Range = Range(8.0, 13.0)
    """Oncoming vehicle's speed [m/s]."""
    final_drift: Range = Range(2.8, 3.6)
    """Lateral drift at the drift's end [m]."""
    contact_drift: Range = Range(1.9, 3.0)
    """Lateral drift at contact [m] (the upper bound capped at the drawn ``final_drift``)."""
    drift_time: Range = Range(3.0, 5.0)
    """Duration of the drift [s]."""
    overlap: Range = Range(0.2, 1.0)
    """Longitudinal overlap of the two fronts at contact [m]."""


@dataclass(frozen=True)
class RedLightRunner:
    """``red_light_runner_left`` / ``_right``: the ego crosses on green; a crossing vehicle runs its red light."""

    v_ego: Range = Range(8.0, 13.5)
    """Ego cruise speed [m/s]."""
    v_runner: Range = Range(9.0, 14.0)
    """Runner's speed [m/s]."""
    arrival_jitter: Range = Range(-0.25, 0.25)
    """The runner reaches the conflict point this long after the ego [s]."""


@dataclass(frozen=True)
class UnprotectedLeftTurn:
    """``unprotected_left_turn``: the ego turns left on a permissive green across an oncoming vehicle."""

    v_ego: Range = Range(8.0, 12.0)
    """Ego cruise speed [m/s] (the bank's; the CARLA scenario drives slower, ``envs.carla.scenarios``)."""
    v_oncoming: Range = Range(8.0, 13.0)
    """Oncoming vehicle's speed [m/s]."""
    arrival_jitter: Range = Range(-0.2, 0.2)
    """The oncoming vehicle reaches the conflict point this long after the ego [s]."""


@dataclass(frozen=True)
class RightTurnVru:
    """``right_turn_vru``: the ego turns right across a pedestrian or cyclist crossing its exit lane."""

    v_ego: Range = Range(8.0, 12.0)
    """Ego cruise speed [m/s] (the bank's; the CARLA scenario drives slower, ``envs.carla.scenarios``)."""
    v_pedestrian: Range = Range(1.2, 2.0)
    """Pedestrian's walking speed [m/s]."""
    pedestrian_accel: Range = Range(1.5, 3.0)
    """Pedestrian's acceleration from standstill [m/s^2]."""
    v_cyclist: Range = Range(3.0, 5.5)
    """Cyclist's speed [m/s] (bank only)."""
    cyclist_accel: Range = Range(1.0, 2.0)
    """Cyclist's acceleration from standstill [m/s^2] (bank only)."""
    arrival_jitter: Range = Range(-0.3, 0.2)
    """The VRU reaches the conflict point this long after the ego [s]."""


@dataclass(frozen=True)
class MergeConflict:
    """``merge_conflict`` (bank only: CARLA towns are not searched for on-ramps)."""

    v_ego: Range = Range(10.0, 13.5)
    """Ego speed [m/s]."""
    main_speed_offset: Range = Range(-0.5, 2.0)
    """``ego_merges``: main-road vehicle's speed minus the ego's [m/s]."""
    main_lead: Range = Range(-0.5, 3.0)
    """``ego_merges``: main-road vehicle's box centre ahead of the ego's when they align [m]."""
    ramp_slower: Range = Range(2.0, 5.0)
    """``ramp_vehicle_merges``: ego speed minus the ramp vehicle's [m/s]."""
    ramp_overlap: Range = Range(0.1, 0.6)
    """``ramp_vehicle_merges``: the ramp vehicle's rear overlaps the ego's front by this much at contact [m]."""


EGO_SPEED_PLAN = EgoSpeedPlan()
REAR_END = RearEnd()
CUT_IN = CutIn()
PEDESTRIAN_OCCLUDED = PedestrianOccluded()
HEAD_ON_DRIFT = HeadOnDrift()
RED_LIGHT_RUNNER = RedLightRunner()
UNPROTECTED_LEFT_TURN = UnprotectedLeftTurn()
RIGHT_TURN_VRU = RightTurnVru()
MERGE_CONFLICT = MergeConflict()

TYPOLOGY_RANGES = {
    "rear_end": REAR_END,
    "cut_in": CUT_IN,
    "pedestrian_occluded": PEDESTRIAN_OCCLUDED,
    "head_on_drift": HEAD_ON_DRIFT,
    "merge_conflict": MERGE_CONFLICT,
    "red_light_runner_left": RED_LIGHT_RUNNER,
    "red_light_runner_right": RED_LIGHT_RUNNER,
    "unprotected_left_turn": UNPROTECTED_LEFT_TURN,
    "right_turn_vru": RIGHT_TURN_VRU,
}
"""The ranges of every accident type (:data:`envs.scenes.bank.ACCIDENT_TYPES`)."""

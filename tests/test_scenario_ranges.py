"""The CARLA scenarios and the synthetic bank draw each accident typology's parameters from the same range objects
(:mod:`envs.scenes.bank.ranges`): the modules bind the very objects, and with a typology's ranges collapsed to their
midpoints (probabilities set to 1) the CARLA scenario's sampled parameters land there and every other uniform draw it
makes is one of CARLA's own placement ranges (no copied literal left behind)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from envs.carla import scenarios, standin
from envs.carla.connection import carla_module
from envs.scenes.bank import junction_accidents, ranges, road_accidents
from envs.scenes.bank.ranges import Range

CARLA_TYPOLOGIES = {
    "rear_end": "REAR_END", "cut_in": "CUT_IN", "pedestrian_occluded": "PEDESTRIAN_OCCLUDED",
    "head_on_drift": "HEAD_ON_DRIFT", "red_light_runner_left": "RED_LIGHT_RUNNER",
    "red_light_runner_right": "RED_LIGHT_RUNNER", "unprotected_left_turn": "UNPROTECTED_LEFT_TURN",
    "right_turn_vru": "RIGHT_TURN_VRU",
}
"""CARLA scenario type -> the name of its ranges in :mod:`envs.scenes.bank.ranges`."""
JUNCTION_TYPES = ("red_light_runner_left", "red_light_runner_right", "unprotected_left_turn", "right_turn_vru")


def _mid(r: Range) -> float:
    return 0.5 * (r.lo + r.hi)


def _collapsed(obj):
    """A copy of a ranges dataclass with every :class:`Range` collapsed to its midpoint and every probability
    ``p_*`` set to 1."""
    changes = {f.name: Range(_mid(v), _mid(v)) for f in dataclasses.fields(obj)
               if isinstance(v := getattr(obj, f.name), Range)}
    changes.update({f.name: 1.0 for f in dataclasses.fields(obj) if f.name.startswith("p_")})
    return dataclasses.replace(obj, **changes)


class _LoggedRng:
    """A generator that logs its ``uniform`` bounds (everything else passes through)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.bounds: list[tuple[float, float]] = []

    def uniform(self, lo, hi):
        self.bounds.append((float(lo), float(hi)))
        return self.rng.uniform(lo, hi)

    def __getattr__(self, name):
        return getattr(self.rng, name)


def test_the_carla_scenarios_and_the_bank_builders_bind_the_same_range_objects():
    assert set(CARLA_TYPOLOGIES) | {"normal"} == set(scenarios.SCENARIO_TYPES)
    for scenario_type, name in CARLA_TYPOLOGIES.items():
        shared = getattr(ranges, name)
        assert ranges.TYPOLOGY_RANGES[scenario_type] is shared
        assert getattr(scenarios, name) is shared, name
        builder = junction_accidents if scenario_type in JUNCTION_TYPES else road_accidents
        assert getattr(builder, name) is shared, name
    assert scenarios.EGO_SPEED_PLAN is ranges.EGO_SPEED_PLAN is junction_accidents.EGO_SPEED_PLAN
    assert road_accidents.MERGE_CONFLICT is ranges.MERGE_CONFLICT


def _expected(scenario_type: str, r) -> dict[str, float]:
    """The plan parameters that follow from the collapsed ranges ``r`` (given the plan's discrete draws)."""
    v_ego = _mid(r.v_ego)
    if scenario_type == "rear_end":
        v_lead = v_ego - _mid(r.lead_slower)
        return {"v_ego": v_ego, "v_lead": v_lead, "lead_decel": _mid(r.lead_decel), "lead_end_speed": 0.0,
                "gap_at_brake": max(r.min_gap, _mid(r.gap_headway) * v_ego)}
    if scenario_type == "cut_in":
        return {"v_ego": v_ego, "v_cutter": max(v_ego - _mid(r.cutter_slower), r.min_cutter_speed),
                "cutter_decel": _mid(r.cutter_decel), "cut_in_side": "left", "lane_change_s": _mid(r.lane_change_time),
                "gap_end": _mid(r.gap_end)}
    if scenario_type == "pedestrian_occluded":
        return {"v_ego": v_ego, "child": True, "v_pedestrian": _mid(r.v_child), "pedestrian_accel": _mid(r.accel)}
    if scenario_type == "head_on_drift":
        return {"v_ego": v_ego, "v_oncoming": _mid(r.v_oncoming), "drift_s": _mid(r.drift_time),
                "drift_at_contact": min(_mid(r.contact_drift), _mid(r.final_drift))}
    if scenario_type.startswith("red_light_runner"):
        return {"v_ego": v_ego, "v_runner": _mid(r.v_runner)}
    if scenario_type == "unprotected_left_turn":
        return {"v_oncoming": _mid(r.v_oncoming)}
    return {"v_pedestrian": _mid(r.v_pedestrian), "pedestrian_accel": _mid(r.pedestrian_accel)}


@pytest.mark.parametrize("scenario_type", sorted(CARLA_TYPOLOGIES))
def test_carla_scenario_parameters_come_from_the_bank_ranges(monkeypatch, scenario_type):
    name = CARLA_TYPOLOGIES[scenario_type]
    collapsed = _collapsed(getattr(ranges, name))
    monkeypatch.setattr(scenarios, name, collapsed)
    monkeypatch.setattr(scenarios, "EGO_SPEED_PLAN", _collapsed(ranges.EGO_SPEED_PLAN))
    town = "Standin_junction_2x2" if scenario_type in JUNCTION_TYPES else "Standin_straight"
    carla, carla_map, places = carla_module("standin"), standin.Map(town), {}
    # CARLA's own uniform ranges: the turning ego's speed, the pedestrian's and the exit point's placement, kerb offsets
    own = {tuple(scenarios.TURN_EGO_SPEED), (0.0, 0.5 * scenarios.EGO_LENGTH), (2.5, 3.5), (3.0, 6.0), (2.0, 3.0)}
    for seed in range(3):
        rng = _LoggedRng(seed)
        plan = scenarios.plan_scenario(carla, carla_map, scenario_type, rng, 2.0, 3.0, 12.0, places=places)
        expected = _expected(scenario_type, collapsed)
        got = {k: plan.params[k] for k in expected}
        assert got == pytest.approx(expected, abs=1e-9), (scenario_type, seed)
        literal = sorted({b for b in rng.bounds if b[0] != b[1] and b not in own})
        assert not literal, f"{scenario_type} draws uniform ranges that are not the bank's: {literal}"
        if scenario_type.startswith("red_light_runner"):
            assert plan.params["runner_arrival"] == pytest.approx(plan.contact_time + _mid(collapsed.arrival_jitter))

"""Sampled decision frames (:func:`counterfactual.frame_labels.sample_frames`) on the outcome-varied bank
(SYNTHETIC): the ``"even"`` rule is unchanged (frames pinned from main before the option existed), the
``"hazard_window"`` rule concentrates the frames around the hazard's closest approach to the ego (found here by an
independent shapely pass over the logs, scenes chosen by their meta outcome, never by id), and the option reaches
the SFT rows and the label-honesty audit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from agents.sft.data import SampleConfig, build_sample_table, expert_frames
from counterfactual.audit import honesty_records, main as audit_main
from counterfactual.frame_labels import WindowConfig, closest_approach, hazard_window, safe_log_frames, sample_frames
from envs.observation import ObservationConfig
from envs.render import BEVConfig
from envs.scenes.bank import ScenarioBank
from rewards.geometry import rear_axle_to_center


@pytest.fixture(scope="module")
def bank():
    return ScenarioBank(8, seed=5, outcomes="varied")


def _poly(x, y, yaw, length, width):
    c, s = math.cos(yaw), math.sin(yaw)
    return shapely.Polygon([(x + c * dx - s * dy, y + s * dx + c * dy)
                            for dx, dy in ((length / 2, width / 2), (-length / 2, width / 2),
                                           (-length / 2, -width / 2), (length / 2, -width / 2))])


def brute_closest_frame(scene, agent_id):
    """Frame of the smallest ego-agent box gap of the logs (shapely polygons, first frame on ties)."""
    i = int(np.flatnonzero(np.asarray(scene.agent_ids) == agent_id)[0])
    ego = rear_axle_to_center(scene.ego_poses, scene.ego_params)
    length, width = scene.agent_sizes[i]
    gaps = [_poly(*ego[t], scene.ego_params.length, scene.ego_params.width).distance(
        _poly(*scene.agent_poses[i, t], length, width)) if scene.agent_valid[i, t] else math.inf
        for t in range(scene.num_frames)]
    return int(np.argmin(np.round(gaps, 6)))


def test_even_rule_is_unchanged(bank):
    # pinned from main (f3a6f88), before the rule had an option
    assert {i: sample_frames(bank[i]) for i in range(4)} == {0: [20, 30, 50, 60], 1: [], 2: [20, 30, 50, 60], 3: []}
    assert {i: sample_frames(bank[i], per_scene=2) for i in range(4)} == {0: [20, 60], 1: [], 2: [20, 60], 3: []}
    assert sample_frames(bank[0], sampling="even") == sample_frames(bank[0])
    default = ScenarioBank(1, seed=5)
    assert sample_frames(default[0]) == [20, 30, 50, 60]


def test_hazard_window_runs_on_the_default_collision_bank():
    default = ScenarioBank(3, seed=5)  # every accident collides; the hazard is meta.colliding_agent_id
    for i in range(len(default)):
        scene = default[i]
        frames = sample_frames(scene, sampling="hazard_window")
        assert frames == sorted(frames) and len(frames) >= len(sample_frames(scene))
        assert safe_log_frames(scene, frames) == frames  # safe frames only
        if scene.meta.is_accident:
            assert closest_approach(scene) == (scene.meta.colliding_agent_id, scene.meta.collision_frame)


def test_hazard_window_picks_frames_around_the_closest_approach(bank):
    window = WindowConfig()
    checked = 0
    for i in range(len(bank)):
        scene = bank[i]
        hazard = scene.meta.extra.get("hazard_agent_id")
        if hazard is None or scene.meta.extra.get("outcome") == "collision":
            continue
        agent, frame = closest_approach(scene)
        assert agent == hazard
        assert abs(frame - brute_closest_frame(scene, hazard)) <= 1
        first, last = hazard_window(scene, window)
        assert (first, last) == (max(0, frame - round(window.before_s / scene.dt)),
                                 min(scene.num_frames - 1, frame + round(window.after_s / scene.dt)))
        frames = sample_frames(scene, per_scene=4, sampling="hazard_window")
        assert frames == sorted(set(frames)) and len(frames) >= len(sample_frames(scene, per_scene=4))
        inside = [t for t in frames if first <= t <= last]
        start, end = round(2.0 / scene.dt), scene.num_frames - round(4.0 / scene.dt)  # history 2 s, future 4 s
        grid = set(range(start, end, round(1.0 / scene.dt))) | set(
            range(max(start, first), min(end, last + 1), round(window.stride_s / scene.dt)))
        n_inside_candidates = len(safe_log_frames(scene, sorted(t for t in grid if first <= t <= last)))
        assert len(inside) >= min(3, n_inside_candidates)  # 4 - round(0.25 * 4) window places
        if n_inside_candidates >= 3:
            checked += 1
    assert checked >= 2


def test_hazard_window_rule_keeps_frames_outside_and_rejects_bad_input(bank):
    scene = next(bank[i] for i in range(len(bank)) if bank[i].meta.extra.get("outcome") == "near_miss")
    first, last = hazard_window(scene)
    none_outside = sample_frames(scene, sampling="hazard_window", window=WindowConfig(outside_share=0.0))
    assert all(first <= t <= last for t in none_outside)
    all_outside = sample_frames(scene, sampling="hazard_window", window=WindowConfig(outside_share=1.0))
    outside = [t for t in sample_frames(scene, per_scene=100) if not first <= t <= last]
    assert sum(not first <= t <= last for t in all_outside) == min(4, len(outside))
    with pytest.raises(ValueError, match="sampling"):
        sample_frames(scene, sampling="window")
    with pytest.raises(ValueError, match="WindowConfig.before_s"):
        WindowConfig(before_s=-1.0)
    with pytest.raises(ValueError, match="WindowConfig.outside_share"):
        WindowConfig(outside_share=1.5)
    with pytest.raises(ValueError, match="SampleConfig.frame_sampling"):
        SampleConfig(frame_sampling="hazard")


def test_option_reaches_sft_rows_and_audit(bank):
    scene = next(bank[i] for i in range(len(bank)) if bank[i].meta.extra.get("outcome") == "near_miss")
    config = SampleConfig(frame_sampling="hazard_window", observation=ObservationConfig(
        bev=BEVConfig(height=16, width=16, meters_per_pixel=4.0, antialias=False)))
    want = sample_frames(scene, sampling="hazard_window")
    assert want != sample_frames(scene)  # the rule changes this scene's frames
    assert expert_frames(scene, config) == want
    assert [r["frame"] for r in build_sample_table([scene], [], config)] == want
    records = honesty_records([scene], [], frame_sampling="hazard_window")
    assert [r["frame"] for r in records] == want
    assert [r["frame"] for r in honesty_records([scene], [])] == sample_frames(scene)


def test_audit_cli_takes_the_option(capsys):
    assert audit_main(["--num-scenes", "4", "--seed", "3", "--outcomes", "varied", "--labels-only",
                       "--frame-sampling", "hazard_window", "--no-progress"]) == 0
    assert "chosen: hazard_window" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        audit_main(["--frame-sampling", "middle"])

"""Decision labels from the geometry at a frame (:mod:`counterfactual.frame_labels`), checked against an independent
shapely projection on the outcome-varied bank (SYNTHETIC): no hazard where nothing is projected near the ego, a
hazard for a near-miss in progress and for an early frame of an accident scene. Frames are chosen by that geometry,
scenes by their outcome in meta, never by id."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from counterfactual.frame_labels import FrameLabelConfig, frame_label, sample_frames
from counterfactual.language import NO_HAZARD_EXPLANATION, NO_HAZARD_FIELDS, parse_explanation
from envs.scenes.bank import ScenarioBank

HORIZON, STEP = 5.0, 0.1
GAP = FrameLabelConfig().conflict_gap_m


@pytest.fixture(scope="module")
def bank():
    return ScenarioBank(30, seed=5, outcomes="varied")


def _scenes(bank, outcome, accident_only=True):
    out = [bank[i] for i in range(len(bank)) if bank[i].meta.extra.get("outcome") == outcome]
    return [s for s in out if not accident_only or s.meta.extra.get("hazard_agent_id") is not None]


def _box(x, y, yaw, length, width):
    c, s = math.cos(yaw), math.sin(yaw)
    pts = [(x + c * dx - s * dy, y + s * dx + c * dy)
           for dx, dy in ((length / 2, width / 2), (-length / 2, width / 2), (-length / 2, -width / 2),
                          (length / 2, -width / 2))]
    return shapely.Polygon(pts)


def brute_projection(scene, t):
    """Independent projection: ``{agent_id: (first overlap tau or inf, min gap, tau of min gap)}``; the ego at its
    current speed along its logged path (arc length, straight on past the log), the agents at constant velocity."""
    poses = scene.ego_poses
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(poses[:, :2], axis=0).T))])
    yaw_log = np.unwrap(poses[:, 2])
    speed = float(np.dot(scene.ego_velocities[t], [math.cos(poses[t, 2]), math.sin(poses[t, 2])]))
    p = scene.ego_params
    out = {}
    taus = np.arange(int(round(HORIZON / STEP)) + 1) * STEP
    ego_boxes = []
    for tau in taus:
        s = arc[t] + abs(speed) * tau
        k = int(np.searchsorted(arc, s, side="right") - 1)
        if s >= arc[-1]:
            x = poses[-1, 0] + (s - arc[-1]) * math.cos(yaw_log[-1])
            y = poses[-1, 1] + (s - arc[-1]) * math.sin(yaw_log[-1])
            yaw = yaw_log[-1]
        else:
            k = max(k, t)
            while k + 1 < len(arc) and arc[k + 1] <= s:
                k += 1
            f = 0.0 if arc[k + 1] == arc[k] else (s - arc[k]) / (arc[k + 1] - arc[k])
            x = poses[k, 0] + f * (poses[k + 1, 0] - poses[k, 0])
            y = poses[k, 1] + f * (poses[k + 1, 1] - poses[k, 1])
            yaw = yaw_log[k] + f * (yaw_log[k + 1] - yaw_log[k])
        ego_boxes.append(_box(x + p.rear_axle_to_center * math.cos(yaw), y + p.rear_axle_to_center * math.sin(yaw), yaw,
                              p.length, p.width))
    for i in np.flatnonzero(scene.agent_valid[:, t]):
        (ax, ay, ayaw), (vx, vy) = scene.agent_poses[i, t], scene.agent_velocities[i, t]
        length, width = scene.agent_sizes[i]
        gaps = np.array([ego.distance(_box(ax + vx * tau, ay + vy * tau, ayaw, length, width))
                         for ego, tau in zip(ego_boxes, taus)])
        hit = np.flatnonzero(gaps <= 0.0)
        k = int(np.argmin(gaps))
        out[int(scene.agent_ids[i])] = (float(taus[hit[0]]) if len(hit) else math.inf, float(gaps[k]), float(taus[k]))
    return out


def _candidates(scene):
    return range(20, scene.num_frames - 40)


def test_benign_frame_has_no_hazard(bank):
    checked = 0
    for scene in _scenes(bank, "benign"):
        for t in _candidates(scene)[::10]:
            proj = brute_projection(scene, t)
            if all(math.isinf(ttc) and gap >= GAP + 0.2 for ttc, gap, _ in proj.values()):
                label = frame_label(scene, t)
                assert label.hazard is None and label.explanation == NO_HAZARD_EXPLANATION, (scene.scene_id, t)
                assert label.fields() == {k: NO_HAZARD_FIELDS[k] for k in label.fields()}
                checked += 1
    assert checked >= 3


def test_near_miss_in_progress_is_a_hazard(bank):
    found = 0
    for scene in _scenes(bank, "near_miss"):
        hazard = int(scene.meta.extra["hazard_agent_id"])
        for t in _candidates(scene):
            if not scene.agent_valid[scene.agent_index(hazard), t]:
                continue
            ttc, gap, when = brute_projection(scene, t)[hazard]
            if math.isinf(ttc) and 0.05 < gap < GAP - 0.2 and when >= 0.5:  # a close pass ahead, no contact
                label = frame_label(scene, t)
                assert label.hazard is not None and label.risk_level != "none", (scene.scene_id, t)
                assert parse_explanation(label.explanation)["risk_level"] == label.risk_level
                assert label.explanation != NO_HAZARD_EXPLANATION
                found += 1
                break
    assert found >= 1


def test_early_frame_of_an_accident_is_a_hazard(bank):
    found = 0
    for scene in _scenes(bank, "collision"):
        agent, contact = int(scene.meta.colliding_agent_id), int(scene.meta.collision_frame)
        i = scene.agent_index(agent)
        for t in range(20, contact - 30):  # before the miner's earliest decision frame (3 s lead)
            if not scene.agent_valid[i, t]:
                continue
            proj = brute_projection(scene, t)
            ttc = proj[agent][0]
            if math.isfinite(ttc):  # the geometry already shows the crash coming
                label = frame_label(scene, t)
                assert label.hazard is not None, (scene.scene_id, t)
                earliest = min(v[0] if math.isfinite(v[0]) else (v[2] if v[1] < GAP and v[2] > 0 else math.inf)
                               for v in proj.values())
                assert label.projection.conflict_time_s.min() == pytest.approx(earliest, abs=STEP + 1e-9)
                if label.hazard.risk_agent_id == agent:
                    assert label.hazard.ttc_s == pytest.approx(ttc, abs=STEP + 1e-9)
                found += 1
                break
    assert found >= 2


def test_sampled_frames_are_safe_and_labels_are_deterministic(bank):
    scene = _scenes(bank, "near_miss")[0]
    frames = sample_frames(scene, per_scene=3)
    assert 0 < len(frames) <= 3 and frames == sorted(frames)
    assert all(frame_label(scene, t).explanation == frame_label(scene, t).explanation for t in frames)
    with pytest.raises(ValueError, match="outside the log"):
        frame_label(scene, scene.num_frames)
    with pytest.raises(ValueError, match="conflict_gap_m"):
        FrameLabelConfig(conflict_gap_m=-1.0)

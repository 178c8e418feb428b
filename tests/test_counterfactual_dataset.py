"""Anchor-pair mining on hand-built scenes with the real scorer, and the versioned parquet round trip."""

from __future__ import annotations

import dataclasses
import math
import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from counterfactual.dataset import (
    ANCHOR_SCHEMA_VERSION,
    METADATA_KEY,
    PROVENANCE_KEY,
    AnchorDatasetError,
    AnchorPair,
    clean_stale_temp_files,
    collect_provenance,
    load_anchor_pairs,
    read_anchor_table,
    read_provenance,
    write_anchor_pairs,
)
from counterfactual.miner import MinerConfig, MiningStats, mine_scene
from counterfactual.search import SearchConfig, generate_candidates
from tests.test_counterfactual_labels import pedestrian_scene, rear_end_scene


@pytest.fixture(scope="module")
def mined():
    """Pairs of the hand-built rear-end (with map) and pedestrian (map-less) scenes."""
    return mine_scene(rear_end_scene(True)), mine_scene(pedestrian_scene(False))


def test_mined_pairs_are_verified(mined):
    for out in mined:
        assert [m.kind for m in out.moments] == ["collision"]
        assert len(out.pairs) == 3 and not out.skipped
        assert any(p.has_positive for p in out.pairs)
        for p in out.pairs:
            assert p.negative_scores["collision"] is True and p.negative_scores["nc"] < 1.0
            assert p.num_candidates > 50
            if p.has_positive:
                s = p.positive_scores
                assert s["nc"] == 1.0 and s["ttc"] == 1.0 and s["collision"] is False
                assert p.label.action != "none" and p.no_safe_reason == ""
                assert not np.allclose(p.positive, p.negative)
            else:
                assert p.no_safe_reason_code in ("all_collide", "ttc_violation", "offroad", "wrong_way", "execution",
                                                 "mixed")
                assert p.label.action == "none" and p.positive_scores is None
    rear, ped = mined
    assert all(p.dac_checked for p in rear.pairs) and all(p.positive_scores is None or p.positive_scores["dac"] == 1.0
                                                          for p in rear.pairs)
    assert not any(p.dac_checked for p in ped.pairs)
    assert {p.label.conflict_type for p in rear.pairs} == {"rear_end"}
    assert {p.label.risk_agent_class for p in ped.pairs} == {"pedestrian"}
    # the single-lane road leaves no room to swerve: the rear-end positives brake
    assert {p.label.action for p in rear.pairs if p.has_positive} <= {"brake"}


def test_round_trip_and_errors(mined, tmp_path):
    pairs = mined[0].pairs + mined[1].pairs
    path = write_anchor_pairs(pairs, tmp_path / "sub" / "pairs.parquet")
    assert [p.name for p in path.parent.iterdir()] == ["pairs.parquet"]  # no temp file left behind
    back = load_anchor_pairs(path)
    assert [b.pair_id for b in back] == [p.pair_id for p in pairs]
    for a, b in zip(pairs, back):
        np.testing.assert_array_equal(a.negative, b.negative)
        assert (a.positive is None) == (b.positive is None)
        if a.positive is not None:
            np.testing.assert_array_equal(a.positive, b.positive)
        da, db = a.label.to_dict(), b.label.to_dict()
        for name in da:
            assert da[name] == db[name] or (math.isnan(da[name]) and math.isnan(db[name])), name
        assert a.negative_scores == b.negative_scores and a.positive_scores == b.positive_scores
        assert a.observation_ref == b.observation_ref and a.positive_spec == b.positive_spec
        assert a.verification == b.verification and dict(a.candidate_failures) == b.candidate_failures
        assert a.clearance_margin_m == b.clearance_margin_m == 0.5
        assert (a.verification is None) == (a.positive is None)
    assert back[0].observation_ref["origin"] == {"kind": "bank", "scenario_type": "rear_end", "seed": 7,
                                                 "scene_id": "hand/rear_end"}

    table = pq.read_table(path)
    old = table.replace_schema_metadata({**table.schema.metadata, METADATA_KEY: b"0.9"})
    pq.write_table(old, tmp_path / "old.parquet")
    with pytest.raises(AnchorDatasetError, match=r"old\.parquet.*'0\.9'.*" + ANCHOR_SCHEMA_VERSION):
        load_anchor_pairs(tmp_path / "old.parquet")
    pq.write_table(table.drop(["label_sector", "negative"]), tmp_path / "cut.parquet")
    with pytest.raises(AnchorDatasetError, match=r"cut\.parquet: missing columns \['negative', 'label_sector'\]"):
        load_anchor_pairs(tmp_path / "cut.parquet")
    pq.write_table(pa.table({"x": [1]}), tmp_path / "foreign.parquet")
    with pytest.raises(AnchorDatasetError, match="foreign.parquet: no anchor-pair schema version"):
        load_anchor_pairs(tmp_path / "foreign.parquet")
    with pytest.raises(AnchorDatasetError, match="no such anchor-pair file"):
        load_anchor_pairs(tmp_path / "absent.parquet")
    # empty datasets round-trip too
    assert load_anchor_pairs(write_anchor_pairs([], tmp_path / "empty.parquet")) == []


def test_stats_table(mined):
    stats = MiningStats()
    for out in mined:
        stats.add(out, is_accident=True)
    text = stats.table()
    assert "rear_end" in text and "pedestrian_occluded" in text and "TOTAL" in text
    assert stats.scenes_with_verified_pair["rear_end"] == 1 and stats.pairs["rear_end"] == 3


def test_candidate_families_and_shapes():
    t = np.arange(1, 9)[:, None] * 0.5
    neg = np.concatenate([10 * t, 0 * t, 0 * t], axis=1)
    cs = generate_candidates(neg, 10.0, extra=[(neg * [0.5, 1, 1], __import__("counterfactual.search").search
                                               .CandidateSpec("reference"))])
    fams = [s.family for s in cs.specs]
    assert fams[0] == "log" and fams[-1] == "reference" and cs.trajectories.shape == (len(fams), 8, 3)
    np.testing.assert_array_equal(cs.trajectories[0], neg)
    for fam in ("brake", "brake_hold", "speed_scale", "accelerate", "lateral", "lateral_brake"):
        assert fam in fams
    brakes = {s.decel: cs.trajectories[i] for i, s in enumerate(cs.specs) if s.family == "brake"}
    assert brakes[4.0][-1, 0] == pytest.approx(12.5)  # stops after v^2 / 2a
    assert np.all(np.diff(brakes[4.0][:, 0]) >= -1e-9)
    lat = [(s.lateral_offset, cs.trajectories[i]) for i, s in enumerate(cs.specs) if s.family == "lateral"]
    for off, traj in lat:
        assert traj[-1, 1] == pytest.approx(off) and np.all(np.abs(traj[:, 1]) <= abs(off) + 1e-9)
    offs = {round(abs(o), 2) for o, _ in lat}
    assert offs == {0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5}
    with pytest.raises(ValueError, match="negative"):
        generate_candidates(neg[:5], 10.0)
    with pytest.raises(ValueError, match="brake_decels"):
        SearchConfig(brake_decels=(0.0,))


def test_candidates_follow_a_curved_path_and_a_standstill():
    t = np.arange(1, 9) * 0.5
    yaw = 0.15 * t
    neg = np.stack([np.sin(yaw) / 0.015, (1 - np.cos(yaw)) / 0.015, yaw], axis=1)  # arc of radius 66.7 m
    cs = generate_candidates(neg, 10.0)
    i = next(k for k, s in enumerate(cs.specs) if s.family == "brake" and s.decel == 2.0)
    r = np.hypot(cs.trajectories[i, :, 0], cs.trajectories[i, :, 1] - 1 / 0.015)
    np.testing.assert_allclose(r, 1 / 0.015, atol=0.05)  # braking keeps the turn
    still = generate_candidates(np.zeros((8, 3)), 0.0)
    for s, traj in zip(still.specs, still.trajectories):
        if s.family in ("brake", "brake_hold", "speed_scale"):
            np.testing.assert_allclose(traj, 0.0, atol=1e-9)
    assert np.all(np.isfinite(still.trajectories))


# ------------------------------------------------------------------------------------------------ file hygiene
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_file_mode_follows_the_umask(mined, tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = write_anchor_pairs(mined[0].pairs[:1], tmp_path / "pairs.parquet")
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == mode


def test_write_fsyncs_the_data_before_the_rename(mined, tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        target = os.readlink(f"/proc/self/fd/{fd}") if os.path.exists(f"/proc/self/fd/{fd}") else str(fd)
        events.append(("fsync", os.path.basename(target)))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.basename(str(src))))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_anchor_pairs(mined[0].pairs, tmp_path / "pairs.parquet")
    kinds = [k for k, _ in events]
    assert kinds.index("fsync") < kinds.index("replace")
    tmp_name = events[kinds.index("replace")][1]
    assert ("fsync", tmp_name) in events and tmp_name.startswith(".pairs.parquet.") and tmp_name.endswith(".tmp")


def test_stale_temp_files_of_the_target_are_cleaned(mined, tmp_path):
    target = tmp_path / "pairs.parquet"
    dead = tmp_path / ".pairs.parquet.999999999.abcd.tmp"  # a writer that no longer runs
    mine = tmp_path / f".pairs.parquet.{os.getpid()}.efgh.tmp"  # this process: kept
    old_anon = tmp_path / ".pairs.parquet.xyz.tmp"  # unidentifiable, old: removed
    new_anon = tmp_path / ".pairs.parquet.uvw.tmp"  # unidentifiable, fresh: kept (a writer may be busy)
    other = tmp_path / ".other.parquet.999999999.abcd.tmp"  # another target: kept
    for f in (dead, mine, old_anon, new_anon, other):
        f.write_bytes(b"partial")
    an_hour_ago = time.time() - 3600
    os.utime(old_anon, (an_hour_ago, an_hour_ago))
    write_anchor_pairs(mined[0].pairs[:1], target)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["pairs.parquet", mine.name, new_anon.name, other.name])
    assert clean_stale_temp_files(tmp_path / "absent" / "x.parquet") == []


def test_provenance_in_the_metadata(mined, tmp_path):
    config = MinerConfig(seed=3)
    prov = collect_provenance(config, argv=["mine", "--seed", "3"], source="hand")
    path = write_anchor_pairs(mined[0].pairs, tmp_path / "pairs.parquet", prov)
    back = read_provenance(path)
    assert back["command_line"] == ["mine", "--seed", "3"] and back["source"] == "hand"
    assert back["miner_config"]["seed"] == 3
    assert back["miner_config"]["verify"]["clearance_margin"] == config.verify.clearance_margin
    assert back["miner_config"]["moments"]["lead_times"] == list(config.moments.lead_times)
    assert back["package"] == "safealign" and "package_version" in back and back["created_utc"]
    assert back["git_commit"] is None or len(back["git_commit"]) == 40
    assert read_anchor_table(path).num_rows == len(mined[0].pairs)  # the provenance does not disturb reading
    # default provenance: command line and versions, no miner configuration
    default = read_provenance(write_anchor_pairs([], tmp_path / "empty.parquet"))
    assert default["miner_config"] is None and default["command_line"]
    # files without provenance read as {}, broken provenance is an error naming the file
    table = pq.read_table(path)
    meta = {k: v for k, v in table.schema.metadata.items() if k != PROVENANCE_KEY}
    pq.write_table(table.replace_schema_metadata(meta), tmp_path / "bare.parquet")
    assert read_provenance(tmp_path / "bare.parquet") == {}
    pq.write_table(table.replace_schema_metadata({**meta, PROVENANCE_KEY: b"{oops"}), tmp_path / "bad.parquet")
    with pytest.raises(AnchorDatasetError, match="bad.parquet: provenance"):
        read_provenance(tmp_path / "bad.parquet")


def test_a_pair_cannot_claim_a_failed_check(mined):
    pair = next(p for p in mined[0].pairs if p.has_positive)
    failed = {**pair.verification, "closed_loop": False}
    with pytest.raises(ValueError, match="closed_loop"):
        AnchorPair(**{**{f.name: getattr(pair, f.name) for f in dataclasses.fields(pair)}, "verification": failed})

"""``benchmarks.bench_readability``'s bank options and its label-honesty lines (SYNTHETIC outcome-varied bank), on a
few scenes without rendering."""

from __future__ import annotations

import math

from benchmarks import bench_readability as bench
from counterfactual.frame_labels import frame_label, sample_frames
from counterfactual.honesty import decision_records


def test_bank_options_reach_the_source():
    args = bench.build_parser().parse_args(["--outcomes", "varied", "--outcome-mix", "0.5,0.5,0", "--difficulty", "0.3"])
    assert (args.outcomes, args.outcome_mix, args.difficulty) == ("varied", (0.5, 0.5, 0.0), 0.3)
    source = bench.bank_source(3, 5, {"outcomes": args.outcomes, "outcome_mix": args.outcome_mix,
                                      "difficulty": args.difficulty})
    assert source.options["outcomes"] == "varied" and source.options["difficulty"] == 0.3
    assert "outcomes" not in bench.bank_source(3, 5, {"outcomes": None}).options


def test_honesty_uses_the_geometry_oracle_at_each_row():
    source = bench.bank_source(8, 5, {"outcomes": "varied"})
    rows = [r for i in range(len(source))
            for r in decision_records(source[i], sample_frames(source[i], per_scene=2), oracle=False)]
    train, held = rows[: len(rows) // 2], rows[len(rows) // 2:]
    metrics = bench.honesty(train, held, source)
    scenes = {source[i].scene_id: source[i] for i in range(len(source))}
    # every held-out row is a sampled decision labelled by frame_label: the oracle agrees with all of them
    assert all(frame_label(scenes[r["scene_id"]], r["frame"]).risk_level == r["risk_level"] for r in held)
    assert metrics["oracle_risk"] == 1.0 and metrics["records"] == len(held)
    assert 0.0 <= metrics["lookup_risk"] <= 1.0 and not math.isnan(metrics["lookup_language"])

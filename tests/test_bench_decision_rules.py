"""``benchmarks.bench_decision_rules`` (issue #28's tuning study of the sampled-decision rule) on a tiny SYNTHETIC
bank: the replays of the default and the chosen rule select exactly ``sample_frames(..., "hazard_dense")``'s frames
(``--check``),
the cache round-trips, and every replayed rule prints a row."""

from __future__ import annotations

import pytest

from benchmarks import bench_decision_rules as bench


def test_replay_matches_sample_frames_and_prints_every_rule(tmp_path, capsys):
    argv = ["--num-scenes", "4", "--seed", "5", "--fit-seed", "6", "--cache", str(tmp_path), "--check"]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    assert "check: the replay of stride 0.2 s, window -4/+0 s, outside 1 selects" in out
    assert "check: the replay of stride 0.1 s, window -5/+0 s, outside 1 selects" in out
    assert sum(line.startswith("stride ") for line in out.splitlines()) == len(bench.RULES)
    assert "(chosen)" in out and bench.CHOSEN in bench.RULES
    assert len(list(tmp_path.glob("*.pkl"))) == 2
    assert bench.main(argv[:-1]) == 0  # from the cache
    assert capsys.readouterr().out.count("(chosen)") == 1
    with pytest.raises(SystemExit):
        bench.main(["--seed", "5", "--fit-seed", "5"])

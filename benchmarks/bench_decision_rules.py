"""Replay sampled-decision rules on cached frame labels: issue #28's label honesty per rule (SYNTHETIC banks).

The audit (``python -m counterfactual.audit --labels-only``) scores one rule per run and mines both banks again each
time. This study labels every safe candidate frame of every scene once (every 0.1 s from 2 s of history to the last
frame with a 4 s logged future: :func:`counterfactual.frame_labels.frame_label`, the SFT data's decision labels,
and :func:`counterfactual.frame_labels.safe_log_frames`), mines the pairs once, and then replays the frame selection
of each rule on the cache (the ``hazard_dense`` selection of :func:`counterfactual.frame_labels.sample_frames`, with
the window stride, the window's extent and the outside count varied; :data:`CHOSEN` is ``sample_frames``' own): the
lookups are fitted on the ``--fit-seed`` bank's records and scored on every record of ``--seed``'s, as the audit does
(:func:`counterfactual.honesty.label_honesty`). ``--check`` also runs the real ``sample_frames`` (with the matching
``WindowConfig``) and asserts the replays of the default rule and of :data:`CHOSEN` pick the same frames.

Rules are chosen on TUNING seeds only (issue #28's tuning seeds are 29 / 37); the evaluation seeds are scored with the
audit, once, after the choice.

``python -m benchmarks.bench_decision_rules --seed 29 --fit-seed 37 [--roads families] [--num-scenes 200]``

Besides the honesty metrics it prints, per rule, the sampled decisions (rows of the SFT data per scene) and the
share of the hazard decisions whose ``action`` is ``keep_lane`` (the bank's ego follows its logged speed plan, so
the expert's own motion at a hazard frame is mostly no correction of the keep-speed projection; the opt-in reacting
expert, ``ScenarioBank(..., expert="reacting")``, built after this study, brakes instead: measured with the audit in
``docs/safety_labels.md#a-reacting-expert-issue-28-expertreacting``).

**Selection criterion** (issue #28, written before any full-size tuning result and before any held-out number):
among :data:`RULES`, on the tuning seeds only (29 and 37, each scored with the lookups fitted on the other; classic
and families roads: four cells), the rule with the lowest mean lookup language accuracy over the four cells, subject
to (a) geometry oracle >= 95% in every cell, (b) every other target of issue #28 met in every cell, (c) sampled
decisions per scene <= 2x the current rule's (``hazard_dense``: 0.2 s, 4 s window, one outside frame). Ties within 0.3
points of mean language go to fewer decisions per scene (the SFT data's cost); the current rule wins ties with itself.

``--what-if-react`` also prints a HYPOTHETICAL row (not a label the project produces): the default rule with every
hazard decision's ``action`` replaced by the longitudinal correction its conflict type implies (``yield`` for
crossing-path conflicts, else ``brake``, :func:`counterfactual.labels.corrective_action`'s words), i.e. what the
lookup would score if the logged ego slowed at every projected conflict: the size of the action lever.

Measured (2026-12-07, shared 2-core machine, other engineers' jobs running): see ``docs/safety_labels.md``
(`#decision-stride-and-window-tuning-seeds`).
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


@dataclass
class SceneCache:
    """One scene's labelled candidates: ``frames`` (every safe candidate on the 0.1 s grid, sorted), their records,
    the 0.1 s grid bounds ``[first, end)``, the closest-approach frame and whether a hazard is designated."""

    scene_id: str
    scenario_type: str
    designated: bool
    approach: int | None
    first: int
    end: int
    dt: float
    records: dict[int, dict[str, Any]]
    pairs: list[dict[str, Any]]


def cache_bank(num_scenes: int, seed: int, roads: str, progress: bool = True) -> list[SceneCache]:
    """Label every safe candidate frame and mine every scene of the varied bank (``roads``: classic / families)."""
    from tqdm import tqdm

    from counterfactual.frame_labels import closest_approach, designated_hazard, safe_log_frames
    from counterfactual.honesty import decision_records
    from counterfactual.miner import MinerConfig, mine_scene
    from envs.scenes.bank import ScenarioBank
    from rewards.config import PDMConfig

    kw: dict[str, Any] = {"outcomes": "varied"}
    if roads == "families":
        kw.update(roads="families", road_families="train")
    bank = ScenarioBank(num_scenes, seed=seed, **kw)
    config = MinerConfig(seed=seed)
    out = []
    for i in tqdm(range(len(bank)), desc=f"seed {seed} {roads}", disable=not progress):
        scene = bank[i]
        horizon = int(round(PDMConfig().horizon / scene.dt))
        first, end = int(math.ceil(2.0 / scene.dt)), scene.num_frames - horizon
        safe = safe_log_frames(scene, list(range(first, end)))
        recs = decision_records(scene, safe, seed=seed)
        pairs = decision_records(scene, [], mine_scene(scene, config).pairs, seed=seed)
        _, approach = closest_approach(scene)
        out.append(SceneCache(scene.scene_id, scene.meta.scenario_type, designated_hazard(scene) is not None,
                              approach, first, end, scene.dt, {r["frame"]: r for r in recs}, pairs))
    return out


def cached(num_scenes: int, seed: int, roads: str, folder: str) -> list[SceneCache]:
    """:func:`cache_bank`, pickled under ``folder`` (keyed by size, seed and roads; stored as plain dicts)."""
    path = os.path.join(folder, f"decision_rules_v2_{roads}_{seed}_{num_scenes}.pkl")
    if os.path.exists(path):
        with open(path, "rb") as f:
            return [SceneCache(**d) for d in pickle.load(f)]
    data = cache_bank(num_scenes, seed, roads)
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        pickle.dump([dict(vars(d)) for d in data], f)
    os.replace(tmp, path)
    return data


@dataclass(frozen=True)
class Rule:
    """A ``hazard_dense``-like selection: every safe frame every ``stride_s`` inside ``[approach - before_s,
    approach + after_s]`` plus ``n_out`` frames evenly spread over the safe 1 s-grid frames outside it (``n_out``
    frames of a scene without a designated hazard)."""

    stride_s: float = 0.2
    before_s: float = 4.0
    after_s: float = 0.0
    n_out: int = 1

    @property
    def name(self) -> str:
        return f"stride {self.stride_s:.1f} s, window -{self.before_s:g}/+{self.after_s:g} s, outside {self.n_out}"


def _spread(frames: list[int], n: int) -> list[int]:
    from counterfactual.frame_labels import _spread as spread

    return spread(frames, n)


def select(scene: SceneCache, rule: Rule) -> list[int]:
    """The rule's frames of one cached scene (as :func:`counterfactual.frame_labels._dense_frames` selects them)."""
    safe = scene.records
    grid = [t for t in range(scene.first, scene.end, max(1, int(round(1.0 / scene.dt)))) if t in safe]
    if not scene.designated or scene.approach is None:
        return _spread(grid, rule.n_out)
    lo = max(0, scene.approach - int(round(rule.before_s / scene.dt)))
    hi = scene.approach + int(round(rule.after_s / scene.dt))
    dense = max(1, int(round(rule.stride_s / scene.dt)))
    inside = [t for t in range(max(scene.first, lo), min(scene.end, hi + 1), dense) if t in safe]
    outside = [t for t in grid if not lo <= t <= hi]
    return sorted(inside + _spread(outside, rule.n_out))


def records(scenes: Sequence[SceneCache], rule: Rule) -> list[dict[str, Any]]:
    """Sampled-decision records of ``rule`` plus every pair record."""
    return [r for s in scenes for r in [s.records[t] for t in select(s, rule)] + s.pairs]


CHOSEN = Rule(0.1, before_s=5.0)
"""The rule the criterion chose on the tuning seeds (``WindowConfig(dense_stride_s=0.1, dense_before_s=5.0)``); not
the default: on new held-out seeds it missed the lookup-language target on one cell of four (docs/safety_labels.md)."""
RULES = (
    Rule(0.2), Rule(0.1), Rule(0.3), Rule(0.5),
    Rule(0.2, before_s=3.0), Rule(0.2, before_s=5.0), Rule(0.1, before_s=5.0), Rule(0.2, before_s=6.0),
    Rule(0.1, before_s=6.0),
    Rule(0.2, n_out=2), Rule(0.1, n_out=2), Rule(0.2, after_s=0.5),
)
"""The rules replayed (the first is the default ``hazard_dense`` rule, 0.2 s over 4 s; :data:`CHOSEN` is among
them)."""


def slowed_ego(scene: Any, k0: int, decel: float = 2.0, keep: float = 0.5) -> np.ndarray:
    """``(T, 3)`` world-frame rear-axle poses [m, m, rad] of the ego re-timed along its logged path: its logged speed
    until frame ``k0``, then braking at ``decel`` [m/s^2] to ``keep`` x its speed at ``k0`` and holding it (never
    faster than logged). A HYPOTHETICAL reaction, for :func:`react_probe` only."""
    poses = scene.ego_poses
    step = np.linalg.norm(np.diff(poses[:, :2], axis=0), axis=1)  # (T-1,) [m]
    s = np.concatenate([[0.0], np.cumsum(step)])
    v = step / scene.dt  # (T-1,) speed of each step [m/s]
    tau = (np.arange(len(v)) - k0) * scene.dt
    floor = np.maximum(keep * v[min(k0, len(v) - 1)], v[min(k0, len(v) - 1)] - decel * np.maximum(tau, 0.0))
    v_new = np.where(tau < 0, v, np.minimum(v, floor))
    s_new = np.concatenate([[0.0], np.cumsum(v_new * scene.dt)])
    yaw = np.unwrap(poses[:, 2])
    order = np.concatenate([[True], step > 1e-9])  # strictly increasing s for interpolation
    xy = [np.interp(s_new, s[order], poses[order, i]) for i in (0, 1)]
    return np.stack(xy + [np.interp(s_new, s[order], yaw[order])], axis=1)


def react_probe(num_scenes: int, seed: int, roads: str) -> None:
    """HYPOTHETICAL: slow each benign / near-miss accident scene's logged ego at the first frame whose projection
    (:func:`counterfactual.frame_labels.project_frame`, the decision labels' geometry) names a conflict, and count how
    often that changes the scene's geometry-decided outcome (hazard gap, :func:`envs.scenes.bank.outcomes.classify`)
    or makes another agent (background, props) touch the ego: what keeping the miner, labels and validity checks
    consistent would take if the bank's ego reacted."""
    from counterfactual.frame_labels import designated_hazard, project_frame
    from envs.scenes.bank import ScenarioBank
    from envs.scenes.bank.outcomes import classify
    from rewards.geometry import box_corners, box_distance, vehicle_corners

    kw: dict[str, Any] = {"outcomes": "varied"}
    if roads == "families":
        kw.update(roads="families", road_families="train")
    bank = ScenarioBank(num_scenes, seed=seed, **kw)
    moved: Counter = Counter()
    for i in range(len(bank)):
        scene = bank[i]
        outcome = (scene.meta.extra or {}).get("outcome")
        hazard = designated_hazard(scene)
        if outcome not in ("benign", "near_miss") or hazard is None:
            continue
        k0 = next((t for t in range(scene.num_frames - 1) if project_frame(scene, t).conflict.any()), None)
        if k0 is None:
            moved[(outcome, "no conflict ever projected")] += 1
            continue
        ego = vehicle_corners(slowed_ego(scene, k0), scene.ego_params)  # (T, 4, 2)
        boxes = box_corners(scene.agent_poses, scene.agent_sizes[:, 0, None], scene.agent_sizes[:, 1, None])
        gaps = np.where(scene.agent_valid, box_distance(ego[None], boxes), np.inf)  # (N, T)
        row = int(np.flatnonzero(np.asarray(scene.agent_ids) == hazard)[0])
        others = np.delete(gaps, row, axis=0)
        new = classify(float(gaps[row].min()))
        moved[(outcome, f"-> {new}" + (", another agent touches the ego" if (others <= 0).any() else ""))] += 1
    print(f"HYPOTHETICAL reacting ego, seed {seed} {roads} (slows at 2 m/s^2 to half speed from the first projected "
          f"conflict): outcome after the reaction, per wanted outcome:")
    for k, n in sorted(moved.items()):
        print(f"  {k[0]:<10} {k[1]:<50} {n}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_decision_rules",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=29, help="scored bank seed (a TUNING seed)")
    parser.add_argument("--fit-seed", type=int, default=37, help="bank seed the lookups are fitted on")
    parser.add_argument("--num-scenes", type=int, default=200)
    parser.add_argument("--roads", choices=("classic", "families"), default="classic")
    parser.add_argument("--cache", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "safealign_rules"),
                        help="folder of the pickled frame-label caches")
    parser.add_argument("--check", action="store_true",
                        help="assert the replays of the default rule and of CHOSEN select "
                             "sample_frames(..., 'hazard_dense')'s frames (first 20 scenes)")
    parser.add_argument("--what-if-react", action="store_true",
                        help="also print the HYPOTHETICAL row of an ego that slows at every projected conflict")
    parser.add_argument("--react-probe", action="store_true",
                        help="only print the HYPOTHETICAL reacting-ego outcome probe (react_probe) and exit")
    args = parser.parse_args(argv)
    if args.react_probe:
        react_probe(args.num_scenes, args.seed, args.roads)
        return 0
    if args.seed == args.fit_seed:
        parser.error("--fit-seed equals --seed")
    from counterfactual.honesty import label_honesty

    start = time.perf_counter()
    scored = cached(args.num_scenes, args.seed, args.roads, args.cache)
    fit = cached(args.num_scenes, args.fit_seed, args.roads, args.cache)
    print(f"SYNTHETIC outcome-varied bank ({args.roads} roads), {args.num_scenes} scenes: scored seed {args.seed}, "
          f"lookups fitted on seed {args.fit_seed}; caches ready in {time.perf_counter() - start:.0f} s")
    if args.check:
        from counterfactual.frame_labels import sample_frames
        from envs.scenes.bank import ScenarioBank

        kw: dict[str, Any] = {"outcomes": "varied"}
        if args.roads == "families":
            kw.update(roads="families", road_families="train")
        bank = ScenarioBank(args.num_scenes, seed=args.seed, **kw)
        from counterfactual.frame_labels import WindowConfig

        for rule in (RULES[0], CHOSEN):
            window = WindowConfig(dense_stride_s=rule.stride_s, dense_before_s=rule.before_s)
            for i in range(min(20, len(bank))):
                want = sample_frames(bank[i], sampling="hazard_dense", window=window)
                assert select(scored[i], rule) == want, (rule, scored[i].scene_id)
            print(f"check: the replay of {rule.name} selects sample_frames' hazard_dense frames on the first "
                  f"{min(20, len(bank))} scenes")
    head = (f"{'rule':<42} {'dec/scene':>9} {'haz%':>5} {'lang':>6} {'risk':>6} {'typeM':>6} {'kindM':>6} "
            f"{'Hrisk':>5} {'Hact':>5} {'oracle':>6} {'keep|haz':>8}")
    print(head)
    for rule in RULES:
        mark = " (chosen)" if rule == CHOSEN else ""
        ev, tr = records(scored, rule), records(fit, rule)
        m = label_honesty(tr, ev)
        dec = [r for r in ev if r["kind"] == "expert"]
        haz = [r for r in dec if r["risk_level"] not in (None, "none")]
        keep = sum(r["action"] == "keep_lane" for r in haz) / max(len(haz), 1)
        print(f"{rule.name + mark:<42} {len(dec) / len(scored):>9.2f} {100 * len(haz) / max(len(dec), 1):>5.1f} "
              f"{100 * m['lookup_language']:>6.1f} {100 * m['lookup_risk']:>6.1f} "
              f"{100 * m['type_majority_risk']:>6.1f} {100 * m['kind_majority_risk']:>6.1f} "
              f"{m['risk_entropy_share']:>5.2f} {m['action_entropy_share']:>5.2f} "
              f"{100 * m['oracle_risk']:>6.1f} {100 * keep:>7.1f}%")
    if args.what_if_react:
        from counterfactual.labels import _YIELD_CONFLICTS

        def react(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{**r, "action": ("yield" if r["conflict_type"] in _YIELD_CONFLICTS else "brake")}
                    if r["kind"] == "expert" and r["risk_level"] not in (None, "none") else r for r in recs]

        m = label_honesty(react(records(fit, RULES[0])), react(records(scored, RULES[0])))
        print(f"HYPOTHETICAL reacting ego (default rule, hazard decisions' action = yield/brake): lookup language "
              f"{100 * m['lookup_language']:.1f}%, action entropy share {m['action_entropy_share']:.2f}")
    dec = [r for r in records(scored, RULES[0]) if r["kind"] == "expert"]
    print("default rule, decisions' actions:", dict(Counter(r["action"] for r in dec).most_common()))
    hazard = Counter(r["action"] for r in dec if r["risk_level"] != "none")
    print("  hazard decisions' actions:", dict(hazard.most_common()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

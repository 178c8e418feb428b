"""Audit of mined anchor pairs: are the positives safe as executed, and are the labels honest?

``python -m counterfactual.audit [--num-scenes 200] [--seed 7]`` mines the built-in **synthetic** bank
(``ScenarioBank(num_scenes, seed)``, default :class:`~counterfactual.miner.MinerConfig` with ``seed``) and
re-checks every pair with tools that do not share code with the miner's own verification
(:mod:`counterfactual.verify`), so a bug there shows up here:

* **raw overlap**: the positive's 8 poses interpolated at 0.1 s from the logged state
  (:func:`rewards.tracking.interpolate_candidates`), ego box against every agent of the log
  (:func:`envs.sim.simulation.check_frames`): any agent, and the risk agent;
* **closed loop**: the positive followed in a real closed-loop :class:`~envs.replay_env.ReplayEnv` (reset at the
  decision frame with ``{"scene_id", "t"}``, re-planning every 0.5 s with the remainder of the positive seen from the
  simulated pose, constant-velocity continuation past its end, clipped to the action bounds as a policy's output
  is; the env's tracker carries the steering): collision or off-road termination within the 4 s;
* **clearance**: smallest box-to-box gap to any agent of the tracked rollout, of the raw poses and of the closed
  loop (:func:`rewards.geometry.box_distance` over every valid agent, no pruning);
* **DDC < 1** of the positive, **swerves** (an action with a lateral part, alone or compound) and swerves chosen
  although a keep-lane braking candidate (``brake``, ``brake_hold``, ``speed_scale < 1``) passes every check of the
  miner;
* **labels**: near-misses in normal scenes, risk ``none`` with an evasive action, moments with more than one
  conflict type across lead times, collision explanations whose stated time is not the logged contact time (more
  than 0.25 s off), the actions at lead 1 s of ``right_turn_vru`` / ``pedestrian_occluded``, and how well the two
  trivial baselines of :mod:`counterfactual.accuracy` predict the labels (scene-level split);
* **label honesty** (:mod:`counterfactual.honesty`) on the records the VLA is scored on: the pairs **and** the sampled
  decisions of every scene (benign ones included; :func:`counterfactual.frame_labels.sample_frames`, labelled from the
  geometry at their frame), split by scene (half fits the lookups, half is scored): the (type, lead) lookup's
  language and risk accuracy, the per-type majority risk accuracy, the share of the risk-level and action entropy
  the scenario type explains, and the geometry oracle's risk accuracy, each beside issue #28's target.

``--outcomes varied [--outcome-mix 0.35,0.30,0.35] [--difficulty 0.5] [--expert reacting]`` audits the outcome-varied bank, ``--roads
families [--road-families train|held_out|all|a,b]`` the bank on parametric road families (``docs/scenes.md``);
``--labels-only`` mines and prints the label honesty alone (no positive audit: minutes faster); ``--fit-seed S`` fits
the honesty's lookups on bank seed ``S`` (same size and options) and scores every scene of ``--seed`` (default: a
half split of ``--seed``'s scenes); ``--decision-labels no_hazard`` labels the sampled decisions no-hazard, as the
SFT data did before sample format 2 (for comparison); ``--frame-sampling hazard_window`` chooses the sampled
decisions around the hazard's closest approach and ``--frame-sampling hazard_dense`` every safe 0.2 s frame of the
designated hazard's window (4 s before its closest approach to the ego) plus one outside it, one frame of a scene
without a hazard (:func:`counterfactual.frame_labels.sample_frames`; default ``hazard_dense`` with ``--outcomes
varied``, the ``env=world_v2`` preset's rule, else ``even``; ``--frame-sampling even`` gives the varied bank's earlier
numbers; ``python -m benchmarks.bench_decision_rules`` replays other strides and windows of the rule on the tuning
seeds 29 / 37, docs/safety_labels.md#decision-stride-and-window-tuning-seeds);
``--near-miss-rule ttc|clearance`` chooses which near-misses become pairs (:attr:`counterfactual.miner.MinerConfig.
near_miss_rule`; default ``clearance`` with ``--outcomes varied``, the ``env=world_v2`` preset's mining, else ``ttc``);
``--pair-risk projection`` gives the pairs the projection's risk level at their decision frame
(:data:`counterfactual.honesty.PAIR_RISKS`; for comparison, default the mined label's).

Prints one row per scenario type (and a total) plus the label findings. Synthetic data: numbers describe the bank,
not real traffic.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from counterfactual.accuracy import LANGUAGE_FIELDS, baseline_accuracies, format_accuracy_table, split_by_scene
from counterfactual.dataset import AnchorPair
from counterfactual.language import parse_explanation
from counterfactual.frame_labels import FRAME_SAMPLING
from counterfactual.miner import MinerConfig, SceneMining, mine_scene
from counterfactual.schema import split_action
from envs.scenes.scene import Scene
from envs.sim.scoring import problem_from_scene
from envs.sim.simulation import check_frames
from envs.spaces import clip_trajectories
from rewards.geometry import box_corners, box_distance, local_to_world, vehicle_corners, world_to_local
from rewards.tracking import interpolate_candidates, simulate_candidates

VARIED_FRAME_SAMPLING = "hazard_dense"
"""``--frame-sampling`` default with ``--outcomes varied`` (the ``env=world_v2`` preset's rule; ``even`` otherwise)."""
VARIED_NEAR_MISS_RULE = "clearance"
"""``--near-miss-rule`` default with ``--outcomes varied`` (the ``env=world_v2`` preset's ``mine.near_miss_rule``;
``ttc`` otherwise)."""
BRAKING_FAMILIES = ("brake", "brake_hold")
"""Candidate families that slow down in the lane (with ``speed_scale < 1``)."""


@dataclass
class PairAudit:
    """Independent checks of one pair with a positive (see the module docstring)."""

    scenario_type: str
    lead_time_s: float
    raw_overlap_any: bool
    raw_overlap_risk: bool
    closed_loop_collision: bool
    closed_loop_offroad: bool
    clearance_tracked_m: float
    clearance_raw_m: float
    clearance_closed_loop_m: float
    ddc_below_one: bool
    swerve: bool
    swerve_over_safe_braking: bool


def _clearance(scene: Scene, poses: np.ndarray, frames: np.ndarray) -> float:
    """Smallest gap [m] of ego rear-axle poses ``(k, 3)`` at scene ``frames`` to every valid agent box."""
    if len(frames) == 0 or scene.num_agents == 0:
        return math.inf
    ego = vehicle_corners(poses, scene.ego_params)  # (k, 4, 2)
    valid = scene.agent_valid[:, frames]
    n, k = np.nonzero(valid)
    if len(n) == 0:
        return math.inf
    boxes = box_corners(scene.agent_poses[n, frames[k]], scene.agent_sizes[n, 0], scene.agent_sizes[n, 1])
    return float(box_distance(ego[k], boxes).min())


def follow_in_env(env: Any, scene: Scene, pair: AnchorPair) -> tuple[bool, bool, np.ndarray, np.ndarray]:
    """Follow the pair's positive in a closed-loop :class:`~envs.replay_env.ReplayEnv` (module docstring).

    Returns ``(collided, offroad, driven poses (k, 3), their frames (k,))``.
    """
    t = int(pair.decision_frame)
    env.reset(options={"scene_id": scene.scene_id, "t": t})
    base = env.unwrapped
    world = local_to_world(pair.positive, scene.ego_poses[t])  # (8, 3), fixed plan
    step = world[-1, :2] - world[-2, :2]
    ext = np.concatenate([world[-1, :2] + step * np.arange(1, 9)[:, None], np.full((8, 1), world[-1, 2])], axis=1)
    plan = np.concatenate([world, ext])
    collided = offroad = False
    for k in range(len(pair.positive)):
        pose = base.ego_poses[base.t]
        # the continuation of a fast positive can end past the 80 m action bound: clipped, as a policy's output is
        _, _, terminated, truncated, info = env.step(clip_trajectories(world_to_local(plan[k : k + 8], pose)))
        collided |= bool(info["collision"])
        offroad |= info.get("termination_reason") == "offroad"
        if terminated or truncated:
            break
    frames = np.arange(t + 1, base.t + 1)
    return collided, offroad, base.ego_poses[frames].copy(), frames


def _braking_safe(scene: Scene, pair: AnchorPair, config: MinerConfig) -> bool:
    """Whether a keep-lane braking candidate of the pair's decision frame passes every check of the miner."""
    from counterfactual.miner import score_candidates
    from counterfactual.search import result_arrays
    from counterfactual.verify import verify_candidates

    problem, cands, result = score_candidates(scene, int(pair.decision_frame), config)
    arrays = result_arrays(result)
    safe = verify_candidates(scene, problem, cands.trajectories, arrays, config.pdm, _verify_config(config)).safe
    braking = np.array([s.family in BRAKING_FAMILIES or (s.family == "speed_scale" and s.speed_scale < 1)
                        for s in cands.specs])
    return bool((safe & braking).any())


def _verify_config(config: MinerConfig) -> Any:
    """The miner's execution checks (defaults for a configuration without them, e.g. an older miner)."""
    from counterfactual.verify import VerifyConfig

    return getattr(config, "verify", None) or VerifyConfig()


def audit_pair(env: Any, scene: Scene, pair: AnchorPair, config: MinerConfig) -> PairAudit:
    """Independent checks of one pair with a positive."""
    t = int(pair.decision_frame)
    problem = problem_from_scene(scene, t, config.pdm)
    steps = config.pdm.num_sim_steps - 1
    frames = t + 1 + np.arange(steps)
    raw = interpolate_candidates(problem.ego, pair.positive[None], config.pdm)[0, 1:]
    hit, _ = check_frames(scene, raw, frames, None)
    tracked = simulate_candidates(problem.ego, pair.positive[None], config.pdm)[0, 1:, :3]
    collided, offroad, driven, driven_frames = follow_in_env(env, scene, pair)
    swerve = split_action(pair.label.action)[1] is not None  # a lateral part, alone or compound
    return PairAudit(
        scenario_type=pair.scenario_type,
        lead_time_s=pair.lead_time_s,
        raw_overlap_any=bool((hit >= 0).any()),
        raw_overlap_risk=bool((hit == pair.label.risk_agent_id).any()),
        closed_loop_collision=collided,
        closed_loop_offroad=offroad,
        clearance_tracked_m=_clearance(scene, tracked, frames),
        clearance_raw_m=_clearance(scene, raw, frames),
        clearance_closed_loop_m=_clearance(scene, driven, driven_frames),
        ddc_below_one=pair.positive_scores.get("ddc") is not None and pair.positive_scores["ddc"] < 1.0,
        swerve=swerve,
        swerve_over_safe_braking=swerve and _braking_safe(scene, pair, config),
    )


@dataclass
class AuditReport:
    """Everything the audit found (see :func:`run_audit`)."""

    mined: list[SceneMining]
    scenes: dict[str, Scene]
    audits: list[PairAudit]
    accident: dict[str, bool]
    seconds_mining: float
    seconds_audit: float
    notes: list[str] = field(default_factory=list)

    @property
    def pairs(self) -> list[AnchorPair]:
        return [p for m in self.mined for p in m.pairs]


def run_audit(scenes: Sequence[Scene], config: MinerConfig, progress: bool = False) -> AuditReport:
    """Mine ``scenes`` and audit every pair with a positive."""
    from tqdm import tqdm

    from envs.replay_env import EnvConfig, ReplayEnv

    start = time.perf_counter()
    mined = [mine_scene(s, config) for s in tqdm(scenes, desc="mining", disable=not progress)]
    t_mine = time.perf_counter() - start
    by_id = {s.scene_id: s for s in scenes}
    env = ReplayEnv(list(scenes), mode="closed_loop",
                    config=EnvConfig(bev=None, reward_mode="lazy", log_end_margin=_verify_config(config).replan_interval,
                                     pdm=config.pdm))
    start = time.perf_counter()
    audits = [audit_pair(env, by_id[p.scene_id], p, config)
              for m in tqdm(mined, desc="auditing", disable=not progress) for p in m.pairs if p.has_positive]
    return AuditReport(mined, by_id, audits, {s.scene_id: s.meta.is_accident for s in scenes}, t_mine,
                       time.perf_counter() - start)


def _table(rows: list[list[Any]], head: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths))] + [fmt.format(*map(str, r)) for r in rows])


def type_table(report: AuditReport) -> str:
    """Per scenario type: scenes, accident scenes with a verified pair, pairs, positives, and the positives' raw
    overlaps, closed-loop collisions / survival, clearances (``trk``: of the tracked rollout; ``any``: the smallest of
    the tracked rollout, the raw poses and the closed loop), DDC < 1 and swerves."""
    by_type: dict[str, list[PairAudit]] = defaultdict(list)
    for a in report.audits:
        by_type[a.scenario_type].append(a)
    scenes_by_type: Counter = Counter()
    acc_by_type: Counter = Counter()
    kept_by_type: Counter = Counter()
    pairs_by_type: Counter = Counter()
    for m in report.mined:
        scenes_by_type[m.scenario_type] += 1
        pairs_by_type[m.scenario_type] += len(m.pairs)
        if report.accident[m.scene_id]:
            acc_by_type[m.scenario_type] += 1
            kept_by_type[m.scenario_type] += int(any(p.has_positive and p.negative_scores.get("collision")
                                                     for p in m.pairs))
    head = ["type", "scenes", "acc_kept", "pairs", "pos", "raw_ovl", "raw_ovl_risk", "cl_coll", "cl_survive%",
            "trk<0.1", "trk<0.25", "trk<0.5", "any<0.1", "any<0.25", "min_any", "ddc<1", "swerve", "swerve|brake_ok"]
    rows = []
    for k in sorted(scenes_by_type) + ["TOTAL"]:
        group = report.audits if k == "TOTAL" else by_type.get(k, [])
        pick = (lambda c: sum(c.values())) if k == "TOTAL" else (lambda c: c[k])
        n = len(group)
        clr = [min(a.clearance_tracked_m, a.clearance_raw_m, a.clearance_closed_loop_m) for a in group]
        trk = [a.clearance_tracked_m for a in group]
        survive = sum(not (a.closed_loop_collision or a.closed_loop_offroad) for a in group)
        acc = pick(acc_by_type)
        rows.append([
            k, pick(scenes_by_type), f"{pick(kept_by_type)}/{acc}" if acc else "-", pick(pairs_by_type), n,
            sum(a.raw_overlap_any for a in group), sum(a.raw_overlap_risk for a in group),
            sum(a.closed_loop_collision for a in group), f"{100 * survive / n:.1f}" if n else "-",
            sum(c < 0.1 for c in trk), sum(c < 0.25 for c in trk), sum(c < 0.5 for c in trk),
            sum(c < 0.1 for c in clr), sum(c < 0.25 for c in clr), f"{min(clr):.2f}" if clr else "-", sum(a.ddc_below_one for a in group), sum(a.swerve for a in group),
            sum(a.swerve_over_safe_braking for a in group),
        ])
    return _table(rows, head)


REALISATIONS = (("tracked", "clearance_tracked_m"), ("raw_poses", "clearance_raw_m"),
                 ("closed_loop", "clearance_closed_loop_m"))
"""The positive's three realisations (``VerifyConfig.clearance_over`` names) and their :class:`PairAudit` field."""


def clearance_lines(report: AuditReport) -> str:
    """Per realisation of the positives (and the smallest of the three): the smallest gap to any agent box [m] and
    how many positives come within 0.1 / 0.25 / 0.5 m."""
    lines = ["positives' clearance per realisation (box to box, every valid agent) [m]:"]
    columns = [(name, [getattr(a, field) for a in report.audits]) for name, field in REALISATIONS]
    columns.append(("any", [min(getattr(a, field) for _, field in REALISATIONS) for a in report.audits]))
    for name, gaps in columns:
        low = min(gaps) if gaps else math.inf
        lines.append(f"  {name:<12} min {low:5.2f}  <0.1: {sum(g < 0.1 for g in gaps):>3}  "
                     f"<0.25: {sum(g < 0.25 for g in gaps):>3}  <0.5: {sum(g < 0.5 for g in gaps):>3}  "
                     f"of {len(gaps)}")
    return "\n".join(lines)


def label_findings(report: AuditReport) -> str:
    """The label checks of the module docstring, one line each, plus the trivial baselines' accuracy."""
    pairs = report.pairs
    lines = []
    normal = [m for m in report.mined if m.scenario_type == "normal"]
    with_nm = [m.scene_id for m in normal if any(x.kind == "near_miss" for x in m.moments)]
    lines.append(f"normal scenes with a near-miss moment: {len(with_nm)}/{len(normal)} {with_nm[:6]}")
    bad_none = sum(p.label.risk_level == "none" and p.label.action not in ("none", "keep_lane") for p in pairs)
    lines.append(f"risk 'none' with an evasive action: {bad_none}/{len(pairs)} pairs "
                 f"(risk 'none' at all: {sum(p.label.risk_level == 'none' for p in pairs)})")
    kinds: dict[tuple, set] = defaultdict(set)
    for p in pairs:
        kinds[(p.scene_id, p.label.risk_agent_id, p.contact_frame)].add(p.label.conflict_type)
    mixed = {k: v for k, v in kinds.items() if len(v) > 1}
    merge = Counter(p.label.conflict_type for p in pairs if p.scenario_type == "merge_conflict")
    lines.append(f"moments with more than one conflict type across lead times: {len(mixed)}/{len(kinds)}; "
                 f"merge_conflict pairs by type: {dict(merge)}")
    off = stated = 0
    for p in pairs:
        if p.moment_kind != "collision":
            continue
        parsed = parse_explanation(p.label.explanation)
        if math.isnan(parsed.get("time_s", math.nan)):
            continue
        stated += 1
        actual = (p.contact_frame - p.decision_frame) * report.scenes[p.scene_id].dt
        off += abs(parsed["time_s"] - actual) > 0.25 or parsed.get("time_kind") not in (None, "contact")
    lines.append(f"collision explanations stating a time: {stated}; not the logged contact time (> 0.25 s off or "
                 f"not said to be the contact): {off}")
    for typ in ("right_turn_vru", "pedestrian_occluded"):
        acts = Counter(p.label.action for p in pairs if p.scenario_type == typ and p.lead_time_s == 1.0)
        lines.append(f"{typ} actions at lead 1 s: {dict(acts)}")
    train, test = split_by_scene(pairs, 0.5, seed=0)
    if train and test:
        table = format_accuracy_table(baseline_accuracies(train, test),
                                      f"trivial baselines on the mined labels ({len(train)} train / {len(test)} "
                                      f"eval pairs, split by scene); fields: {', '.join(LANGUAGE_FIELDS)}")
        lines.append(table)
    return "\n".join(lines)


def honesty_records(scenes: Sequence[Scene], mined: Sequence[SceneMining], frames_per_scene: int = 4,
                    seed: int = 0, progress: bool = False, decision_labels: str = "geometry",
                    frame_sampling: str = "even", pair_risk: str = "contact") -> list[dict[str, Any]]:
    """The label records of every scene (:func:`counterfactual.honesty.decision_records`): its sampled decisions
    (up to ``frames_per_scene`` chosen by ``frame_sampling``, as the SFT data samples them; labelled by
    ``decision_labels``) and its mined pairs (risk level by ``pair_risk``,
    :data:`counterfactual.honesty.PAIR_RISKS`), with the geometry oracle."""
    from tqdm import tqdm

    from counterfactual.frame_labels import sample_frames
    from counterfactual.honesty import decision_records

    pairs = {m.scene_id: m.pairs for m in mined}
    return [r for s in tqdm(scenes, desc="decision labels", disable=not progress)
            for r in decision_records(s, sample_frames(s, per_scene=frames_per_scene, sampling=frame_sampling), pairs.get(s.scene_id, ()),
                                      seed=seed, decision_labels=decision_labels, pair_risk=pair_risk)]


def honesty_findings(records: Sequence[dict[str, Any]], split_seed: int = 0,
                     fit_records: Sequence[dict[str, Any]] | None = None) -> str:
    """The label-honesty lines (:func:`counterfactual.honesty.format_honesty`): the lookups fitted on
    ``fit_records`` (another bank seed's) and scored on every record, or, without them, on a scene-level half split
    of the records (fitted on one half, scored on the other)."""
    from counterfactual.honesty import format_honesty, label_honesty

    if fit_records is None:
        train, test = split_by_scene(records, 0.5, seed=split_seed)
    else:
        train, test = list(fit_records), list(records)
    if not train or not test:
        return f"label honesty: too few scenes to split ({len(records)} records)"
    by_kind = Counter((r["kind"], r["risk_level"]) for r in test)
    fitted = "scenes of the --fit-seed bank" if fit_records is not None else "other scenes"
    return (format_honesty(label_honesty(train, test), f"label honesty (scored on {len({r['scene_id'] for r in test})}"
                           f" scenes, lookups fitted on {len({r['scene_id'] for r in train})} {fitted}):")
            + "\n  scored records by (kind, risk): " + ", ".join(f"{k}/{v}: {c}" for (k, v), c in sorted(by_kind.items())))


def _mix(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--outcome-mix: expected three comma-separated numbers (benign, near_miss, "
                                         f"collision), got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    """Run the audit on the bank and print the tables."""
    parser = argparse.ArgumentParser(prog="python -m counterfactual.audit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-scenes", type=int, default=200, help="bank scenes to mine and audit")
    parser.add_argument("--seed", type=int, default=7, help="bank seed (also the explanation seed)")
    parser.add_argument("--margin", type=float, default=None, help="clearance margin [m] (default: VerifyConfig's)")
    parser.add_argument("--near-miss-rule", choices=("ttc", "clearance"), default=None,
                        help="which near-misses become pairs (MinerConfig.near_miss_rule; default: clearance with "
                             "--outcomes varied, as env=world_v2 mines, else ttc)")
    parser.add_argument("--clearance-over", default=None,
                        help="comma-separated realisations the margin applies to (tracked,raw_poses,closed_loop)")
    parser.add_argument("--outcomes", choices=("collision", "varied"), default="collision",
                        help="bank outcomes: every accident collides (default) or outcome-varied typologies")
    parser.add_argument("--outcome-mix", type=_mix, default=None,
                        help="varied bank: wanted benign,near_miss,collision shares (default 0.35,0.30,0.35)")
    parser.add_argument("--difficulty", type=float, default=None, help="varied bank: hazard difficulty in [0, 1]")
    parser.add_argument("--expert", choices=("logged", "reacting"), default=None,
                        help="varied bank: the ego of near-miss / benign scenes keeps its speed plan (logged, the "
                             "default) or reacts to its hazard (reacting, envs.scenes.bank.react)")
    parser.add_argument("--roads", choices=("classic", "families"), default="classic",
                        help="bank roads: the six fixed layouts (default) or the parametric road families")
    parser.add_argument("--road-families", default=None,
                        help="families mode: 'train' (default), 'held_out', 'all' or comma-separated family names")
    parser.add_argument("--frames-per-scene", type=int, default=4,
                        help="sampled decisions per scene in the label honesty (the SFT data's default)")
    parser.add_argument("--frame-sampling", choices=FRAME_SAMPLING, default=None,
                        help="how the sampled decisions are chosen (counterfactual.frame_labels.sample_frames): "
                             "evenly spread over the scene (even; default of the default bank), concentrated on the "
                             "hazard window (hazard_window) or every safe 0.2 s frame of the designated hazard's 4 s "
                             "window plus one outside it (hazard_dense; default with --outcomes varied, env=world_v2's rule)")
    parser.add_argument("--pair-risk", choices=("contact", "projection"), default="contact",
                        help="risk level of the pairs in the label honesty: the mined label's, from the logged contact "
                             "time (default, the published labels), or the projection's at the decision frame (for "
                             "comparison; counterfactual.honesty.PAIR_RISKS)")
    parser.add_argument("--fit-seed", type=int, default=None,
                        help="fit the honesty lookups on this bank seed's scenes (same size and options) and score "
                             "every scene of --seed (default: a half split of --seed's scenes)")
    parser.add_argument("--decision-labels", choices=("geometry", "no_hazard"), default="geometry",
                        help="label of the sampled decisions in the honesty: from the geometry (the SFT data's) or "
                             "always no-hazard (the SFT data's before sample format 2; for comparison)")
    parser.add_argument("--labels-only", action="store_true",
                        help="mine and print the label honesty only (skip the positives' audit)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.outcomes == "collision" and (args.outcome_mix is not None or args.difficulty is not None
                                         or args.expert is not None):
        parser.error("--outcome-mix / --difficulty / --expert need --outcomes varied")
    if args.roads == "classic" and args.road_families is not None:
        parser.error("--road-families needs --roads families")
    if args.frame_sampling is None:
        args.frame_sampling = VARIED_FRAME_SAMPLING if args.outcomes == "varied" else "even"
    if args.near_miss_rule is None:
        args.near_miss_rule = VARIED_NEAR_MISS_RULE if args.outcomes == "varied" else "ttc"
    if args.fit_seed is not None and args.fit_seed == args.seed:
        parser.error(f"--fit-seed {args.fit_seed} is the scored --seed: the lookups would be fitted on the answer")

    from dataclasses import replace

    from envs.scenes.bank import ScenarioBank

    config = MinerConfig(seed=args.seed, near_miss_rule=args.near_miss_rule)
    if args.margin is not None:
        config = replace(config, verify=replace(config.verify, clearance_margin=args.margin))
    if args.clearance_over:
        config = replace(config, verify=replace(config.verify, clearance_over=tuple(args.clearance_over.split(","))))
    varied = {}
    if args.outcomes == "varied":
        varied = {"outcomes": "varied", "outcome_mix": args.outcome_mix}
        if args.difficulty is not None:
            varied["difficulty"] = args.difficulty
        if args.expert is not None:
            varied["expert"] = args.expert
    if args.roads == "families":
        families = args.road_families or "train"
        varied.update(roads="families",
                      road_families=families if families in ("train", "held_out", "all") else tuple(families.split(",")))
    bank = ScenarioBank(args.num_scenes, seed=args.seed, **varied)
    scenes = [bank[i] for i in range(len(bank))]
    name = ("outcome-varied " if args.outcomes == "varied" else "") + \
        (f"{args.expert}-expert " if args.expert else "") + \
        (f"road-families ({args.road_families or 'train'}) " if args.roads == "families" else "")

    def records_of(bank_scenes: Sequence[Scene], mined: Sequence[SceneMining] | None = None) -> list[dict[str, Any]]:
        if mined is None:
            from tqdm import tqdm

            mined = [mine_scene(s, config) for s in tqdm(bank_scenes, desc="mining", disable=args.no_progress)]
        return honesty_records(bank_scenes, mined, args.frames_per_scene, args.seed, not args.no_progress,
                               args.decision_labels, args.frame_sampling, args.pair_risk)

    def fit_records() -> list[dict[str, Any]] | None:
        if args.fit_seed is None:
            return None
        other = ScenarioBank(args.num_scenes, seed=args.fit_seed, **varied)
        return records_of([other[i] for i in range(len(other))])

    if args.labels_only:
        start = time.perf_counter()
        records = records_of(scenes)
        print(f"SYNTHETIC {name}bank: {len(scenes)} scenes (seed {args.seed}), "
              f"{sum(r['kind'] == 'pair' for r in records)} pairs, {len(records)} label records "
              f"(sampled decisions labelled: {args.decision_labels}, chosen: {args.frame_sampling}; pair risk: {args.pair_risk}; near-misses: {args.near_miss_rule}); {time.perf_counter() - start:.1f} s")
        print(honesty_findings(records, fit_records=fit_records()))
        return 0
    report = run_audit(scenes, config, progress=not args.no_progress)
    pairs = report.pairs
    print(f"SYNTHETIC {name}bank: {len(scenes)} scenes (seed {args.seed}), {len(pairs)} pairs, "
          f"{sum(p.has_positive for p in pairs)} with a positive; mining {report.seconds_mining:.1f} s, "
          f"audit {report.seconds_audit:.1f} s; clearance margin {_verify_config(config).clearance_margin} m over "
          f"{', '.join(_verify_config(config).clearance_over)}")
    print(type_table(report))
    print(clearance_lines(report))
    acc = [m for m in report.mined if report.accident[m.scene_id]]
    kept = sum(any(p.has_positive and p.negative_scores.get("collision") for p in m.pairs) for m in acc)
    n = len(report.audits)
    survive = sum(not (a.closed_loop_collision or a.closed_loop_offroad) for a in report.audits)
    print(f"\ntargets: DDC<1 {sum(a.ddc_below_one for a in report.audits)} (0), raw overlap "
          f"{sum(a.raw_overlap_any for a in report.audits)} (0), closed-loop survival "
          f"{100 * survive / max(n, 1):.1f}% (>= 95%), accident scenes with a verified pair "
          f"{100 * kept / max(len(acc), 1):.1f}% (>= 90%)")
    print()
    print(label_findings(report))
    print(honesty_findings(records_of(scenes, report.mined), fit_records=fit_records()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

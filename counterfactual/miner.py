"""Scene -> anchor pairs: risky moments, the driven negative, the searched positive (one scorer call), the label.

For every risky moment (:func:`counterfactual.mining.find_risk_moments`) and each of its decision frames ``t``:

1. **negative** = the trajectory actually driven from ``t`` (:func:`envs.sim.scoring.trajectory_from_log`);
2. **candidates** = the negative (index 0), the search families (:func:`counterfactual.search.generate_candidates`)
   and, for scenes with a map, the PDM-Closed-like reference trajectory (:func:`rewards.scorer.reference_for`);
3. all of them are scored in **one** :func:`rewards.scorer.score_group` call from the logged state at ``t``;
4. a negative that passes the scorer check (NC = TTC = DAC = DDC = 1 and no contact) is no negative: the decision
   frame is skipped and counted (``negative_verified_safe``); with ``MinerConfig.near_miss_rule="clearance"`` it is
   still a negative when it keeps less than the verification's clearance margin to an agent (step 5's check (d), the
   bar every positive must clear): a near-miss the scorer does not see (its TTC projects the ego only 1 s ahead at
   constant velocity) but that no positive would be allowed to drive; the frame is skipped as
   ``negative_verified_safe`` only when it clears the margin too;
5. every candidate is verified as it will be executed (:func:`counterfactual.verify.verify_candidates`: raw poses,
   closed-loop following, clearance margin, no oncoming lane; one batch per decision frame);
6. the positive is chosen by :func:`counterfactual.search.choose_positive` (least intervention first), or the pair
   records why none exists (never an invented positive);
7. the label is derived by :func:`counterfactual.labels.derive_label`, with one conflict type per moment
   (:func:`counterfactual.labels.moment_conflict`, classified once for all its lead times).
"""

from __future__ import annotations

import dataclasses
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from counterfactual.dataset import AnchorPair
from counterfactual.labels import LabelConfig, derive_label, moment_conflict
from counterfactual.mining import MomentConfig, RiskMoment, find_risk_moments, observation_ref
from counterfactual.search import (
    CandidateSpec,
    SearchConfig,
    choose_positive,
    generate_candidates,
    result_arrays,
    score_dict,
)
from counterfactual.verify import VerifyConfig, scorer_check, verify_candidates
from envs.scenes.scene import Scene
from envs.scenes.sources import Origin
from envs.sim.scoring import problem_from_scene, trajectory_from_log
from rewards.config import PDMConfig


NEAR_MISS_RULES = ("ttc", "clearance")
"""Values of :attr:`MinerConfig.near_miss_rule`."""


@dataclass(frozen=True)
class MinerConfig:
    """Everything the miner needs; every part is documented in its own module."""

    moments: MomentConfig = field(default_factory=MomentConfig)
    """Risk detection and lead times (:mod:`counterfactual.mining`)."""
    search: SearchConfig = field(default_factory=SearchConfig)
    """Candidate families and the positive's selection (:mod:`counterfactual.search`)."""
    labels: LabelConfig = field(default_factory=LabelConfig)
    """Label derivation thresholds (:mod:`counterfactual.labels`)."""
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    """Execution checks of the candidates (:mod:`counterfactual.verify`): clearance margin, closed-loop re-planning."""
    pdm: PDMConfig = field(default_factory=PDMConfig)
    """Scorer configuration."""
    use_reference: bool = True
    """Add the reference planner's trajectory as a candidate (scenes with a map)."""
    reference: str = "auto"
    """EP normalisation reference passed to ``score_group``."""
    seed: int = 0
    """Base seed of the explanation templates (each record mixes in its scene id, frame and agent)."""
    near_miss_rule: str = "ttc"
    """Which near-misses become pairs. ``"ttc"`` (default): near-misses from the projected-TTC trigger
    (:mod:`counterfactual.mining`), and only a driven trajectory that fails the scorer check is a negative; near-miss
    moments then rarely yield a pair (the scorer's TTC looks 1 s ahead at constant velocity: a close pass usually
    passes it). ``"clearance"``: the clearance margin a positive must keep (``verify.clearance_margin``) defines a
    near-miss on both sides: the gap trigger (``MomentConfig.near_miss_gap`` = the margin, unless set) reports agents
    that pass closer than it, and a driven trajectory that passes the scorer check but keeps less than the margin to
    an agent (over ``verify.clearance_over``) is a negative too."""

    def __post_init__(self) -> None:
        if self.near_miss_rule not in NEAR_MISS_RULES:
            raise ValueError(f"MinerConfig.near_miss_rule: expected one of {list(NEAR_MISS_RULES)}, "
                             f"got {self.near_miss_rule!r}")
        if self.search.keep_lane_tolerance != self.labels.swerve_threshold:
            raise ValueError(
                f"MinerConfig: search.keep_lane_tolerance ({self.search.keep_lane_tolerance} m) must equal "
                f"labels.swerve_threshold ({self.labels.swerve_threshold} m), or a keep-lane positive could be "
                f"labelled a swerve")


@dataclass
class SceneMining:
    """What mining one scene produced.

    Attributes:
        scene_id: the scene.
        scenario_type: its type.
        moments: every risky moment found (also those without a usable decision frame).
        pairs: one pair per mined decision frame (with a positive or a no-safe reason).
        skipped: ``(moment, frame, reason_code)`` for decision frames not turned into pairs.
    """

    scene_id: str
    scenario_type: str
    moments: list[RiskMoment] = field(default_factory=list)
    pairs: list[AnchorPair] = field(default_factory=list)
    skipped: list[tuple[RiskMoment, int, str]] = field(default_factory=list)


def record_seed(base_seed: int, scene_id: str, frame: int, agent_id: int) -> int:
    """Deterministic per-record explanation seed (32 bit)."""
    return (int(base_seed) * 1_000_003 + zlib.crc32(f"{scene_id}|{frame}|{agent_id}".encode())) % (2**32)


def _reference_candidate(problem: Any, config: PDMConfig) -> tuple[np.ndarray, CandidateSpec] | None:
    """The reference planner's trajectory (planned once per problem and cached by the scorer), None without map."""
    from rewards.scorer import reference_for

    ref = reference_for(problem, config)
    return None if ref is None else (np.asarray(ref.trajectory, dtype=np.float64), CandidateSpec("reference"))


def score_candidates(scene: Scene, t: int, config: MinerConfig) -> tuple[Any, Any, Any]:
    """The scored candidate group of decision frame ``t``: ``(problem, candidates, result)`` where the candidates are
    the driven negative (index 0), the search families and, with a map, the reference planner's trajectory, all
    scored in one :func:`rewards.scorer.score_group` call from the logged state (steps 1-3 of the module docstring)."""
    from rewards.scorer import score_group

    problem = problem_from_scene(scene, t, config.pdm)
    negative = trajectory_from_log(scene, t, config.pdm)
    extra = []
    if config.use_reference and scene.map is not None:
        ref = _reference_candidate(problem, config.pdm)
        if ref is not None:
            extra.append(ref)
    cands = generate_candidates(negative, float(problem.ego.velocity[0]), config.pdm, config.search, extra)
    return problem, cands, score_group(problem, cands.trajectories, config.pdm, reference=config.reference)


def mine_moment(
    scene: Scene,
    moment: RiskMoment,
    t: int,
    lead: float,
    config: MinerConfig = MinerConfig(),
    origin: "Origin | Mapping[str, Any] | None" = None,
    conflict: tuple[str, str] | None = None,
) -> AnchorPair | str:
    """One decision frame of a moment -> an :class:`AnchorPair`, or the code of why it was skipped.

    ``conflict``: the moment's ``(conflict_type, source)`` (:func:`counterfactual.labels.moment_conflict`); None
    classifies it for this moment here (the same result for every decision frame of the moment)."""
    if conflict is None:
        conflict = moment_conflict(scene, moment, config.labels)
    problem, cands, result = score_candidates(scene, t, config)
    negative = cands.trajectories[0]
    arrays = result_arrays(result)
    has_map = scene.map is not None
    passes_scorer = bool(scorer_check(arrays, has_map, config.search.require_no_contact)[0])
    if passes_scorer and config.near_miss_rule != "clearance":
        return "negative_verified_safe"
    verification = verify_candidates(scene, problem, cands.trajectories, arrays, config.pdm, config.verify)
    if passes_scorer and bool(verification.clearance[0]):
        return "negative_verified_safe"  # it clears the margin a positive must keep: no negative
    sel = choose_positive(cands, arrays, has_map, config.pdm, config.search, verification)
    positive = None if sel.index is None else cands.trajectories[sel.index]
    seed = record_seed(config.seed, scene.scene_id, t, moment.agent_id)
    neg_scores = score_dict(arrays, 0)
    label = derive_label(
        scene, t, moment.agent_id, moment.contact_frame, negative, positive, seed, config.labels,
        kind=moment.kind, conflict=conflict,
    )
    return AnchorPair(
        pair_id=f"{scene.scene_id}@{t}#{moment.agent_id}",
        scene_id=scene.scene_id,
        source=scene.meta.source,
        scenario_type=scene.meta.scenario_type,
        moment_kind=moment.kind,
        contact_frame=int(moment.contact_frame),
        lead_time_s=float(lead),
        decision_frame=int(t),
        decision_time_s=float(t * scene.dt),
        observation_ref=observation_ref(scene, t, origin),
        negative=negative,
        positive=positive,
        positive_spec=None if sel.index is None else cands.specs[sel.index].to_dict(),
        negative_scores=neg_scores,
        positive_scores=None if sel.index is None else score_dict(arrays, sel.index),
        positive_aggregate=float("nan") if sel.index is None else float(sel.aggregate[sel.index]),
        dac_checked=sel.dac_checked,
        num_candidates=len(cands) - 1,
        num_safe=int(sel.safe.sum()),
        no_safe_reason_code=sel.reason_code,
        no_safe_reason=sel.reason,
        label=label,
        clearance_margin_m=float(config.verify.clearance_margin),
        verification=None if sel.index is None else verification.record(sel.index),
        candidate_failures=sel.failure_counts,
    )


def moment_config(config: MinerConfig) -> MomentConfig:
    """The moment detection ``config`` implies: ``config.moments``, with the gap trigger at the clearance margin
    under ``near_miss_rule="clearance"`` (unless ``moments.near_miss_gap`` is set)."""
    if config.near_miss_rule == "clearance" and config.moments.near_miss_gap == 0:
        return dataclasses.replace(config.moments, near_miss_gap=float(config.verify.clearance_margin))
    return config.moments


def mine_scene(scene: Scene, config: MinerConfig = MinerConfig(),
               origin: "Origin | Mapping[str, Any] | None" = None) -> SceneMining:
    """All anchor pairs of one scene (see the module docstring)."""
    out = SceneMining(scene.scene_id, scene.meta.scenario_type)
    out.moments = find_risk_moments(scene, moment_config(config))
    for moment in out.moments:
        if not moment.decision_frames:
            continue
        conflict = moment_conflict(scene, moment, config.labels)
        for t, lead in zip(moment.decision_frames, moment.lead_times):
            pair = mine_moment(scene, moment, t, lead, config, origin, conflict)
            if isinstance(pair, str):
                out.skipped.append((moment, t, pair))
            else:
                out.pairs.append(pair)
    return out


@dataclass
class MiningStats:
    """Running totals over scenes, per scenario type (for the CLI's summary table)."""

    scenes: Counter = field(default_factory=Counter)
    accident_scenes: Counter = field(default_factory=Counter)
    moments: Counter = field(default_factory=Counter)
    near_misses: Counter = field(default_factory=Counter)
    moments_without_frame: Counter = field(default_factory=Counter)
    pairs: Counter = field(default_factory=Counter)
    with_positive: Counter = field(default_factory=Counter)
    negative_collides: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    no_safe: Counter = field(default_factory=Counter)
    """``(scenario_type, reason_code)`` -> count."""
    scenes_with_verified_pair: Counter = field(default_factory=Counter)
    """Accident scenes with at least one pair whose negative collides and whose positive is verified safe."""
    scenes_accounted: Counter = field(default_factory=Counter)
    """Accident scenes with such a pair, or with every mined frame counted as no-safe-counterfactual."""

    def add(self, mined: SceneMining, is_accident: bool) -> None:
        """Add one scene's outcome."""
        k = mined.scenario_type
        self.scenes[k] += 1
        self.accident_scenes[k] += int(is_accident)
        self.moments[k] += len(mined.moments)
        self.near_misses[k] += sum(m.kind == "near_miss" for m in mined.moments)
        self.moments_without_frame[k] += sum(not m.decision_frames for m in mined.moments)
        self.pairs[k] += len(mined.pairs)
        self.with_positive[k] += sum(p.has_positive for p in mined.pairs)
        self.negative_collides[k] += sum(bool(p.negative_scores.get("collision")) for p in mined.pairs)
        for _, _, code in mined.skipped:
            self.skipped[(k, code)] += 1
        for p in mined.pairs:
            if not p.has_positive:
                self.no_safe[(k, p.no_safe_reason_code)] += 1
        if is_accident:
            good = any(p.has_positive and p.negative_scores.get("collision") for p in mined.pairs)
            self.scenes_with_verified_pair[k] += int(good)
            collision_pairs = [p for p in mined.pairs if p.moment_kind == "collision"]
            accounted = good or (bool(collision_pairs) and all(not p.has_positive for p in collision_pairs))
            self.scenes_accounted[k] += int(accounted)

    def table(self) -> str:
        """A fixed-width summary table, one row per scenario type plus a total."""
        head = ("type", "scenes", "acc", "moments", "near", "no_frame", "pairs", "pos", "neg_coll", "yield", "no_safe")
        rows = []
        for k in sorted(self.scenes) + ["TOTAL"]:
            pick = (lambda c: sum(c.values())) if k == "TOTAL" else (lambda c: c[k])
            no_safe = Counter()
            for (kk, code), n in self.no_safe.items():
                if k in ("TOTAL", kk):
                    no_safe[code] += n
            acc = pick(self.accident_scenes)
            yld = f"{pick(self.scenes_with_verified_pair)}/{acc}" if acc else "-"
            rows.append(
                (
                    k,
                    pick(self.scenes),
                    acc,
                    pick(self.moments),
                    pick(self.near_misses),
                    pick(self.moments_without_frame),
                    pick(self.pairs),
                    pick(self.with_positive),
                    pick(self.negative_collides),
                    yld,
                    ", ".join(f"{c}:{n}" for c, n in sorted(no_safe.items())) or "-",
                )
            )
        widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
        lines += [fmt.format(*(str(v) for v in r)) for r in rows]
        skipped = Counter()
        for (_, code), n in self.skipped.items():
            skipped[code] += n
        if skipped:
            lines.append("skipped decision frames: " + ", ".join(f"{c}: {n}" for c, n in sorted(skipped.items())))
        return "\n".join(lines)

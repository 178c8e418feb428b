"""Evaluate a VLA policy on held-out scenes: driving (through ``agents.evaluation``) and its safety language.

``python -m agents.vla.evaluate --model DIR [--num-scenes 40 --seed 1000] [--pairs heldout.parquet]
[--train-pairs train.parquet --train-num-scenes 400 --train-seed 0] [--out results.json]``;
``python -m agents.vla.evaluate --table results.json [...]`` prints the table of saved reports (:func:`load_report`).

The policy is observed with the prompt state recorded in its folder (:func:`agents.vla.processor.resolve_prompt_state`;
``--prompt-state`` / ``--prompt-agents`` may restate it, and a value that differs from the recorded one is an error).

* **Open loop** (:func:`agents.evaluation.evaluate_open_loop`): one decision per scene, PDMS (NAVSIM v1.1) and
  collision rate; **closed loop** (:func:`agents.evaluation.evaluate_closed_loop`): collision rate and mean
  per-step PDMS. Both on a held-out bank (a seed never used for training) or a DeepAccident-layout folder.
* **Language accuracy**: greedy generations on **every held-out decision row**, parsed with
  :func:`counterfactual.language.parse_explanation` and compared with the rows' labels field by field
  (:func:`counterfactual.accuracy.label_accuracy`; the mean over agent class, sector, risk level, conflict type and
  action): the held-out anchor pairs' decisions (mined with the default miner when no ``--pairs`` file is given;
  truth: the mined label) and the sampled expert-log decisions of the held-out scenes (truth: the decision label
  from the geometry at their frame, :func:`counterfactual.frame_labels.frame_label`; the no-hazard label where the
  scene holds no projected conflict). ``language_accuracy_pairs`` keeps the score on the pair rows alone (the
  headline before every sampled decision carried a geometry label).
* **Risk accuracy**: the risk level parsed from the text against the truth, on the same rows (all together), on
  the pair rows and on the expert rows (``risk_accuracy_experts``; some expert rows state a hazard, others none.
  Results JSON files written before it was renamed call it ``no_hazard_accuracy``: :func:`load_report` reads them).
* **Trivial baselines** beside each accuracy, computed on exactly the same rows (:func:`trivial_baselines`): the
  majority value of each field over the training rows, and a lookup on (scenario type, lead time) fitted on the
  training rows (it reads the scenario type, which the policy cannot see).

The held-out rows are rendered with the SFT data builder (:mod:`agents.sft.data`, cached on disk).
"""

from __future__ import annotations

import argparse
import math
import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from agents.base import PolicyInput
from agents.sft.data import LABEL_COLUMNS
from counterfactual.accuracy import LabelBaseline
from agents.vla.policy import VLAPolicy

ACCURACY_FIELDS = LABEL_COLUMNS
"""Label fields of the language accuracy."""


@dataclass
class AccuracyReport:
    """Language and risk accuracy of one predictor on the held-out decision rows (pairs and expert decisions).

    Attributes:
        name: the predictor (policy name, ``majority``, ``type+lead lookup``).
        language_accuracy: mean of the per-field accuracies on every row (pairs + expert decisions).
        fields: per-field accuracy on every row (``counterfactual.accuracy.label_accuracy``).
        risk_accuracy: risk-level accuracy on every row (pairs + expert decisions); equal to ``fields["risk_level"]``.
        risk_accuracy_pairs: on the pair rows only.
        risk_accuracy_experts: on the expert rows only (their truth is the geometry label at their frame: some
            state a hazard, some none; called ``no_hazard_accuracy`` before, when every expert row's truth was
            ``none``, :data:`RENAMED_KEYS`).
        language_accuracy_pairs: mean of the per-field accuracies on the pair rows only.
        pairs, experts: row counts.
        per_row: one record per row, in row order, what the accuracies above average: ``sample_id``,
            ``scene_id``, ``kind`` (``pair`` / ``expert``), ``fields`` (``{field: 1.0 right, 0.0 wrong, None not
            scored}``, :func:`counterfactual.accuracy.label_hits`, on every row) and ``risk`` (the risk level
            right). Paired comparisons on the same rows read them (:mod:`experiments.compare`).
    """

    name: str
    language_accuracy: float
    fields: dict[str, float]
    risk_accuracy: float
    risk_accuracy_pairs: float
    risk_accuracy_experts: float
    pairs: int
    experts: int
    per_row: list[dict[str, Any]] = field(default_factory=list)
    language_accuracy_pairs: float = math.nan

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "AccuracyReport") -> "AccuracyReport":
        """The report of a plain dict (:meth:`VLAEvalReport.to_dict`'s ``accuracy`` entries); an old key of
        :data:`RENAMED_KEYS` reads as its new name. ``ValueError`` naming ``where`` and the key for a key no report
        has, a missing one, or an old key beside its new name."""
        data = dict(data)
        for old, new in RENAMED_KEYS.items():
            if old in data:
                if new in data:
                    raise ValueError(f"{where}: both {old!r} (the old name) and {new!r}; keep one")
                data[new] = data.pop(old)
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"{where}: unknown key {unknown[0]!r}, expected those of {names}")
        try:
            return cls(**data)
        except TypeError as exc:  # a required key missing
            raise ValueError(f"{where}: {exc}") from None


RENAMED_KEYS = {"no_hazard_accuracy": "risk_accuracy_experts"}
"""``{old key: new key}`` of :class:`AccuracyReport` in results JSON files written before a rename (read by
:meth:`AccuracyReport.from_dict`)."""


@dataclass
class VLAEvalReport:
    """Everything :func:`evaluate_vla` measured (means over scenes / rows; see the module docstring).

    ``open_loop`` / ``closed_loop`` are :class:`agents.evaluation.EvalResult` with ``language_accuracy`` and
    ``risk_accuracy`` filled in, so ``agents.evaluation.results_table`` prints them in the project's table.
    """

    policy: str
    open_loop: Any | None
    closed_loop: Any | None
    accuracy: list[AccuracyReport] = field(default_factory=list)
    """The policy first, then its blank-BEV row (``evaluate_vla(..., blank_bev=True)``), then the trivial
    baselines."""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "VLAEvalReport") -> "VLAEvalReport":
        """The report of :meth:`to_dict`'s dict (``ValueError`` naming ``where`` and the entry at fault)."""
        from agents.evaluation import EvalResult

        unknown = sorted(set(data) - {"policy", "open_loop", "closed_loop", "accuracy"})
        if unknown or "policy" not in data:
            raise ValueError(f"{where}: {'unknown key ' + repr(unknown[0]) if unknown else 'no policy'}, expected "
                             "policy, open_loop, closed_loop, accuracy")
        loops = {}
        for key in ("open_loop", "closed_loop"):
            try:
                loops[key] = None if data.get(key) is None else EvalResult(**data[key])
            except TypeError as exc:
                raise ValueError(f"{where}: {key}: {exc}") from None
        accuracy = [AccuracyReport.from_dict(a, f"{where}: accuracy[{i}]")
                    for i, a in enumerate(data.get("accuracy") or [])]
        return cls(policy=str(data["policy"]), accuracy=accuracy, **loops)


def write_report(path: str | Path, report: VLAEvalReport) -> Path:
    """Write ``report`` as JSON to ``path`` (atomically; NaN as JSON's ``NaN``); :func:`load_report` reads it."""
    import json

    from agents.vla.processor import write_json

    write_json(Path(path), json.loads(json.dumps(report.to_dict(), default=float)))
    return Path(path)


def load_report(path: str | Path) -> VLAEvalReport:
    """The report a results JSON file holds (:func:`write_report`, the CLI's ``--out``); a file written before
    a key was renamed reads under the new name (:data:`RENAMED_KEYS`). ``ValueError`` naming the file and the key
    at fault."""
    import json

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such results file")
    return VLAEvalReport.from_dict(json.loads(path.read_text()), str(path))


# ------------------------------------------------------------------------------------------------ accuracy
def _rows(table: Any) -> list[dict[str, Any]]:
    names = set(getattr(table, "column_names", ()) or ())
    cols = ("kind", "scenario_type", "lead_time_s", "prompt", *LABEL_COLUMNS,
            *(c for c in ("sample_id", "scene_id") if c in names))
    return [dict(zip(cols, values)) for values in zip(*(table[c] for c in cols))]


def _truth(row: Mapping[str, Any]) -> dict[str, str | None]:
    return {name: (row[name] or None) for name in LABEL_COLUMNS}


def _language(hits: np.ndarray) -> tuple[dict[str, float], float]:
    """``({field: mean over the rows that score it}, mean over the fields)`` of ``(n, fields)`` hits (NaN: not
    scored); NaN where nothing is scored."""
    means = {}
    for j, name in enumerate(ACCURACY_FIELDS):
        scored = hits[:, j][~np.isnan(hits[:, j])] if len(hits) else np.empty(0)
        means[name] = float(np.mean(scored)) if len(scored) else math.nan
    finite = [v for v in means.values() if not math.isnan(v)]
    return means, float(np.mean(finite)) if finite else math.nan


def accuracy_report(name: str, predicted: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]]
                    ) -> AccuracyReport:
    """Score predicted label fields (e.g. parsed from generated text) against the rows' labels: language and risk
    on every row (pairs and expert decisions alike), and each also on the pair rows alone.

    Args:
        name: the predictor's name in tables.
        predicted: ``(n,)`` mappings of label fields (``None`` or absent: not stated).
        rows: ``(n,)`` decision rows (:func:`_rows`): ``kind`` (``pair`` / ``expert``) and the label columns
            (``""`` where the label names none).
    """
    from counterfactual.accuracy import label_hits

    if len(predicted) != len(rows):
        raise ValueError(f"accuracy_report({name}): {len(predicted)} predictions for {len(rows)} rows")
    kinds = [r["kind"] for r in rows]
    unknown = sorted({str(k) for k in kinds} - {"pair", "expert"})
    if unknown:
        raise ValueError(f"accuracy_report({name}): row kind {unknown[0]!r}, expected 'pair' or 'expert'")
    pair_idx = [i for i, k in enumerate(kinds) if k == "pair"]
    expert_idx = [i for i, k in enumerate(kinds) if k == "expert"]
    hits = label_hits(list(predicted), [_truth(r) for r in rows]) if rows else np.empty((0, len(ACCURACY_FIELDS)))
    fields, language = _language(hits)
    _, language_pairs = _language(hits[pair_idx])
    risk_hits = [predicted[i].get("risk_level") == rows[i]["risk_level"] for i in range(len(rows))]

    def mean(idx: Sequence[int]) -> float:
        return float(np.mean([risk_hits[i] for i in idx])) if len(idx) else math.nan

    per_row = [{"sample_id": str(r.get("sample_id", i)), "scene_id": str(r.get("scene_id", "")), "kind": r["kind"],
                "fields": {f: (None if math.isnan(h) else float(h)) for f, h in zip(ACCURACY_FIELDS, hits[i])},
                "risk": bool(risk_hits[i])} for i, r in enumerate(rows)]
    return AccuracyReport(
        name=name, language_accuracy=language, fields=fields, risk_accuracy=mean(range(len(rows))),
        risk_accuracy_pairs=mean(pair_idx), risk_accuracy_experts=mean(expert_idx), pairs=len(pair_idx),
        experts=len(expert_idx), per_row=per_row, language_accuracy_pairs=language_pairs,
    )


def trivial_baselines(train_rows: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]]
                      ) -> list[AccuracyReport]:
    """The two trivial predictors of :class:`counterfactual.accuracy.LabelBaseline`, fitted on ``train_rows`` (pairs
    and expert decisions) and scored on exactly the rows the policy is scored on (``rows``, every field on every
    row, :func:`accuracy_report`):

    * majority: a constant per field, the most frequent value of that field over all training rows;
    * lookup: the most frequent training value of each field per (scenario type, lead time or ``expert``), the
      overall majority for unseen keys.
    """
    majority = LabelBaseline("majority").fit(list(train_rows)).predict(rows)
    lookup = LabelBaseline("type_lead_lookup").fit(list(train_rows)).predict(rows)
    return [accuracy_report("majority (trivial)", majority, rows),
            accuracy_report("type+lead lookup (trivial)", lookup, rows)]


def generate_texts(policy: VLAPolicy, table: Any, batch_size: int = 16, progress: bool = False,
                   blank_bev: bool = False) -> list[str]:
    """Greedy label texts of the policy for every row of a rendered sample table (drive prompt); with
    ``blank_bev`` every image is replaced by an all-zero (black) ``uint8 (H, W, 3)`` BEV of the same size, so the
    policy sees the prompt only (the "does it read the scene" ablation)."""
    from tqdm import tqdm

    bev = np.asarray(table.with_format("numpy")["bev"], dtype=np.uint8)
    if blank_bev:
        bev = np.zeros_like(bev)
    prompts = list(table["prompt"])
    texts: list[str] = []
    for start in tqdm(range(0, len(prompts), batch_size), desc="language", disable=not progress, leave=False):
        inputs = [PolicyInput(observation={"bev": bev[i]}, prompt=prompts[i])
                  for i in range(start, min(start + batch_size, len(prompts)))]
        texts += policy.predict(inputs).texts
    return texts


def language_accuracy(policy: VLAPolicy, table: Any, train_table: Any | None = None, batch_size: int = 16,
                      progress: bool = False, blank_bev: bool = False) -> list[AccuracyReport]:
    """Accuracy reports of the policy on the rows of ``table`` (pairs and safe expert decisions), followed by the
    trivial baselines fitted on ``train_table`` (when given). ``blank_bev``: the policy sees an all-zero BEV
    (:func:`generate_texts`; its report is named ``<policy> (blank BEV)``)."""
    from counterfactual.language import parse_explanation

    rows = _rows(table)
    texts = generate_texts(policy, table, batch_size, progress, blank_bev=blank_bev)
    name = f"{policy.name} (blank BEV)" if blank_bev else policy.name
    reports = [accuracy_report(name, [parse_explanation(t) for t in texts], rows)]
    if train_table is not None:
        reports += trivial_baselines(_rows(train_table), rows)
    return reports


# --------------------------------------------------------------------------------------------------- driving
def evaluate_vla(policy: VLAPolicy, source: Any, table: Any | None = None, train_table: Any | None = None,
                 open_loop: bool = True, closed_loop: bool = True, max_steps: int = 200,
                 progress: bool = True, blank_bev: bool = False, env_config: Any | None = None) -> VLAEvalReport:
    """Driving metrics on ``source`` (held-out scenes) and, with ``table`` (their rendered rows), the language and
    risk accuracies beside the trivial baselines (fitted on ``train_table``). ``blank_bev``: the language and risk
    accuracies are also measured with an all-zero BEV (:func:`generate_texts`), reported as an extra row
    ``<policy> (blank BEV)`` after the policy's (the driving metrics always see the real BEV). ``env_config``: the
    driving envs' :class:`envs.replay_env.EnvConfig` (default ``EnvConfig(text_prompt=True)``; pass the one the
    policy was trained with, e.g. its ``prompt_state``; ``text_prompt`` is switched on)."""
    from envs.replay_env import EnvConfig, ReplayEnv
    from agents.evaluation import evaluate_closed_loop, evaluate_open_loop

    report = VLAEvalReport(policy=policy.name, open_loop=None, closed_loop=None)
    config = dataclasses.replace(env_config if env_config is not None else EnvConfig(), text_prompt=True)
    if open_loop:
        env = ReplayEnv(source, mode="open_loop", config=config)
        report.open_loop = evaluate_open_loop(policy, env, progress=progress)
    if closed_loop:
        env = ReplayEnv(source, mode="closed_loop", config=config)
        report.closed_loop = evaluate_closed_loop(policy, env, progress=progress, max_steps=max_steps)
    if table is not None:
        report.accuracy = language_accuracy(policy, table, train_table, progress=progress)
        if blank_bev:
            report.accuracy.insert(1, language_accuracy(policy, table, progress=progress, blank_bev=True)[0])
        for result in (report.open_loop, report.closed_loop):
            if result is not None:
                result.language_accuracy = report.accuracy[0].language_accuracy
                result.risk_accuracy = report.accuracy[0].risk_accuracy
    return report


def _pct(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def report_table(reports: Sequence[VLAEvalReport]) -> str:
    """Plain-text table: open-loop PDMS and collision rate, closed-loop collision rate and PDMS, language and risk
    accuracy on every decision row, then both on the pair rows alone and risk on the expert rows (in %), trivial
    baselines as extra rows (their driving columns empty)."""
    head = ("method", "OL PDMS", "OL coll", "CL coll", "CL PDMS", "lang acc", "risk acc", "lang acc pairs",
            "risk acc pairs", "risk acc experts")
    lines = []
    baselines: dict[str, AccuracyReport] = {}
    for r in reports:
        acc = r.accuracy[0] if r.accuracy else None
        ol, cl = r.open_loop, r.closed_loop
        lines.append((r.policy, _pct(ol and ol.score), _pct(ol and ol.collision_rate), _pct(cl and cl.collision_rate),
                      _pct(cl and cl.score), _pct(acc and acc.language_accuracy), _pct(acc and acc.risk_accuracy),
                      _pct(acc and acc.language_accuracy_pairs), _pct(acc and acc.risk_accuracy_pairs),
                      _pct(acc and acc.risk_accuracy_experts)))
        for b in r.accuracy[1:]:
            baselines.setdefault(b.name, b)
    for b in baselines.values():
        lines.append((b.name, "", "", "", "", _pct(b.language_accuracy), _pct(b.risk_accuracy),
                      _pct(b.language_accuracy_pairs), _pct(b.risk_accuracy_pairs), _pct(b.risk_accuracy_experts)))
    widths = [max(len(h), *(len(r[i]) for r in lines)) if lines else len(h) for i, h in enumerate(head)]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in lines)])


# ------------------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    p = argparse.ArgumentParser(prog="python -m agents.vla.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="policy folder (e.g. <sft out>/final); required unless --table")
    p.add_argument("--table", nargs="+", default=None, metavar="JSON",
                   help="print the table of saved reports (--out files, older ones too) instead of evaluating")
    p.add_argument("--source", choices=("bank", "deepaccident"), default="bank", help="held-out scene source")
    p.add_argument("--num-scenes", type=int, default=40, help="bank: held-out scenes")
    p.add_argument("--seed", type=int, default=1000, help="bank: held-out seed (never used for training)")
    p.add_argument("--deepaccident-root", default=None, help="DeepAccident-layout folder (--source deepaccident)")
    p.add_argument("--split", default="val", help="DeepAccident split")
    p.add_argument("--pairs", default=None, help="held-out anchor pairs (default: mined now with the default miner)")
    p.add_argument("--train-pairs", default=None, help="training pairs (fit the trivial baselines)")
    p.add_argument("--train-num-scenes", type=int, default=400, help="bank scenes of the training rows (baselines)")
    p.add_argument("--train-seed", type=int, default=0, help="bank seed of the training rows (baselines)")
    p.add_argument("--cache-dir", default="outputs/sft_cache", help="rendered-sample cache folder")
    p.add_argument("--no-open-loop", action="store_true", help="skip the open-loop evaluation")
    p.add_argument("--no-closed-loop", action="store_true", help="skip the closed-loop evaluation")
    p.add_argument("--blank-bev", action="store_true",
                   help="also measure language / risk accuracy with an all-zero BEV (does the policy read its image?)")
    p.add_argument("--prompt-state", choices=("none", "ego", "agents"), default=None,
                   help="the prompt state the policy was trained with (envs.prompt_state): env observations and "
                        "rendered rows state it (default: the one recorded in --model; another value is an error)")
    p.add_argument("--prompt-agents", type=int, default=None,
                   help="agents stated with prompt state agents (default: recorded in --model)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: 1 without CUDA)")
    p.add_argument("--out", default=None, help="write the report as JSON here")
    p.add_argument("--no-progress", action="store_true", help="disable progress bars")
    return p


def heldout_pairs(source: Any, pairs_path: str | None, progress: bool = True) -> list:
    """Anchor pairs of the held-out scenes: from ``pairs_path``, or mined now (default miner, lead times 1/2/3 s)."""
    from counterfactual.dataset import load_anchor_pairs

    if pairs_path:
        return load_anchor_pairs(pairs_path)
    from tqdm import tqdm

    from counterfactual.miner import mine_scene

    pairs = []
    for i in tqdm(range(len(source)), desc="mining held-out pairs", disable=not progress, leave=False):
        pairs += mine_scene(source[i], origin=source.origin(i)).pairs
    return pairs


def prompt_state_configs(prompt_state: str = "none", prompt_agents: int = 4, **samples: Any) -> tuple[Any, Any]:
    """``(EnvConfig, SampleConfig)`` of the CLIs whose observation states ``prompt_state``
    (:mod:`envs.prompt_state`; ``"none"``: the defaults) with the sample settings ``samples``."""
    from agents.sft.data import SampleConfig
    from envs.observation import ObservationConfig
    from envs.replay_env import EnvConfig

    env = EnvConfig(text_prompt=True, prompt_state=prompt_state, prompt_agents=prompt_agents)
    return env, SampleConfig(**samples, observation=ObservationConfig(prompt_state=prompt_state,
                                                                      prompt_agents=prompt_agents))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    from agents.sft.trainer import set_threads

    from agents.sft.data import load_or_build_samples
    from agents.vla.processor import resolve_prompt_state
    from counterfactual.dataset import load_anchor_pairs
    from envs.scenes.sources import open_source

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.table:
        try:
            print(report_table([load_report(p) for p in args.table]))
        except ValueError as exc:
            parser.error(str(exc))
        return 0
    if not args.model:
        parser.error("--model is required (or --table JSON ... to print saved reports)")
    try:
        prompt_state = resolve_prompt_state(args.model, args.prompt_state, args.prompt_agents)
    except ValueError as exc:
        parser.error(str(exc))
    set_threads(args.threads)
    progress = not args.no_progress
    if args.source == "bank":
        source = open_source("bank", num_scenes=args.num_scenes, seed=args.seed)
    else:
        source = open_source("deepaccident", root=args.deepaccident_root, split=args.split, strict=False)
    policy = VLAPolicy.from_pretrained(args.model, name=Path(args.model).resolve().parent.name or "vla")
    env_config, samples = prompt_state_configs(*prompt_state)
    table = load_or_build_samples(source, heldout_pairs(source, args.pairs, progress), args.cache_dir, samples,
                                  progress=progress)
    train_table = None
    if args.train_pairs:
        train_source = open_source("bank", num_scenes=args.train_num_scenes, seed=args.train_seed)
        train_table = load_or_build_samples(train_source, load_anchor_pairs(args.train_pairs), args.cache_dir,
                                            samples, progress=progress)
    report = evaluate_vla(policy, source, table, train_table, open_loop=not args.no_open_loop,
                          closed_loop=not args.no_closed_loop, progress=progress, blank_bev=args.blank_bev,
                          env_config=env_config)
    print(report_table([report]))
    if args.out:
        write_report(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Language and risk accuracy against the mined safety labels, always beside two trivial baselines.

A label that a lookup on the scenario type and the lead time predicts is no evidence of understanding: on the
synthetic bank such a lookup reaches ~95 % risk accuracy. So every accuracy reported here comes with

* ``majority``: the most frequent value of each field in the training split;
* ``type_lead_lookup``: the most frequent value per (scenario type, lead time) in the training split (majority
  where the training split has no such key).

Both are fitted on a **training split** of the pairs and scored on the evaluation pairs (:func:`split_by_scene`
keeps all pairs of a scene on one side). API for the agents' evaluation::

    from counterfactual.accuracy import accuracy_report, split_by_scene
    train, test = split_by_scene(pairs, eval_fraction=0.5, seed=0)
    texts = [vla.explain(p) for p in test]                    # the model's generated sentences
    print(accuracy_report({"vla": texts}, test, train))     # the model's row + both baselines

Metrics (in [0, 1]): **language accuracy** parses each sentence (:func:`counterfactual.language.parse_explanation`)
and scores exact matches of :data:`LANGUAGE_FIELDS` against the mined label (a missing or ambiguous phrase is
wrong; records whose true action is ``none`` are left out of the action field); the headline is the mean of the
per-field accuracies, ``all_fields`` the share of records with every field right. **Risk accuracy** is the exact
match of the ``risk_level`` (4 classes), with ``risk_level_within_one`` (ordinal distance <= 1).
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from counterfactual.language import parse_explanation
from counterfactual.schema import NO_ACTION, RISK_LEVELS

LANGUAGE_FIELDS = ("risk_agent_class", "sector", "risk_level", "conflict_type", "action")
"""Label fields scored by exact match (the closed vocabulary of :mod:`counterfactual.language`)."""
CATEGORICAL_FIELDS = LANGUAGE_FIELDS
"""Alias of :data:`LANGUAGE_FIELDS`."""
BASELINES = ("majority", "type_lead_lookup")
"""Names of the trivial baselines, in table order."""
KEYED_BASELINES = BASELINES + ("type_majority", "kind_majority")
"""Every :class:`LabelBaseline`: the two of :data:`BASELINES`, ``type_majority`` (most frequent value per scenario
type alone) and ``kind_majority`` (per record kind alone: a pair, with a lead time, or a sampled decision, without);
the last two are the label-honesty audit's (:mod:`counterfactual.honesty`)."""


def _named(value: Any) -> Any:
    """A label value, with ``""`` (a field a no-hazard label does not name, as stored in tables) read as None."""
    return None if value == "" else value


def _fields(record: Any) -> Mapping[str, Any]:
    """Label fields of an :class:`~counterfactual.dataset.AnchorPair` (or a mapping with a ``"label"``), a
    :class:`~counterfactual.schema.SafetyLabel` or a mapping of label fields."""
    label = record["label"] if isinstance(record, Mapping) and "label" in record else getattr(record, "label", record)
    return label if isinstance(label, Mapping) else label.to_dict()


def _key(record: Any) -> tuple[str, float | str]:
    """(scenario type, lead time [s]) of a pair (or a mapping with those keys); a record without a finite lead time
    (a safe expert-log decision of the agents' evaluation rows) keys as ``(scenario type, "expert")``."""
    if isinstance(record, Mapping):
        typ, lead = str(record["scenario_type"]), float(record["lead_time_s"])
    else:
        typ, lead = str(record.scenario_type), float(record.lead_time_s)
    return (typ, lead) if np.isfinite(lead) else (typ, "expert")


def label_hits(predicted: Sequence[Mapping[str, Any]], truth: Sequence[Any]) -> np.ndarray:
    """Per-record, per-field exact matches of predicted label fields against the mined labels, the units that
    :func:`label_accuracy` averages (and a paired bootstrap resamples, :mod:`experiments.compare`).

    Returns ``(n, len(LANGUAGE_FIELDS))`` float64: 1.0 right, 0.0 wrong, NaN not scored (the ``action`` field of a
    record whose true action is ``none``). Matching rules as :func:`label_accuracy`.
    """
    if len(predicted) != len(truth):
        raise ValueError(f"label_hits: {len(predicted)} predictions for {len(truth)} labels")
    hits = np.full((len(truth), len(LANGUAGE_FIELDS)), np.nan)
    for k, (p, record) in enumerate(zip(predicted, truth)):
        g = _fields(record)
        for j, name in enumerate(LANGUAGE_FIELDS):
            if name == "action" and g.get(name) == NO_ACTION:
                continue
            hits[k, j] = float(_named(p.get(name)) == _named(g.get(name)))
    return hits


def label_accuracy(predicted: Sequence[Mapping[str, Any]], truth: Sequence[Any]) -> dict[str, float]:
    """Per-field exact-match accuracy of predicted label fields against the mined labels.

    ``predicted[i]`` may come from a structured head or from :func:`parse_explanation` of a generated sentence; a
    missing or None field counts as wrong, except where the truth names no value either (None or ``""``: the
    agent class, sector and conflict type of a no-hazard label, which its sentence does not name). ``truth[i]``: a pair, a label or a mapping of label fields. Returns
    ``{"<field>": acc, ..., "language": mean of the field accuracies, "all_fields": fraction with every field
    right, "risk_level_within_one": fraction within one ordinal level, "count": n}``. Records whose truth action is
    ``none`` are excluded from the ``action`` score (:func:`label_hits` gives the per-record matches).
    """
    if len(predicted) != len(truth):
        raise ValueError(f"label_accuracy: {len(predicted)} predictions for {len(truth)} labels")
    n = len(truth)
    out: dict[str, float] = {"count": float(n)}
    if n == 0:
        return out
    gold = [_fields(g) for g in truth]
    hits = label_hits(predicted, gold)
    for j, name in enumerate(LANGUAGE_FIELDS):
        scored = hits[:, j][~np.isnan(hits[:, j])]
        out[name] = float(np.mean(scored)) if len(scored) else float("nan")
    out["language"] = float(np.nanmean([out[name] for name in LANGUAGE_FIELDS]))
    out["all_fields"] = float(np.mean(np.all(np.nan_to_num(hits, nan=1.0) == 1.0, axis=1)))
    order = {r: i for i, r in enumerate(RISK_LEVELS)}
    within = [
        p.get("risk_level") in order and abs(order[p["risk_level"]] - order[g["risk_level"]]) <= 1
        for p, g in zip(predicted, gold)
    ]
    out["risk_level_within_one"] = float(np.mean(within))
    return out


def language_accuracy(texts: Sequence[str], truth: Sequence[Any]) -> dict[str, float]:
    """:func:`label_accuracy` of the fields parsed from generated sentences, plus ``time_kind`` (whether the
    sentence states the right kind of time: contact / projected TTC / none)."""
    parsed = [parse_explanation(t) for t in texts]
    out = label_accuracy(parsed, truth)
    if truth:
        out["time_kind"] = float(np.mean([p["time_kind"] == _fields(g).get("time_kind", "none")
                                          for p, g in zip(parsed, truth)]))
    return out


def risk_accuracy(levels: Sequence[str | None], truth: Sequence[Any]) -> dict[str, float]:
    """``{"risk_level": exact-match accuracy, "risk_level_within_one", "count"}`` of predicted risk levels."""
    acc = label_accuracy([{"risk_level": lv} for lv in levels], truth)
    return {k: acc[k] for k in ("risk_level", "risk_level_within_one", "count") if k in acc}


# ------------------------------------------------------------------------------------------------------ baselines
def split_by_scene(records: Iterable[Any], eval_fraction: float = 0.5, seed: int = 0) -> tuple[list, list]:
    """Deterministic (train, eval) split that keeps every scene's pairs on one side (hash of seed + scene id)."""
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction: expected a value in (0, 1), got {eval_fraction!r}")
    train, evaluation = [], []
    for r in records:
        scene = r["scene_id"] if isinstance(r, Mapping) else r.scene_id
        u = zlib.crc32(f"{seed}|{scene}".encode()) / 2**32
        (evaluation if u < eval_fraction else train).append(r)
    return train, evaluation


class LabelBaseline:
    """A trivial label predictor: the most frequent value of each field, per key (:data:`BASELINES`).

    Args:
        name: ``"majority"`` (one key for all), ``"type_lead_lookup"`` (key = scenario type and lead time) or
            ``"type_majority"`` (key = scenario type alone) or ``"kind_majority"`` (key = pair or sampled decision:
            whether the lead time is finite); keyed ones fall back to the majority for keys unseen in training.
    """

    def __init__(self, name: str) -> None:
        if name not in KEYED_BASELINES:
            raise ValueError(f"LabelBaseline: unknown baseline {name!r}; known: {KEYED_BASELINES}")
        self.name = name
        self._table: dict[Any, dict[str, str]] = {}
        self._majority: dict[str, str] = {}

    def fit(self, train: Sequence[Any]) -> "LabelBaseline":
        """Fit on training pairs (``ValueError`` when empty)."""
        if not train:
            raise ValueError(f"LabelBaseline({self.name}).fit: empty training split")
        counts: dict[Any, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
        overall: dict[str, Counter] = defaultdict(Counter)
        for r in train:
            f = _fields(r)
            for name in LANGUAGE_FIELDS:
                overall[name][f.get(name)] += 1
                if self.name != "majority":
                    counts[self._key(r)][name][f.get(name)] += 1
        self._majority = {name: _most_common(c) for name, c in overall.items()}
        self._table = {k: {name: _most_common(c) for name, c in v.items()} for k, v in counts.items()}
        return self

    def predict(self, records: Sequence[Any]) -> list[dict[str, str]]:
        """Predicted label fields for each record."""
        if not self._majority:
            raise RuntimeError(f"LabelBaseline({self.name}): call fit() first")
        return [dict(self._table.get(self._key(r), self._majority)) for r in records]

    def _key(self, record: Any) -> Any:
        if self.name == "type_majority":
            return _key(record)[0]
        if self.name == "kind_majority":
            return _key(record)[1] == "expert"
        return _key(record)


def _most_common(counter: Counter) -> str | None:
    """Most frequent value; ties go to the alphabetically first, "not named" (None or ``""``: a field a no-hazard
    label does not name, predicted as None) after every named value (deterministic)."""
    merged: Counter = Counter()
    for v, c in counter.items():
        merged[_named(v)] += c
    if not merged:
        return None
    top = max(merged.values())
    return min((v for v, c in merged.items() if c == top), key=lambda v: (v is None, str(v)))


def baseline_accuracies(train: Sequence[Any], evaluation: Sequence[Any]) -> dict[str, dict[str, float]]:
    """``{baseline name: label_accuracy of its predictions on evaluation}`` for both :data:`BASELINES`."""
    return {name: label_accuracy(LabelBaseline(name).fit(train).predict(evaluation), evaluation) for name in BASELINES}


# ------------------------------------------------------------------------------------------------------ tables
def format_accuracy_table(results: Mapping[str, Mapping[str, float]], title: str = "") -> str:
    """Fixed-width table, one row per method: n, language, risk, risk within one, all fields and each field [%].

    ``results``: ``{method: label_accuracy(...)-style dict}``; methods keep their order (put the baselines next
    to the model: :func:`accuracy_report` does).
    """
    cols = ("n", "lang %", "risk %", "risk+-1 %", "all %") + tuple(f"{f} %" for f in LANGUAGE_FIELDS)
    keys = ("count", "language", "risk_level", "risk_level_within_one", "all_fields") + LANGUAGE_FIELDS

    def cell(v: Any, k: str) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "n/a"
        return str(int(v)) if k == "count" else f"{100 * v:.1f}"

    rows = [[m] + [cell(acc.get(k), k) for k in keys] for m, acc in results.items()]
    head = ["method", *cols]
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = ([title] if title else []) + [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(lines)


def accuracy_report(
    predictions: Mapping[str, Sequence[Any]],
    evaluation: Sequence[Any],
    train: Sequence[Any],
    title: str = "",
) -> str:
    """The accuracy table of some methods on ``evaluation`` with both trivial baselines fitted on ``train``.

    Args:
        predictions: ``{method: per evaluation record, a generated sentence (str, parsed) or a mapping of label
            fields}``.
        evaluation: the evaluation pairs (their labels are the truth).
        train: the training pairs the baselines are fitted on (disjoint from ``evaluation``).
        title: first line of the table.
    """
    results: dict[str, Mapping[str, float]] = {}
    for name, preds in predictions.items():
        if len(preds) != len(evaluation):
            raise ValueError(f"accuracy_report: {name} has {len(preds)} predictions for {len(evaluation)} records")
        fields = [parse_explanation(p) if isinstance(p, str) else p for p in preds]
        results[name] = label_accuracy(fields, evaluation)
    results.update(baseline_accuracies(train, evaluation))
    return format_accuracy_table(results, title)

"""Paired differences between two methods on the same held-out scenes, with bootstrap 95% intervals.

``python -m experiments.compare RUN_DIR [RUN_DIR ...] --a sft_positive --b sft_negative [--columns pdms,...]
[--bootstrap 10000] [--seed 0] [--scheme hierarchical|scenes] [--out DIR] [--b-runs RUN_DIR ... --a-label A
--b-label B]`` reads each run's ``per_scene.jsonl``
(:mod:`experiments.per_scene`) and writes ``compare_<a>_vs_<b>.md`` / ``.json`` into ``--out`` (default: the first
run's parent); after ``python -m experiments.run -m seed=0,1,2`` the Hydra callback :class:`ComparePairs` does the
same in the sweep folder for every pair of ``evaluate.compare``. ``--b-runs`` reads ``b`` from other run folders,
paired in order with the runs (same seeds, same held-out scenes): one row under two configurations trained in
separate folders (an ablation: ``--a anchor_grpo --b anchor_grpo --a-label today --b-label beta0``).

**The statistic.** For each column (:data:`COLUMNS`), each run's value of a method is the results table's: the mean
over its held-out scenes (PDMS, collision rate, route completion, driving score), the mean over the five label
fields of each field's mean over the decisions (language accuracy: every decision row, pairs and expert decisions;
the pair decisions alone in ``per_scene.jsonl`` files written before that, whose expert records carry no
``fields``), the mean over every decision (risk accuracy). The paired difference of a run is
``value(b) - value(a)`` on the same scenes / decisions; the pooled difference is its mean over runs (seeds), in
percentage points.

**The bootstrap** (percentile interval, vectorised numpy: one ``(B, scenes)`` matrix of multinomial draw counts;
``scipy.stats.bootstrap`` resamples observations of equal weight, while here the unit is a *scene* carrying several
decisions, the statistic a ratio of weighted sums, and the draw shared by two methods and several runs). The resampled
unit is the held-out scene: a replicate draws scenes with replacement and takes all of each drawn scene's decisions
(a cluster bootstrap: the decisions of one scene are not independent). Both methods get the same draw, which is what
makes it paired. The runs of a seed sweep are evaluated on the *same* held-out scenes (the held-out bank seed is
fixed), so one scene draw per replicate is shared by every run: drawing scenes independently per seed would count
96 scenes x 3 seeds as 288 independent scenes and make the interval too narrow. Schemes:

* ``hierarchical`` (default): each replicate draws the runs (training seeds) with replacement, then the scenes
  (shared by the drawn runs); the pooled difference is the drawn runs' mean. The claim compared is about a training
  method, and its seeds are a sample of training outcomes: measured on the SFT comparison (README, "Comparing two
  methods"), language accuracy differed by -8.5, +5.9 and +9.0 points in the three seeds, and an interval that
  held the seeds fixed excluded 0 (+1.1 to +3.1) where this one does not (-8.0 to +9.3). With 3 seeds there are
  only 10 distinct run draws, so the seed level is coarse (and, as any bootstrap of 3 values, somewhat narrow):
  read the per-run column beside it, and use more seeds where a claim rests on it.
* ``scenes``: one scene draw per replicate, the runs held fixed: "on scenes like these, do *these trained models*
  differ" (the scene sampling error only).

The interval "excludes 0" when both ends are on the same side of 0. Identical inputs give exactly 0 (the same
arithmetic on the same numbers).
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from hydra.experimental.callback import Callback

COLUMNS = ("pdms", "collision_rate", "route_completion", "driving_score", "language_accuracy", "risk_accuracy")
"""Columns a comparison can report (the results table's, :data:`experiments.results.COLUMNS`)."""
SCENE_COLUMN = {"pdms": "pdms", "collision_rate": "collision", "route_completion": "route_completion",
                "driving_score": "driving_score"}
"""Column -> the ``scene`` record key it averages."""
LABEL_FIELDS = ("risk_agent_class", "sector", "risk_level", "conflict_type", "action")
"""Keys of a ``decision`` record's ``fields`` (:data:`counterfactual.accuracy.LANGUAGE_FIELDS`)."""
SCHEMES = ("hierarchical", "scenes")


@dataclass
class ColumnComparison:
    """The paired difference ``b - a`` of one column, in percentage points.

    Attributes:
        column: a key of :data:`COLUMNS`.
        a, b: the methods' values [%], mean over runs.
        diff: ``b - a`` [percentage points], mean over runs of the per-run differences.
        low, high: the bootstrap 95% percentile interval of ``diff``.
        excludes_zero: ``low > 0`` or ``high < 0``.
        per_run: ``b - a`` of each run [percentage points].
        scenes: distinct held-out scenes (resampling units) with values of both methods.
        units: scene (or decision) values per method and run, summed over runs.
    """

    column: str
    a: float
    b: float
    diff: float
    low: float
    high: float
    excludes_zero: bool
    per_run: list[float] = field(default_factory=list)
    scenes: int = 0
    units: int = 0


# ------------------------------------------------------------------------------------------------------ arrays
def _sums(records: Sequence[Mapping[str, Any]], column: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{scene_id: (numerator (P,), denominator (P,))}`` of one method's records in one run: the statistic over a
    weighting ``w`` of scenes is ``nanmean_p(sum_s w_s num_sp / sum_s w_s den_sp)`` (P = 1, or the 5 label fields
    for language accuracy)."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    parts = len(LABEL_FIELDS) if column == "language_accuracy" else 1

    def add(sid: str, num: np.ndarray, den: np.ndarray) -> None:
        n, d = out.get(sid, (np.zeros(parts), np.zeros(parts)))
        out[sid] = (n + num, d + den)

    for r in records:
        sid = str(r["scene_id"])
        if column in SCENE_COLUMN and r["unit"] == "scene":
            v = r[SCENE_COLUMN[column]]
            add(sid, np.array([0.0 if v is None else float(v)]), np.array([0.0 if v is None else 1.0]))
        elif column == "risk_accuracy" and r["unit"] == "decision":
            add(sid, np.array([float(r["risk"])]), np.ones(1))
        elif column == "language_accuracy" and r["unit"] == "decision" and r["fields"]:
            hits = [r["fields"].get(f) for f in LABEL_FIELDS]
            add(sid, np.array([0.0 if h is None else float(h) for h in hits]),
                np.array([0.0 if h is None else 1.0 for h in hits]))
    return out


def _units(records: Sequence[Mapping[str, Any]], column: str) -> set[str]:
    """Identifiers of the units a column averages (scene ids or decision sample ids), to check the pairing."""
    if column in SCENE_COLUMN:
        return {str(r["scene_id"]) for r in records if r["unit"] == "scene" and r[SCENE_COLUMN[column]] is not None}
    return {str(r["sample_id"]) for r in records if r["unit"] == "decision"
            and (column == "risk_accuracy" or r["fields"])}


def _statistic(weights: np.ndarray, num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``(B,)`` statistic of ``(B, S)`` scene weights on ``(S, P)`` sums (NaN where nothing is weighted)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        per_part = (weights @ num) / (weights @ den)  # (B, P)
    out = np.full(len(weights), np.nan)
    ok = ~np.all(np.isnan(per_part), axis=1)
    out[ok] = np.nanmean(per_part[ok], axis=1)
    return out


def paired_bootstrap(a: Sequence[Mapping[str, tuple[np.ndarray, np.ndarray]]],
                     b: Sequence[Mapping[str, tuple[np.ndarray, np.ndarray]]], resamples: int = 10000,
                     seed: int = 0, scheme: str = "hierarchical") -> dict[str, Any]:
    """Paired bootstrap of ``b - a`` over runs.

    Args:
        a, b: per run, ``{scene_id: (num (P,), den (P,))}`` of each method (:func:`_sums`); a run's two mappings
            must hold the same scenes.
        resamples: bootstrap replicates B.
        seed: the generator's seed (same seed, same interval).
        scheme: ``scenes`` or ``hierarchical`` (module docstring).

    Returns:
        ``{"a", "b", "diff", "low", "high", "per_run": [...], "scenes": S}``, fractions (not %); NaN where a method
        has no value.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme: expected one of {SCHEMES}, got {scheme!r}")
    if len(a) != len(b) or not a:
        raise ValueError(f"paired_bootstrap: {len(a)} runs of a against {len(b)} of b")
    scenes = sorted({sid for run in a for sid in run} | {sid for run in b for sid in run})
    index = {sid: k for k, sid in enumerate(scenes)}
    first = next((v for run in [*a, *b] for v in run.values()), None)
    parts = len(first[0]) if first is not None else 1

    def dense(run: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        num, den = np.zeros((len(scenes), parts)), np.zeros((len(scenes), parts))
        for sid, (n, d) in run.items():
            num[index[sid]], den[index[sid]] = n, d
        return num, den

    arrays = [(dense(ra), dense(rb)) for ra, rb in zip(a, b)]
    ones = np.ones((1, len(scenes)))
    point_a = np.array([_statistic(ones, *da)[0] for da, _ in arrays])
    point_b = np.array([_statistic(ones, *db)[0] for _, db in arrays])
    per_run = point_b - point_a
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(scenes), np.full(len(scenes), 1.0 / len(scenes)), size=resamples).astype(float)
    diffs = np.stack([_statistic(weights, *db) - _statistic(weights, *da) for da, db in arrays], axis=1)  # (B, R)
    if scheme == "hierarchical":
        runs = rng.multinomial(len(arrays), np.full(len(arrays), 1.0 / len(arrays)), size=resamples).astype(float)
    else:
        runs = np.ones((resamples, len(arrays)))
    with np.errstate(invalid="ignore"):
        pooled = np.nansum(diffs * runs, axis=1) / np.sum(runs * ~np.isnan(diffs), axis=1)
    finite = pooled[np.isfinite(pooled)]
    low, high = (np.percentile(finite, [2.5, 97.5]) if len(finite) else (np.nan, np.nan))
    return {"a": float(np.nanmean(point_a)) if np.isfinite(point_a).any() else np.nan,
            "b": float(np.nanmean(point_b)) if np.isfinite(point_b).any() else np.nan,
            "diff": float(np.nanmean(per_run)) if np.isfinite(per_run).any() else np.nan,
            "low": float(low), "high": float(high), "per_run": [float(x) for x in per_run], "scenes": len(scenes)}


# ---------------------------------------------------------------------------------------------------- compare
def load_runs(run_dirs: Sequence[Path]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """``(header, records)`` of each run's ``per_scene.jsonl`` (``ValueError`` naming the file at fault)."""
    from experiments.per_scene import PER_SCENE_FILE, read_per_scene

    return [read_per_scene(Path(d) / PER_SCENE_FILE) for d in run_dirs]


def compare(runs: Sequence[tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]], a: str, b: str,
            columns: Sequence[str] = COLUMNS, resamples: int = 10000, seed: int = 0, scheme: str = "hierarchical",
            names: Sequence[str] | None = None) -> list[ColumnComparison]:
    """Paired ``b - a`` of every column both methods have, pooled over ``runs`` (``(header, records)`` each).

    Raises ``ValueError`` naming the run and method when a method is missing from a run, when the two methods were
    not evaluated on the same scenes / decisions of a run, or for an unknown column. A column that one of the
    methods has in no run (a label column of a planner, a driving column of a blank-BEV or trivial row) is left out;
    one that a method has in some runs only is an error naming the runs."""
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise ValueError(f"--columns: unknown {unknown}; known: {list(COLUMNS)}")
    names = list(names or [f"run {i}" for i in range(len(runs))])
    by_method: list[dict[str, list[Mapping[str, Any]]]] = []
    for name, (_, records) in zip(names, runs):
        methods: dict[str, list[Mapping[str, Any]]] = {}
        for r in records:
            methods.setdefault(str(r["method"]), []).append(r)
        for m in (a, b):
            if m not in methods:
                raise ValueError(f"{name}: no per-scene records of method {m!r}; it has {sorted(methods)}")
        by_method.append(methods)
    out = []
    for column in columns:
        has = [[bool(_units(run[m], column)) for run in by_method] for m in (a, b)]
        if not any(has[0]) or not any(has[1]):
            continue
        for m, flags in zip((a, b), has):
            if not all(flags):
                raise ValueError(f"{column}: method {m!r} has no values in "
                                 f"{[n for n, f in zip(names, flags) if not f]} (it is n/a there)")
        for name, run in zip(names, by_method):
            ua, ub = _units(run[a], column), _units(run[b], column)
            if ua != ub:
                raise ValueError(f"{name}: {column} of {a!r} and {b!r} are not on the same units ({len(ua ^ ub)} "
                                 f"differ, e.g. {sorted(ua ^ ub)[:3]}): not a paired comparison")
        res = paired_bootstrap([_sums(run[a], column) for run in by_method],
                               [_sums(run[b], column) for run in by_method], resamples, seed, scheme)
        pct = {k: 100.0 * res[k] for k in ("a", "b", "diff", "low", "high")}
        out.append(ColumnComparison(column, pct["a"], pct["b"], pct["diff"], pct["low"], pct["high"],
                                    bool(pct["low"] > 0 or pct["high"] < 0), [100.0 * x for x in res["per_run"]],
                                    res["scenes"], sum(len(_units(run[a], column)) for run in by_method)))
    return out


def markdown(results: Sequence[ColumnComparison], a: str, b: str, runs: int, resamples: int, scheme: str,
             skipped: Sequence[str] = ()) -> str:
    """The comparison as a markdown table (values in %, differences in percentage points)."""
    what = "runs (seeds), then scenes shared by them" if scheme == "hierarchical" else "scenes, the runs held fixed"
    lines = [f"Paired difference {b} - {a} on the same held-out scenes, {runs} run(s), bootstrap 95% percentile "
             f"interval ({resamples} resamples of {what}; scheme {scheme}); values in %, differences in percentage "
             "points; per run: each run's difference.", "",
             f"| column | {a} | {b} | {b} - {a} | 95% interval | excludes 0 | per run | scenes | units |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        per_run = ", ".join(f"{x:+.1f}" for x in r.per_run)
        lines.append(f"| {r.column} | {r.a:.1f} | {r.b:.1f} | {r.diff:+.1f} | [{r.low:+.1f}, {r.high:+.1f}] | "
                     f"{'yes' if r.excludes_zero else 'no'} | {per_run} | {r.scenes} | {r.units} |")
    if skipped:
        lines += ["", f"Not compared (n/a for {a} or {b}): {', '.join(skipped)}."]
    return "\n".join(lines) + "\n"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")


def cross_runs(runs_a: Sequence[tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]],
               runs_b: Sequence[tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]], a: str, b: str,
               label_a: str, label_b: str) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Runs pairing method ``a`` of ``runs_a[i]`` with method ``b`` of ``runs_b[i]`` (the same row of two
    configurations, e.g. anchor-GRPO with and without an option, trained in separate run folders from the same seed),
    the methods renamed ``label_a`` / ``label_b``. The pairs must have the same seed and held-out scenes (``ValueError``
    naming the runs otherwise; the scene check is :func:`compare`'s)."""
    if len(runs_a) != len(runs_b) or not runs_a:
        raise ValueError(f"--b-runs: {len(runs_b)} run(s) against {len(runs_a)} run(s) of a; pair them one to one")
    if label_a == label_b:
        raise ValueError(f"cross-run comparison: both rows are labelled {label_a!r}; give --a-label / --b-label")
    out = []
    for i, ((ha, ra), (hb, rb)) in enumerate(zip(runs_a, runs_b)):
        if ha.get("seed") != hb.get("seed"):
            raise ValueError(f"pair {i}: seed {ha.get('seed')!r} against {hb.get('seed')!r}: list --b-runs in the "
                             "order of the runs")
        records = ([{**r, "method": label_a} for r in ra if str(r["method"]) == a]
                   + [{**r, "method": label_b} for r in rb if str(r["method"]) == b])
        out.append((dict(ha), records))
    return out


def write_comparison(run_dirs: Sequence[Path], a: str, b: str, out: Path, columns: Sequence[str] = COLUMNS,
                     resamples: int = 10000, seed: int = 0, scheme: str = "hierarchical",
                     b_run_dirs: Sequence[Path] | None = None, label_a: str | None = None,
                     label_b: str | None = None) -> Path:
    """Compare, print and write ``compare_<a>_vs_<b>.md`` / ``.json`` into ``out``; returns the markdown path.
    With ``b_run_dirs``, ``b`` is read from those runs (paired in order with ``run_dirs``: :func:`cross_runs`) and
    the rows are named ``label_a`` / ``label_b`` (default ``a`` / ``b``)."""
    from envs.atomic import atomic_write_text

    runs = load_runs(run_dirs)
    names = [str(d) for d in run_dirs]
    if b_run_dirs:
        label_a, label_b = label_a or a, label_b or b
        runs = cross_runs(runs, load_runs(b_run_dirs), a, b, label_a, label_b)
        names = [f"{d} / {e}" for d, e in zip(run_dirs, b_run_dirs)]
        a, b = label_a, label_b
    results = compare(runs, a, b, columns, resamples, seed, scheme, names=names)
    skipped = [c for c in columns if c not in {r.column for r in results}]
    md = markdown(results, a, b, len(runs), resamples, scheme, skipped)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"compare_{_slug(a)}_vs_{_slug(b)}"
    atomic_write_text(stem.with_suffix(".md"), md)
    atomic_write_text(stem.with_suffix(".json"), json.dumps(
        {"a": a, "b": b, "runs": [str(d) for d in run_dirs],
         "b_runs": [str(d) for d in b_run_dirs] if b_run_dirs else None, "seeds": [h.get("seed") for h, _ in runs],
         "resamples": resamples, "seed": seed, "scheme": scheme, "unit": "percentage points",
         "columns": [asdict(r) for r in results], "skipped": skipped}, indent=2))
    print(md)
    return stem.with_suffix(".md")


class ComparePairs(Callback):
    """Hydra callback: at the end of a multirun, the paired comparisons of ``evaluate.compare`` over the jobs' run
    folders that hold ``per_scene.jsonl``, written into the sweep folder."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        from experiments.per_scene import PER_SCENE_FILE

        pairs = list(config.get("evaluate", {}).get("compare", None) or [])
        sweep = Path(config.hydra.sweep.dir)
        runs = sorted(p.parent for p in sweep.glob(f"*/{PER_SCENE_FILE}"))
        if not pairs or not runs:
            return
        resamples = int(config.evaluate.get("bootstrap", 10000))
        for a, b in pairs:
            try:
                path = write_comparison(runs, str(a), str(b), sweep, resamples=resamples)
                print(f"== compare {b} - {a} over {len(runs)} runs: {path}")
            except ValueError as exc:
                print(f"== compare {b} - {a}: not possible: {exc}")


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI; returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m experiments.compare", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run folders with per_scene.jsonl (e.g. the jobs of a seed sweep)")
    p.add_argument("--a", required=True, help="the reference row (e.g. sft_positive)")
    p.add_argument("--b", required=True, help="the row compared with it (e.g. sft_negative): differences are b - a")
    p.add_argument("--columns", default=",".join(COLUMNS), help=f"comma-separated, of {','.join(COLUMNS)}")
    p.add_argument("--bootstrap", type=int, default=10000, help="bootstrap resamples (>= 100)")
    p.add_argument("--seed", type=int, default=0, help="the bootstrap generator's seed")
    p.add_argument("--scheme", choices=SCHEMES, default="hierarchical",
                   help="hierarchical: runs (seeds), then scenes; scenes: scenes only, the runs held fixed")
    p.add_argument("--out", default=None, help="output folder (default: the first run's parent)")
    p.add_argument("--b-runs", nargs="+", default=None,
                   help="read --b from these run folders instead (one per run, same seeds, same order): the same "
                        "row of two configurations trained in separate folders")
    p.add_argument("--a-label", default=None, help="with --b-runs: the name of a's row (default: --a)")
    p.add_argument("--b-label", default=None, help="with --b-runs: the name of b's row (default: --b)")
    args = p.parse_args(argv)
    if args.bootstrap < 100:
        raise SystemExit(f"--bootstrap: expected >= 100 resamples, got {args.bootstrap}")
    if args.b_runs is None and args.a == args.b:
        raise SystemExit(f"--a and --b are both {args.a!r}: nothing to compare")
    if args.b_runs is not None and (args.a_label or args.a) == (args.b_label or args.b):
        raise SystemExit(f"--b-runs: both rows would be named {args.a_label or args.a!r}; give --a-label / --b-label")
    runs = [Path(r) for r in args.runs]
    columns = [c.strip() for c in args.columns.split(",") if c.strip()]
    try:
        write_comparison(runs, args.a, args.b, Path(args.out) if args.out else runs[0].parent, columns,
                         args.bootstrap, args.seed, args.scheme,
                         [Path(r) for r in args.b_runs] if args.b_runs else None, args.a_label, args.b_label)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The evaluation stage's rows and the paper-style results table (markdown, CSV, JSON), one run or several seeds.

Rows: the planners (``pdm_closed_like``; ``safe_oracle``, which knows the logged future: a privileged reference, not an
upper bound: it can still be hit or leave the road, ``benchmarks/bench_oracle.py``), the learned
methods (positive-only SFT, negative-enhanced SFT, SB3 PPO, vanilla GRPO, anchor-GRPO) and the two trivial label
predictors (majority class; scenario-type + lead-time lookup fitted on the training pairs) as rows of their own.
Columns (:data:`COLUMNS`): open-loop PDMS (NAVSIM v1.1, one decision per held-out scene), closed-loop collision rate,
route completion and driving score (one episode per held-out scene, :mod:`envs.sim.metrics`), language accuracy and
risk-prediction accuracy (the label stated in the generated text against the row's label, both on every held-out
decision row: the pairs' mined labels and the sampled decisions' geometry labels; the trivial predictors on exactly
the same rows, :mod:`agents.vla.evaluate`). A cell that does not
apply is ``n/a`` with the reason in the row's note (a policy that states no label; a trivial predictor that does not
drive); several seeds give ``mean +- std``. With ``evaluate.blank_bev`` every label-stating row also gets a row
``<method> (blank BEV)``: its language / risk accuracy with an all-zero BEV (does it read the scene?).

Besides the table, the ``eval`` stage writes every method's per-scene (and per-decision) values, the units these
means average, to ``per_scene.jsonl`` (:mod:`experiments.per_scene`), which :mod:`experiments.compare` turns into
paired differences with bootstrap intervals.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

COLUMNS = (
    ("pdms", "PDMS (open loop)"),
    ("collision_rate", "collision % (closed loop)"),
    ("route_completion", "route completion"),
    ("driving_score", "driving score"),
    ("language_accuracy", "language acc"),
    ("risk_accuracy", "risk acc"),
)
"""``(key, header)`` of the table's value columns (all in %)."""

def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def row_from_results(method: str, kind: str, open_loop: Any = None, closed_loop: Any = None,
                     language: float | None = None, risk: float | None = None, note: str = "") -> dict[str, Any]:
    """A table row from :class:`agents.evaluation.EvalResult` s (``None`` where not measured)."""
    row: dict[str, Any] = {"method": method, "kind": kind, "note": note}
    row["pdms"] = _num(open_loop.score) if open_loop is not None else None
    # the open-loop PDMS's terms (means over the held-out decisions: NC, DAC, DDC, TTC, EP, comfort), results.json only
    row["open_loop_terms"] = ({k: _num(v) for k, v in open_loop.sub_scores.items()}
                              if open_loop is not None and open_loop.sub_scores else None)
    row["open_loop_distinct_decisions"] = open_loop.distinct_decisions if open_loop is not None else None
    row["sp_pdms_closed_loop"] = _num(closed_loop.driving.get("sp_pdms")) if closed_loop is not None else None
    row["collision_rate"] = _num(closed_loop.collision_rate) if closed_loop is not None else None
    row["route_completion"] = _num(closed_loop.driving.get("route_completion")) if closed_loop is not None else None
    row["driving_score"] = _num(closed_loop.driving.get("driving_score")) if closed_loop is not None else None
    row["language_accuracy"] = language
    row["risk_accuracy"] = risk
    return row


def _cell(values: Sequence[Any]) -> str:
    finite = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not finite:
        return "n/a"
    arr = 100.0 * np.asarray(finite)
    return f"{arr[0]:.1f}" if len(arr) == 1 else f"{arr.mean():.1f} +- {arr.std(ddof=1):.1f}"


def _order(methods: Sequence[str]) -> list[str]:
    from experiments.registry import row_order

    known = [m for m in row_order() if m in methods]
    return known + [m for m in methods if m not in known]


def table_rows(runs: Sequence[Sequence[Mapping[str, Any]]]) -> list[list[str]]:
    """Cells of the table over one or several runs (each a list of rows): ``[method, seeds, *values, note]``."""
    by_method: dict[str, list[Mapping[str, Any]]] = {}
    for rows in runs:
        for row in rows:
            by_method.setdefault(row["method"], []).append(row)
    out = []
    for method in _order(list(by_method)):
        rows = by_method[method]
        cells = [method, str(len(rows))] + [_cell([r.get(k) for r in rows]) for k, _ in COLUMNS]
        out.append(cells + [rows[0].get("note", "")])
    return out


def markdown_table(runs: Sequence[Sequence[Mapping[str, Any]]], title: str = "") -> str:
    """The results table in markdown (values in %, ``n/a`` explained in the note column)."""
    head = ["method", "runs", *[h + " %" for _, h in COLUMNS], "note"]
    lines = ([title, ""] if title else []) + ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(runs)]
    return "\n".join(lines) + "\n"


def csv_table(runs: Sequence[Sequence[Mapping[str, Any]]]) -> str:
    """The results table as CSV (same cells as :func:`markdown_table`)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["method", "runs", *[h + " %" for _, h in COLUMNS], "note"])
    writer.writerows(table_rows(runs))
    return buf.getvalue()


def check_cells(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Problems of a run's rows: every value must be a finite number or ``None`` with a note saying why."""
    problems = []
    for row in rows:
        for key, header in COLUMNS:
            value = row.get(key)
            if value is None:
                if not row.get("note"):
                    problems.append(f"{row['method']}: {header} is n/a without a note")
            elif not math.isfinite(float(value)):
                problems.append(f"{row['method']}: {header} is {value}")
    return problems


# --------------------------------------------------------------------------------------------------- evaluation
def evaluate_methods(ctx: Any, records: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Evaluate the planners (``evaluate.planners``) and every selected method (``algo.methods``) on the held-out
    scenes, each as its :class:`~experiments.registry.Method` loads it; a row whose policy writes the safety label gets
    its language / risk accuracy (the agent's :attr:`~experiments.registry.Agent.label_accuracy`), and the first such
    row brings the trivial label predictors as rows of their own. ``evaluate.blank_bev``: each label-stating row is
    followed, after the trivial rows, by its blank-BEV row (accuracies only). ``records``: when given, the per-scene
    and per-decision records of every row (:mod:`experiments.per_scene`) are appended to it."""
    from experiments.per_scene import decision_records, scene_records
    from experiments.pipeline import cpu_seconds

    from agents.evaluation import evaluate_closed_loop, evaluate_open_loop
    from envs.replay_env import EnvConfig, ReplayEnv
    from experiments.builders import env_config, sources, start_steering
    from experiments.registry import NO_LABEL_NOTE, get_agent, get_method

    cfg = ctx.cfg
    ev = cfg.evaluate
    progress = bool(cfg.progress)
    _, held, _ = sources(ctx)
    agent = get_agent(cfg.agent.name)
    rows: list[dict[str, Any]] = []
    trivial = None
    blank_rows: list[dict[str, Any]] = []
    out = records if records is not None else []
    marks: list[tuple[str, float]] = []
    for name in [*ev.planners, *cfg.algo.methods]:
        marks.append((name, time.perf_counter(), cpu_seconds()))
        method = get_method(name)
        policy = method.load(ctx)
        sampled = method.kind == "learned" and ev.decisions != "greedy"
        if sampled:
            policy.set_decisions(ev.decisions, ev.temperature, seed=int(cfg.seed))
        config = EnvConfig(bev=None, reward=cfg.reward, start_steering=start_steering(ctx)) \
            if method.privileged_view else env_config(ctx)
        ol = evaluate_open_loop(policy, ReplayEnv(held, "open_loop", config), progress=progress) \
            if ev.open_loop else None
        cl = evaluate_closed_loop(policy, ReplayEnv(held, "closed_loop", config), progress=progress) \
            if ev.closed_loop else None
        note = agent.notes.get(name, method.note) if method.kind == "learned" else method.note
        if sampled:
            note += f"; driving decisions sampled (temperature {ev.temperature:g}), labels greedy"
        out.extend(scene_records(name, ol, cl))
        if method.kind == "learned" and method.states_label and agent.label_accuracy is not None:
            accuracy = agent.label_accuracy(ctx, policy)
            trivial = trivial or accuracy[1:]
            rows.append(row_from_results(name, "learned", ol, cl, accuracy[0].language_accuracy,
                                         accuracy[0].risk_accuracy, note=note))
            out.extend(decision_records(name, accuracy[0]))
            if ev.blank_bev:
                blank = agent.label_accuracy(ctx, policy, blank_bev=True)[0]
                blank_name = f"{name} (blank BEV)"
                blank_rows.append(row_from_results(
                    blank_name, "ablation", language=blank.language_accuracy, risk=blank.risk_accuracy,
                    note=f"{name} stating its label from an all-zero BEV (prompt only): does it read the scene? "
                         "Label rows only: driving columns n/a"))
                out.extend(decision_records(blank_name, blank))
            continue
        if method.kind == "learned" and agent.label_accuracy is None:
            note += agent.no_label_note
        else:
            note += NO_LABEL_NOTE
        rows.append(row_from_results(name, method.kind, ol, cl, note=note))
    for base in trivial or []:
        how = "the scenario type and lead time (which the policy cannot see)" if "lookup" in base.name else \
            "nothing: the most frequent training value of each field"
        rows.append(row_from_results(base.name, "trivial", language=base.language_accuracy,
                                     risk=base.risk_accuracy, note=f"trivial label predictor fitted on the training "
                                     f"rows, reads {how}; does not drive: driving columns n/a"))
        out.extend(decision_records(base.name, base))
    marks.append(("", time.perf_counter(), cpu_seconds()))
    print("eval seconds per row, wall (CPU) (open + closed loop, label accuracy, blank BEV): " +
          ", ".join(f"{n} {t1 - t0:.0f} ({c1 - c0:.0f})" for (n, t0, c0), (_, t1, c1) in zip(marks, marks[1:])))
    return rows + blank_rows


def write_results(ctx: Any, rows: Sequence[Mapping[str, Any]],
                  records: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Path]:
    """``results.md`` / ``results.csv`` / ``results.json`` in the run folder and TensorBoard scalars; with
    ``records`` (:func:`evaluate_methods`'s) also ``per_scene.jsonl`` (:mod:`experiments.per_scene`)."""
    from envs.atomic import atomic_write_text
    from experiments.builders import evaluates_training_bank, sources
    from experiments.pipeline import plain

    _, _, description = sources(ctx)
    where = "the TRAINING scenes (not held out)" if evaluates_training_bank(ctx.cfg.env) else "held-out scenes"
    title = (f"Results on {where}: {description}. Seed {ctx.cfg.seed}, agent {ctx.cfg.agent.name}, "
             f"reward {ctx.cfg.reward.kind} ({ctx.cfg.reward.reward_score}). All values in %.")
    paths = {"table": ctx.path("results.md"), "csv": ctx.path("results.csv"), "json": ctx.path("results.json")}
    atomic_write_text(paths["table"], markdown_table([rows], title))
    atomic_write_text(paths["csv"], csv_table([rows]))
    atomic_write_text(paths["json"], json.dumps({"title": title, "seed": ctx.cfg.seed, "rows": list(rows),
                                                 "config": plain(ctx.cfg)}, indent=2, default=str))
    if records is not None:
        from experiments.per_scene import PER_SCENE_FILE, write_per_scene

        paths["per_scene"] = write_per_scene(ctx.path(PER_SCENE_FILE), records, seed=ctx.cfg.seed,
                                             description=description)
    if ctx.cfg.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(ctx.path("tb", "eval", ".keep").parent))
        for row in rows:
            for key, _ in COLUMNS:
                if row.get(key) is not None:
                    writer.add_scalar(f"eval/{row['method']}/{key}", float(row[key]), 0)
        writer.close()
    return paths


def aggregate(run_dirs: Sequence[Path]) -> tuple[str, str, dict[str, Any]]:
    """``(markdown, csv, json)`` of the mean +- std table over several runs' ``results.json``."""
    runs, seeds, missing = [], [], []
    for d in run_dirs:
        path = Path(d) / "results.json"
        if not path.is_file():
            missing.append(str(d))
            continue
        data = json.loads(path.read_text())
        runs.append(data["rows"])
        seeds.append(data.get("seed"))
    if not runs:
        raise ValueError(f"aggregate: no results.json in {[str(d) for d in run_dirs]}")
    title = f"Mean +- std over {len(runs)} runs (seeds {seeds}); values in %."
    if missing:
        title += f" Runs without results (not counted): {missing}."
    return markdown_table(runs, title), csv_table(runs), {"seeds": seeds, "runs": runs, "missing": missing}

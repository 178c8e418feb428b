"""Per-scene records of the ``eval`` stage: ``per_scene.jsonl`` in the run folder, the units a paired comparison of
two methods on the same held-out scenes resamples (:mod:`experiments.compare`).

The file is JSON lines, written atomically (temp file + rename). Line 1 is a header::

    {"schema": "safealign.per_scene", "version": 1, "seed": 0, "description": "SYNTHETIC bank: ..."}

then one record per line, of two units (values in [0, 1]; ``null`` where not measured):

* ``"unit": "scene"``: one per (method, held-out scene): ``method``, ``scene_id``, ``scenario_type``, ``pdms`` (the
  open-loop decision's PDMS, or the map-free score on a map-less scene), ``collision_open_loop`` (0 / 1: the
  decision collides within its 4 s horizon), ``collision`` (0 / 1: the closed-loop episode ends in an at-fault
  collision), ``route_completion`` and ``driving_score`` (the episode's);
* ``"unit": "decision"``: one per (label-stating method or trivial predictor, held-out decision row of
  :mod:`agents.sft.data`): ``method``, ``scene_id``, ``sample_id``, ``kind`` (``pair`` / ``expert``), ``fields``
  (``{field: 1 right, 0 wrong, null not scored}`` over the five label fields, on every row: the pair rows against
  their mined label, the expert rows against the geometry label of their frame; files written before language was
  scored on every decision row have null here on expert rows, and their table's language accuracy is over the pair
  rows alone, which the same reading reproduces) and ``risk`` (0 / 1: the stated risk level is right; every row).

The results table's values are means of these records: PDMS, collision rate, route completion and driving score the
means over scene records (NaN left out); language accuracy the mean over fields of each field's mean over the
decision rows that carry ``fields``; risk accuracy the mean over every decision row (``tests/test_compare.py``
checks the round trip).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

PER_SCENE_FILE = "per_scene.jsonl"
SCHEMA = "safealign.per_scene"
VERSION = 1
SCENE_KEYS = ("pdms", "collision_open_loop", "collision", "route_completion", "driving_score")
"""Metric keys of a ``scene`` record."""


def _value(x: Any) -> float | None:
    """A finite float, or None (not measured / NaN)."""
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def scene_records(method: str, open_loop: Any = None, closed_loop: Any = None) -> list[dict[str, Any]]:
    """``scene`` records of one method from its :class:`agents.evaluation.EvalResult` s (``per_scene``), joined on
    the scene id (open-loop order; a closed-loop-only scene appended)."""
    out: dict[str, dict[str, Any]] = {}

    def record(entry: Mapping[str, Any]) -> dict[str, Any]:
        sid = str(entry["scene_id"])
        if sid not in out:
            out[sid] = {"unit": "scene", "method": method, "scene_id": sid,
                        "scenario_type": entry.get("scenario_type"), **{k: None for k in SCENE_KEYS}}
        return out[sid]

    for entry in (open_loop.per_scene if open_loop is not None else []):
        r = record(entry)
        r["pdms"], r["collision_open_loop"] = _value(entry["score"]), _value(entry["collision"])
    for entry in (closed_loop.per_scene if closed_loop is not None else []):
        r = record(entry)
        r["collision"] = _value(entry["collision"])
        r["route_completion"] = _value(entry.get("route_completion"))
        r["driving_score"] = _value(entry.get("driving_score"))
    return list(out.values())


def decision_records(method: str, report: Any) -> list[dict[str, Any]]:
    """``decision`` records of one predictor from its :class:`agents.vla.evaluate.AccuracyReport` (``per_row``)."""
    return [{"unit": "decision", "method": method, "scene_id": row["scene_id"], "sample_id": row["sample_id"],
             "kind": row["kind"], "fields": row["fields"], "risk": float(bool(row["risk"]))}
            for row in report.per_row]


def write_per_scene(path: Path, records: Iterable[Mapping[str, Any]], seed: Any = None,
                    description: str = "") -> Path:
    """Write the header and ``records`` to ``path`` atomically; returns ``path``."""
    from envs.atomic import atomic_write_text

    header = {"schema": SCHEMA, "version": VERSION, "seed": seed, "description": description}
    lines = [json.dumps(header)] + [json.dumps(dict(r), allow_nan=False) for r in records]
    atomic_write_text(Path(path), "\n".join(lines) + "\n")
    return Path(path)


def read_per_scene(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(header, records)`` of a ``per_scene.jsonl``; ``ValueError`` naming the file, line and field at fault."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no per-scene records (written by the eval stage since per_scene.jsonl "
                         f"version {VERSION}; rerun the eval stage: python -m experiments.run out_dir=<run> "
                         "stages=[eval])")
    lines = path.read_text().splitlines()
    try:
        header = json.loads(lines[0]) if lines else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:1: not JSON ({exc})") from None
    if header.get("schema") != SCHEMA or header.get("version") != VERSION:
        raise ValueError(f"{path}:1: header {header!r} is not {SCHEMA} version {VERSION}")
    records = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not JSON ({exc})") from None
        unit = record.get("unit")
        need: Sequence[str] = (("method", "scene_id", *SCENE_KEYS) if unit == "scene" else
                               ("method", "scene_id", "sample_id", "kind", "fields", "risk") if unit == "decision"
                               else ())
        if not need:
            raise ValueError(f"{path}:{number}: unit {unit!r}, expected 'scene' or 'decision'")
        missing = [k for k in need if k not in record]
        if missing:
            raise ValueError(f"{path}:{number}: {unit} record without {missing}")
        records.append(record)
    return header, records

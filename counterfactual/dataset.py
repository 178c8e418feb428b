"""Anchor pairs on disk: the :class:`AnchorPair` record and versioned, atomic parquet IO.

One row per (risky moment, decision time). Trajectories are stored flattened (``num_poses * 3`` float64, ego frame
at the decision time, rear axle, [m, m, rad]); score dicts, the positive's generation spec and the observation
reference are JSON strings (``NaN`` / ``Infinity`` allowed); the safety label is flattened into its own columns
(see ``docs/safety_labels.md``); the positive's execution checks (:mod:`counterfactual.verify`) are flattened into
``check_<name>`` and clearance columns. The file carries :data:`ANCHOR_SCHEMA_VERSION` both in the parquet key-value
metadata (``safealign.anchor_pairs.schema_version``) and in a ``schema_version`` column, and its provenance (miner
configuration as JSON, command line, package version, git commit when known; :func:`collect_provenance`,
:func:`read_provenance`) under ``safealign.provenance``.

Writes are atomic and durable: a temp file in the target's folder (named after the target and the writing process),
flushed and fsync-ed, renamed into place, the folder fsync-ed; the file gets the mode a plain ``open`` would give
(``0666`` minus the umask), and temp files of the same target left by writers that no longer run are removed.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from envs.atomic import STALE_TEMP_AGE_S, atomic_writer, clean_stale_temp_files  # noqa: F401 (re-exported)
from counterfactual.schema import LABEL_SCHEMA_VERSION, SafetyLabel

ANCHOR_SCHEMA_VERSION = "2.1"
"""Version of the anchor-pair table (columns and their meaning); bump on any change. 2.1: label schema 2.1 in the
``label_*`` columns (compound actions) and the positive chosen with the 0.25 m keep-lane tolerance
(``SearchConfig.keep_lane_tolerance``; 2.0: 1 m, so 0.5 m shifts were keep-lane candidates)."""

METADATA_KEY = b"safealign.anchor_pairs.schema_version"
LABEL_METADATA_KEY = b"safealign.safety_label.schema_version"
PROVENANCE_KEY = b"safealign.provenance"
"""Parquet key-value metadata key of the provenance JSON (:func:`collect_provenance`)."""
CHECK_NAMES = ("scorer", "raw_poses", "closed_loop", "clearance", "no_oncoming")
"""The positive's execution checks (:data:`counterfactual.verify.CHECKS`), stored as ``check_<name>`` columns."""
CLEARANCE_FIELDS = ("clearance_m", "raw_clearance_m", "closed_loop_clearance_m")
"""The positive's clearances [m], stored as ``positive_<field>`` columns."""

LABEL_PREFIX = "label_"
"""Safety-label fields are stored as ``label_<field>`` columns."""


class AnchorDatasetError(ValueError):
    """An anchor-pair file is missing, unreadable, of another schema version, or lacks columns (the message names
    the file)."""


@dataclass(frozen=True, eq=False)
class AnchorPair:
    """One mined anchor pair: the driven (negative) trajectory, the verified-safe positive (or None), the label.

    Attributes:
        pair_id: unique id ``"<scene_id>@<decision_frame>#<risk_agent_id>"``.
        scene_id: scene the moment comes from.
        source: scene source (``synthetic``, ``deepaccident``, ``carla``, ``rollout``).
        scenario_type: the scene's scenario type.
        moment_kind: ``"collision"`` or ``"near_miss"``.
        contact_frame: frame of the (logged or CV-projected) contact.
        lead_time_s: contact time minus decision time [s].
        decision_frame: frame index of the decision time ``t``.
        decision_time_s: ``t * dt`` [s].
        observation_ref: what is needed to re-create the scene and the observation at ``t`` (see
            :func:`counterfactual.mining.observation_ref`): ``scene_id``, ``frame``, ``source`` and the generator's
            arguments (bank type + seed, DeepAccident root/split, or the rollout's base scene and ego states).
        negative: ``(num_poses, 3)`` driven trajectory, ego frame at ``t``.
        positive: ``(num_poses, 3)`` verified-safe counterfactual, or None.
        positive_spec: how the positive was generated (:class:`counterfactual.search.CandidateSpec` fields), or None.
        negative_scores: the scorer's values for the negative (``nc, dac, ddc, ttc, ep, comfort, pdms, progress,
            collision, at_fault_collision, collision_time, colliding_agent_id``).
        positive_scores: the same for the positive, or None.
        positive_aggregate: the ranking score of the positive (PDMS, or the map-free aggregate), NaN without one.
        dac_checked: False for map-less scenes (the positive is verified with NC and TTC only).
        num_candidates: candidates scored (without the negative).
        num_safe: of them, verified safe.
        no_safe_reason_code: ``""`` when a positive exists, else ``all_collide``, ``ttc_violation``, ``offroad`` or
            ``mixed``.
        no_safe_reason: a sentence with the counts behind the code.
        label: the structured safety label.
        clearance_margin_m: the clearance margin the positive was verified with [m] (NaN: not verified).
        verification: the positive's execution checks (:meth:`counterfactual.verify.Verification.record`:
            ``scorer, raw_poses, closed_loop, clearance, no_oncoming`` booleans and the clearances
            ``clearance_m, raw_clearance_m, closed_loop_clearance_m`` [m]), None without a positive (or not verified).
        candidate_failures: how many candidates (without the negative) failed each check (``collide``,
            ``ttc_violation``, ``offroad``, ``wrong_way``, ``fails_<check>``, ...).
    """

    pair_id: str
    scene_id: str
    source: str
    scenario_type: str
    moment_kind: str
    contact_frame: int
    lead_time_s: float
    decision_frame: int
    decision_time_s: float
    observation_ref: Mapping[str, Any]
    negative: np.ndarray
    positive: np.ndarray | None
    positive_spec: Mapping[str, Any] | None
    negative_scores: Mapping[str, Any]
    positive_scores: Mapping[str, Any] | None
    positive_aggregate: float
    dac_checked: bool
    num_candidates: int
    num_safe: int
    no_safe_reason_code: str
    no_safe_reason: str
    label: SafetyLabel = field(repr=False)
    clearance_margin_m: float = float("nan")
    verification: Mapping[str, Any] | None = None
    candidate_failures: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        neg = np.asarray(self.negative, dtype=np.float64)
        if neg.ndim != 2 or neg.shape[1] != 3:
            raise ValueError(f"AnchorPair {self.pair_id}: negative must be (num_poses, 3), got {neg.shape}")
        object.__setattr__(self, "negative", neg)
        if self.positive is not None:
            pos = np.asarray(self.positive, dtype=np.float64)
            if pos.shape != neg.shape:
                raise ValueError(f"AnchorPair {self.pair_id}: positive shape {pos.shape} != negative {neg.shape}")
            object.__setattr__(self, "positive", pos)
        if (self.positive is None) != bool(self.no_safe_reason_code):
            raise ValueError(
                f"AnchorPair {self.pair_id}: a pair has either a positive or a no-safe reason, not both / neither"
            )
        if self.moment_kind not in ("collision", "near_miss"):
            raise ValueError(f"AnchorPair {self.pair_id}: moment_kind {self.moment_kind!r} is not collision/near_miss")
        if self.verification is not None:
            if self.positive is None:
                raise ValueError(f"AnchorPair {self.pair_id}: execution checks without a positive")
            failed = [name for name in CHECK_NAMES if not self.verification.get(name)]
            if failed:
                raise ValueError(f"AnchorPair {self.pair_id}: the positive fails the checks {failed}")

    @property
    def has_positive(self) -> bool:
        """True when a verified-safe positive exists."""
        return self.positive is not None


_SCALARS = (
    "pair_id",
    "scene_id",
    "source",
    "scenario_type",
    "moment_kind",
    "contact_frame",
    "lead_time_s",
    "decision_frame",
    "decision_time_s",
    "positive_aggregate",
    "dac_checked",
    "num_candidates",
    "num_safe",
    "no_safe_reason_code",
    "no_safe_reason",
)
_JSON = ("observation_ref", "positive_spec", "negative_scores", "positive_scores", "candidate_failures")
_TRAJ = ("negative", "positive")
_CHECK_COLUMNS = tuple(f"check_{name}" for name in CHECK_NAMES)
_CLEARANCE_COLUMNS = tuple(f"positive_{name}" for name in CLEARANCE_FIELDS)
REQUIRED_COLUMNS = (
    ("schema_version",)
    + _SCALARS
    + ("clearance_margin_m",)
    + _CHECK_COLUMNS
    + _CLEARANCE_COLUMNS
    + _JSON
    + _TRAJ
    + tuple(LABEL_PREFIX + name for name in SafetyLabel.field_names())
)
"""Columns every anchor-pair file must have."""


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=_json_default, sort_keys=True)


def pair_to_row(pair: AnchorPair) -> dict[str, Any]:
    """One parquet row (plain Python values) of a pair."""
    row: dict[str, Any] = {"schema_version": ANCHOR_SCHEMA_VERSION}
    for name in _SCALARS:
        row[name] = getattr(pair, name)
    row["clearance_margin_m"] = float(pair.clearance_margin_m)
    ver = pair.verification
    for name, col in zip(CHECK_NAMES, _CHECK_COLUMNS):
        row[col] = None if ver is None else bool(ver[name])
    for name, col in zip(CLEARANCE_FIELDS, _CLEARANCE_COLUMNS):
        row[col] = float("nan") if ver is None else float(ver[name])
    for name in _JSON:
        row[name] = _dumps(None if getattr(pair, name) is None else dict(getattr(pair, name)))
    row["negative"] = pair.negative.reshape(-1).tolist()
    row["positive"] = None if pair.positive is None else pair.positive.reshape(-1).tolist()
    for name, value in pair.label.to_dict().items():
        row[LABEL_PREFIX + name] = value
    return row


def _arrow_schema():
    import pyarrow as pa

    types = {
        "schema_version": pa.string(),
        "contact_frame": pa.int64(),
        "decision_frame": pa.int64(),
        "num_candidates": pa.int64(),
        "num_safe": pa.int64(),
        "lead_time_s": pa.float64(),
        "decision_time_s": pa.float64(),
        "positive_aggregate": pa.float64(),
        "dac_checked": pa.bool_(),
        "clearance_margin_m": pa.float64(),
        **{col: pa.bool_() for col in _CHECK_COLUMNS},
        **{col: pa.float64() for col in _CLEARANCE_COLUMNS},
        "negative": pa.list_(pa.float64()),
        "positive": pa.list_(pa.float64()),
    }
    label_types = {
        "risk_agent_id": pa.int64(),
        "explanation_seed": pa.int64(),
    }
    float_fields = {
        "distance_m",
        "bearing_deg",
        "relative_heading_deg",
        "closing_speed_mps",
        "ttc_s",
        "time_to_contact_s",
        "lateral_offset_m",
        "progress_change_m",
    }
    fields = []
    for name in REQUIRED_COLUMNS:
        if name in types:
            fields.append(pa.field(name, types[name]))
        elif name.startswith(LABEL_PREFIX) and name[len(LABEL_PREFIX) :] in label_types:
            fields.append(pa.field(name, label_types[name[len(LABEL_PREFIX) :]]))
        elif name.startswith(LABEL_PREFIX) and name[len(LABEL_PREFIX) :] in float_fields:
            fields.append(pa.field(name, pa.float64()))
        else:
            fields.append(pa.field(name, pa.string()))
    return pa.schema(fields).with_metadata(
        {METADATA_KEY: ANCHOR_SCHEMA_VERSION.encode(), LABEL_METADATA_KEY: LABEL_SCHEMA_VERSION.encode()}
    )


def _git_commit(folder: Path) -> str | None:
    """HEAD commit of the git checkout holding ``folder``, or None (no git, not a checkout)."""
    try:
        out = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", commit) else None


def _jsonable(value: Any) -> Any:
    """Dataclasses (e.g. a ``MinerConfig``) as nested dicts; tuples as lists; other values as they are."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def collect_provenance(config: Any = None, argv: Sequence[str] | None = None, **extra: Any) -> dict[str, Any]:
    """Where a dataset comes from: ``{"miner_config": config as JSON-able dict (or None), "command_line": argv
    (default ``sys.argv``), "package": "safealign", "package_version", "git_commit" (None when unknown),
    "python", "created_utc", **extra}``."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        pkg_version = version("safealign")
    except (ImportError, PackageNotFoundError):  # running from a checkout that is not installed
        pkg_version = None
    return {
        "miner_config": None if config is None else _jsonable(config),
        "command_line": list(sys.argv if argv is None else argv),
        "package": "safealign",
        "package_version": pkg_version,
        "git_commit": _git_commit(Path(__file__).resolve().parent),
        "python": sys.version.split()[0],
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **{k: _jsonable(v) for k, v in extra.items()},
    }


def write_anchor_pairs(pairs: Sequence[AnchorPair], path: str | os.PathLike,
                       provenance: Mapping[str, Any] | None = None) -> Path:
    """Write pairs to a parquet file atomically and durably (see the module docstring).

    Args:
        pairs: the records.
        path: target file; parent folders are created.
        provenance: stored as JSON in the metadata (``safealign.provenance``); None stores
            :func:`collect_provenance` without a miner configuration.

    Returns:
        The final path.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    prov = collect_provenance() if provenance is None else dict(provenance)
    schema = _arrow_schema()
    schema = schema.with_metadata({**schema.metadata, PROVENANCE_KEY: json.dumps(_jsonable(prov), sort_keys=True,
                                                                                  default=_json_default).encode()})
    rows = [pair_to_row(p) for p in pairs]
    table = pa.Table.from_pylist(rows, schema=schema) if rows else schema.empty_table()
    with atomic_writer(path, "wb") as f:
        pq.write_table(table, f)
    return path


def read_provenance(path: str | os.PathLike) -> dict[str, Any]:
    """The provenance dict of an anchor-pair file (``{}`` for files written without one).

    Raises:
        AnchorDatasetError: the file is missing or unreadable, or its provenance is not valid JSON.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise AnchorDatasetError(f"{path}: no such anchor-pair file")
    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise AnchorDatasetError(f"{path}: cannot read as parquet ({type(exc).__name__}: {exc})") from None
    raw = meta.get(PROVENANCE_KEY)
    if raw is None:
        return {}
    try:
        return json.loads(raw.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AnchorDatasetError(f"{path}: provenance metadata ({PROVENANCE_KEY.decode()}) is not JSON: {exc}") from None


def read_anchor_table(path: str | os.PathLike):
    """The checked ``pyarrow.Table`` of an anchor-pair file.

    Raises:
        AnchorDatasetError: the file is missing or unreadable, has no or another schema version, or lacks columns.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise AnchorDatasetError(f"{path}: no such anchor-pair file")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise AnchorDatasetError(f"{path}: cannot read as parquet ({type(exc).__name__}: {exc})") from None
    meta = table.schema.metadata or {}
    version = meta.get(METADATA_KEY)
    if version is None:
        raise AnchorDatasetError(
            f"{path}: no anchor-pair schema version in the parquet metadata (key {METADATA_KEY.decode()}); "
            f"not written by counterfactual.dataset"
        )
    if version.decode() != ANCHOR_SCHEMA_VERSION:
        raise AnchorDatasetError(
            f"{path}: anchor-pair schema version {version.decode()!r}, but this code reads {ANCHOR_SCHEMA_VERSION!r}; "
            f"re-mine the pairs or convert the file"
        )
    label_version = meta.get(LABEL_METADATA_KEY, b"").decode()
    if label_version != LABEL_SCHEMA_VERSION:
        raise AnchorDatasetError(
            f"{path}: safety-label schema version {label_version!r}, but this code reads {LABEL_SCHEMA_VERSION!r}"
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise AnchorDatasetError(f"{path}: missing columns {missing}")
    return table


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def row_to_pair(row: Mapping[str, Any], source: str = "<row>") -> AnchorPair:
    """Inverse of :func:`pair_to_row` (``source`` names the file in errors)."""
    try:
        neg = np.asarray(row["negative"], dtype=np.float64).reshape(-1, 3)
        pos = None if row["positive"] is None else np.asarray(row["positive"], dtype=np.float64).reshape(-1, 3)
        label = SafetyLabel(**{name: row[LABEL_PREFIX + name] for name in SafetyLabel.field_names()})
        kwargs = {name: row[name] for name in _SCALARS}
        kwargs.update({name: _loads(row[name]) for name in _JSON})
        kwargs["candidate_failures"] = kwargs["candidate_failures"] or {}
        for name in ("contact_frame", "decision_frame", "num_candidates", "num_safe"):
            kwargs[name] = int(kwargs[name])
        kwargs["clearance_margin_m"] = float(row["clearance_margin_m"])
        if row[_CHECK_COLUMNS[0]] is not None:
            ver: dict[str, Any] = {name: bool(row[col]) for name, col in zip(CHECK_NAMES, _CHECK_COLUMNS)}
            ver.update({name: float(row[col]) for name, col in zip(CLEARANCE_FIELDS, _CLEARANCE_COLUMNS)})
            ver["clearance_margin_m"] = kwargs["clearance_margin_m"]
            kwargs["verification"] = ver
        return AnchorPair(negative=neg, positive=pos, label=label, **kwargs)
    except (ValueError, TypeError, KeyError) as exc:
        raise AnchorDatasetError(f"{source}: bad row {row.get('pair_id', '?')!r}: {exc}") from None


def load_anchor_pairs(path: str | os.PathLike) -> list[AnchorPair]:
    """All pairs of an anchor-pair file (see :func:`read_anchor_table` for the errors)."""
    table = read_anchor_table(path)
    return [row_to_pair(row, str(path)) for row in table.to_pylist()]


def summarize(pairs: Iterable[AnchorPair]) -> dict[str, Any]:
    """Counts: pairs, with positive, no-safe by reason code, and per scenario type ``(pairs, with positive)``."""
    pairs = list(pairs)
    by_type: dict[str, list[int]] = {}
    reasons: dict[str, int] = {}
    for p in pairs:
        entry = by_type.setdefault(p.scenario_type, [0, 0])
        entry[0] += 1
        entry[1] += int(p.has_positive)
        if not p.has_positive:
            reasons[p.no_safe_reason_code] = reasons.get(p.no_safe_reason_code, 0) + 1
    return {
        "pairs": len(pairs),
        "with_positive": sum(p.has_positive for p in pairs),
        "no_safe": reasons,
        "by_type": {k: tuple(v) for k, v in sorted(by_type.items())},
    }

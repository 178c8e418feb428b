"""SFT data: rendered samples from the anchor-pair dataset and the scenes, cached on disk, and the two training views.

Rendering (:func:`build_sample_table`, once per (scenes, pairs, settings); cached as a ``datasets`` dataset on disk by
:func:`load_or_build_samples`) gives one row per decision:

* ``kind="expert"``: an expert-log decision where the logged **trajectory** is safe: frames every
  ``expert_stride_s`` from ``min_history_s`` on (the 4 s future logged) whose logged trajectory the scorer finds
  without contact and with NC = TTC = 1 (and DAC = 1 where there is a map); up to ``expert_frames_per_scene`` per
  scene, evenly spread, or with ``frame_sampling="hazard_window"`` mostly around the hazard's closest approach, or
  with ``"hazard_dense"`` (``env=world_v2``) every safe frame of the designated hazard's window plus one outside it
  and one frame of a scene without a hazard (:func:`counterfactual.frame_labels.sample_frames`). Target: the logged
  trajectory and the
  **decision label from the geometry at that frame** (:func:`counterfactual.frame_labels.frame_label`): the
  no-hazard sentence (:data:`counterfactual.language.NO_HAZARD_EXPLANATION`) only where the scene holds no
  projected conflict there; a hazard in view (a near-miss in progress, the early frames of an accident, a benign
  variant's close pass) gets its structured label, with the action that turns the keep-speed projection into the
  logged trajectory. The safe-trajectory filter is unchanged, so frames of a near-miss whose logged trajectory
  passes it are kept (the trajectory is safe as executed; the label is about the scene).
* ``kind="pair"``: an anchor pair's decision (``pair.observation_ref`` re-creates the scene,
  :func:`envs.scenes.sources.resolve`): the mined label's explanation, the verified positive (or none), the negative.

Every observation is built by :func:`envs.observation.build_observation` from the logged ego at the decision frame
(the same function the environments use). The table stores trajectories (ego frame [m, m, rad], flattened) and text,
not tokens, so one cache serves any codebook and tokenizer.

Training views (:class:`SFTDataset`), over the same rows (same scenes):

* ``"positive"`` (the no-negative baseline): drive samples only: expert rows and pair rows with a positive
  (observation -> label text + safe trajectory);
* ``"negative"`` (negative-enhanced): the positive view plus, for every pair row, a **failure-feedback** sample
  (observation + the negative as action tokens -> the label explaining how it fails; task ``critique``) and, for
  every pair row with a positive, a **correction** sample (observation + negative -> label + the positive; task
  ``correct``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from counterfactual.dataset import AnchorPair, pair_to_row
from counterfactual.frame_labels import (  # noqa: F401 (re-exported)
    FRAME_SAMPLING,
    frame_label,
    safe_log_frames,
    sample_frames,
)
from counterfactual.accuracy import CATEGORICAL_FIELDS  # moved from counterfactual.labels on main (grpo merge fix)
from envs.observation import ObservationConfig, Route, build_observation, text_prompt
from envs.scenes.scene import Scene
from envs.spaces import NUM_POSES

SAMPLES_FORMAT_VERSION = "3"
"""Version of the rendered-sample table (columns, selection rules, labels); part of the cache key. 3: the
``"hazard_dense"`` frame rule (``env=world_v2``'s expert rows change; rows of the ``"even"`` and ``"hazard_window"``
rules are those of 2). 2: expert rows carry the decision label from the geometry at their frame (1: always the
no-hazard sentence)."""
MODES = ("positive", "negative")
"""Training views: positive-only and negative-enhanced."""
LABEL_COLUMNS = CATEGORICAL_FIELDS
"""Label fields stored per row (``""`` where the no-hazard target names none)."""


@dataclass(frozen=True)
class SampleConfig:
    """Which decisions become samples and how they are observed; every field is documented."""

    expert_stride_s: float = 1.0
    """Time between candidate expert-log decision frames [s]."""
    expert_frames_per_scene: int = 4
    """Safe expert frames kept per scene (chosen by ``frame_sampling``; under ``"hazard_dense"`` it only sets the
    frames outside the hazard window, ``max(1, round(0.25 x it))``)."""
    frame_sampling: str = "even"
    """How they are chosen (:data:`counterfactual.frame_labels.FRAME_SAMPLING`): ``"even"`` (evenly spread over the
    safe candidates), ``"hazard_window"`` (most of them around the hazard's closest approach to the ego) or
    ``"hazard_dense"`` (every safe frame of the designated hazard's window plus one outside it, one frame of a scene
    without a hazard; ``env=world_v2``'s rule); :func:`counterfactual.frame_labels.sample_frames`."""
    min_history_s: float = 2.0
    """Earliest expert decision time [s] (so the history is logged)."""
    observation: ObservationConfig = field(default_factory=ObservationConfig)
    """Observation builder settings (BEV size etc.); must match the policy's image input."""

    def __post_init__(self) -> None:
        if not (self.expert_stride_s > 0 and math.isfinite(self.expert_stride_s)):
            raise ValueError(f"SampleConfig.expert_stride_s: expected > 0, got {self.expert_stride_s!r}")
        if self.expert_frames_per_scene < 0:
            raise ValueError(f"SampleConfig.expert_frames_per_scene: expected >= 0, got {self.expert_frames_per_scene}")
        if self.frame_sampling not in FRAME_SAMPLING:
            raise ValueError(f"SampleConfig.frame_sampling: expected one of {FRAME_SAMPLING}, got "
                             f"{self.frame_sampling!r}")
        if self.observation.bev is None:
            raise ValueError("SampleConfig.observation.bev: the VLA needs a BEV image")


# ---------------------------------------------------------------------------------------------------- rendering
def expert_frames(scene: Scene, config: SampleConfig) -> list[int]:
    """Up to ``expert_frames_per_scene`` safe expert frames of ``scene``
    (:func:`counterfactual.frame_labels.sample_frames`)."""
    return sample_frames(scene, config.expert_stride_s, config.expert_frames_per_scene, config.min_history_s,
                         sampling=config.frame_sampling)


def pair_scenes(pairs: Iterable[AnchorPair]) -> Iterator[tuple[AnchorPair, Scene, Route]]:
    """``(pair, scene, route)`` of each pair, in order: its scene re-created from ``pair.observation_ref``
    (:func:`envs.scenes.sources.resolve`) and the scene's :class:`envs.observation.Route`, each built once per
    origin and shared by the pairs of that scene (the SFT rows and :func:`agents.rl.bc.build_bc_data` read them)."""
    from envs.scenes.sources import resolve

    cache: dict[str, tuple[Scene, Route]] = {}
    for pair in pairs:
        key = json.dumps(pair.observation_ref.get("origin", pair.observation_ref), sort_keys=True)
        if key not in cache:
            scene = resolve(pair.observation_ref)
            cache[key] = (scene, Route.from_scene(scene))
        yield (pair, *cache[key])


def _flat(traj: np.ndarray | None) -> list[float]:
    if traj is None:
        return [math.nan] * (NUM_POSES * 3)
    return np.asarray(traj, dtype=np.float64).reshape(-1).tolist()


def _label_columns(fields: Mapping[str, Any]) -> dict[str, str]:
    return {name: "" if fields.get(name) is None else str(fields[name]) for name in LABEL_COLUMNS}


def _row(scene: Scene, t: int, obs: Mapping[str, Any], config: SampleConfig, **extra: Any) -> dict[str, Any]:
    return {
        "scene_id": scene.scene_id, "scenario_type": scene.meta.scenario_type, "frame": int(t),
        "bev": np.asarray(obs["bev"], dtype=np.uint8),
        "prompt": text_prompt(obs, config.observation.history_interval), **extra,
    }


def build_sample_table(scenes: Iterable[Scene], pairs: Sequence[AnchorPair], config: SampleConfig = SampleConfig(),
                       progress: bool = False) -> list[dict[str, Any]]:
    """Render the sample rows (see the module docstring) of ``scenes`` (expert rows) and ``pairs`` (pair rows; their
    scenes are re-created from ``pair.observation_ref``). Deterministic."""
    from tqdm import tqdm

    from envs.sim.scoring import trajectory_from_log

    rows: list[dict[str, Any]] = []
    scenes = list(scenes)
    for scene in tqdm(scenes, desc="expert frames", disable=not progress, leave=False):
        route = Route.from_scene(scene)
        for t in expert_frames(scene, config):
            obs = build_observation(scene, t, config=config.observation, route=route)
            target = trajectory_from_log(scene, t)
            label = frame_label(scene, t, trajectory=target)
            rows.append(_row(
                scene, t, obs, config, sample_id=f"{scene.scene_id}@{t}", kind="expert", pair_id="",
                lead_time_s=math.nan, explanation=label.explanation,
                trajectory=_flat(target), has_trajectory=True, negative=_flat(None),
                has_negative=False, **_label_columns(label.fields()),
            ))
    for pair, scene, route in pair_scenes(tqdm(pairs, desc="anchor pairs", disable=not progress, leave=False)):
        t = int(pair.decision_frame)
        obs = build_observation(scene, t, config=config.observation, route=route)
        label = pair.label
        explanation = label.explanation
        if not explanation:
            from counterfactual.language import explain

            explanation = explain(label, label.explanation_seed)
        rows.append(_row(
            scene, t, obs, config, sample_id=pair.pair_id, kind="pair", pair_id=pair.pair_id,
            lead_time_s=float(pair.lead_time_s), explanation=explanation, trajectory=_flat(pair.positive),
            has_trajectory=pair.positive is not None, negative=_flat(pair.negative), has_negative=True,
            **_label_columns(label.to_dict()),
        ))
    return rows


# ---------------------------------------------------------------------------------------------------------- cache
def _features(config: SampleConfig):
    from datasets import Array3D, Features, List, Value

    bev = config.observation.bev
    assert bev is not None
    channels = 3
    text = Value("string")
    cols = {
        "sample_id": text, "kind": text, "pair_id": text, "scene_id": text, "scenario_type": text,
        "frame": Value("int32"), "lead_time_s": Value("float32"),
        "bev": Array3D((bev.height, bev.width, channels), "uint8"), "prompt": text, "explanation": text,
        "trajectory": List(Value("float32"), length=NUM_POSES * 3), "has_trajectory": Value("bool"),
        "negative": List(Value("float32"), length=NUM_POSES * 3), "has_negative": Value("bool"),
    }
    cols.update({name: text for name in LABEL_COLUMNS})
    return Features(cols)


def cache_key(scene_origins: Sequence[Mapping[str, Any]], pairs: Sequence[AnchorPair], config: SampleConfig) -> str:
    """Hex digest of everything the rendered rows depend on: format version, settings, scene origins, pair rows."""
    h = hashlib.sha256()
    h.update(f"samples-v{SAMPLES_FORMAT_VERSION}|".encode())
    h.update(repr(dataclasses.asdict(config)).encode())
    h.update(json.dumps(list(scene_origins), sort_keys=True, default=str).encode())
    for pair in pairs:
        h.update(json.dumps(pair_to_row(pair), sort_keys=True, default=str).encode())
    return h.hexdigest()[:20]


def _save_quietly(dataset: Any, path: Path, progress: bool) -> None:
    """``dataset.save_to_disk(path)``, without ``datasets``' progress bar unless ``progress``."""
    from datasets.utils import logging as ds_logging

    enabled = ds_logging.is_progress_bar_enabled()
    if not progress:
        ds_logging.disable_progress_bar()
    try:
        dataset.save_to_disk(str(path))
    finally:
        if enabled:
            ds_logging.enable_progress_bar()


def sample_cache_path(source: Any, pairs: Sequence[AnchorPair], cache_dir: str | os.PathLike,
                      config: SampleConfig = SampleConfig()) -> Path:
    """The folder :func:`load_or_build_samples` reads or writes for these inputs (``cache_dir/samples-<key>``; it
    may not exist yet)."""
    from envs.scenes.sources import make_source

    source = make_source(source)
    origins = [source.origin(i).to_dict() for i in range(len(source))]
    return Path(cache_dir) / f"samples-{cache_key(origins, pairs, config)}"


def load_or_build_samples(source: Any, pairs: Sequence[AnchorPair], cache_dir: str | os.PathLike,
                          config: SampleConfig = SampleConfig(), progress: bool = True):
    """The rendered rows as a ``datasets.Dataset``, from ``cache_dir/samples-<key>`` or rendered and saved there.

    Args:
        source: a :class:`envs.scenes.sources.SceneSource` (or anything :func:`envs.scenes.sources.make_source` accepts) whose
            scenes give the expert rows.
        pairs: anchor pairs (their scenes are re-created from their observation references).
        cache_dir: folder of cached sample tables (written via a temp folder + rename).
        config: sample settings.
    """
    from datasets import Dataset, load_from_disk

    from envs.scenes.sources import make_source

    source = make_source(source)
    path = sample_cache_path(source, pairs, cache_dir, config)
    if path.is_dir():
        return load_from_disk(str(path))
    rows = build_sample_table((source[i] for i in range(len(source))), pairs, config, progress)
    if not rows:
        raise ValueError(f"no SFT samples from {len(source)} scenes and {len(pairs)} pairs (no safe expert frame, no "
                         "pair)")
    dataset = Dataset.from_list(rows, features=_features(config))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        _save_quietly(dataset, tmp, progress)
        os.replace(tmp, path)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not path.is_dir():  # a concurrent writer did not win either
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return load_from_disk(str(path))


# ---------------------------------------------------------------------------------------------------- SFT views
@dataclass(frozen=True)
class Example:
    """One training example (before tokenization).

    Attributes:
        bev: ``uint8 (H, W, 3)`` image.
        prompt: the text prompt.
        task: ``drive``, ``critique`` or ``correct``.
        explanation: the target label text.
        trajectory: ``(8, 3)`` target trajectory, or None (critique).
        negative: ``(8, 3)`` negative given in the prompt, or None (drive).
    """

    bev: np.ndarray
    prompt: str
    task: str
    explanation: str
    trajectory: np.ndarray | None
    negative: np.ndarray | None


class SFTDataset:
    """A map-style dataset (``torch.utils.data.Dataset`` protocol) of :class:`Example` for one training view.

    Args:
        table: the rendered rows (:func:`load_or_build_samples`), read into memory once.
        mode: ``"positive"`` or ``"negative"`` (see the module docstring).
    """

    def __init__(self, table: Any, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
        self.mode = mode
        cols = table.with_format("numpy")
        self.bev = np.asarray(cols["bev"], dtype=np.uint8)
        self.prompt = [str(p) for p in table["prompt"]]
        self.explanation = [str(e) for e in table["explanation"]]
        self.trajectory = np.asarray(cols["trajectory"], dtype=np.float64).reshape(-1, NUM_POSES, 3)
        self.negative = np.asarray(cols["negative"], dtype=np.float64).reshape(-1, NUM_POSES, 3)
        kind = [str(k) for k in table["kind"]]
        has_traj = np.asarray(cols["has_trajectory"], dtype=bool)
        items: list[tuple[int, str]] = [(i, "drive") for i in range(len(kind)) if has_traj[i]]
        if mode == "negative":
            items += [(i, "critique") for i in range(len(kind)) if kind[i] == "pair"]
            items += [(i, "correct") for i in range(len(kind)) if kind[i] == "pair" and has_traj[i]]
        self.items = items
        names = set(getattr(table, "column_names", ()) or ())
        self.scene_id = [str(v) for v in table["scene_id"]] if "scene_id" in names else [str(i) for i in
                                                                                        range(len(kind))]
        """``(rows,)`` scene id of every row (the row index where the table has no ``scene_id`` column)."""
        self.labels = {name: [str(v) for v in table[name]] for name in LABEL_COLUMNS}
        """``{field: (rows,) value}`` of every row's label (:data:`LABEL_COLUMNS`; ``""`` where the target names
        none)."""

    def item_labels(self, name: str) -> list[str]:
        """``(len(self),)`` the label field ``name`` (one of :data:`LABEL_COLUMNS`) of each example's row: the label
        its target states (every task of a row states the row's label)."""
        if name not in self.labels:
            raise ValueError(f"item_labels: expected a field of {LABEL_COLUMNS}, got {name!r}")
        values = self.labels[name]
        return [values[row] for row, _ in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Example:
        row, task = self.items[index]
        return Example(
            bev=self.bev[row], prompt=self.prompt[row], task=task, explanation=self.explanation[row],
            trajectory=None if task == "critique" else self.trajectory[row],
            negative=None if task == "drive" else self.negative[row],
        )

    def counts(self) -> dict[str, int]:
        """Examples per task."""
        out: dict[str, int] = {}
        for _, task in self.items:
            out[task] = out.get(task, 0) + 1
        return out


class VLACollator:
    """Turns a list of :class:`Example` into a training batch with
    :meth:`agents.vla.processor.VLAProcessor.encode_training` (codebook encoding, prompt/target layout of
    :mod:`agents.vla.format`)."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def __call__(self, examples: Sequence[Example]) -> dict[str, Any]:
        from agents.vla.format import target_text

        prompts, targets = [], []
        for ex in examples:
            prompts.append(self.processor.prompt(ex.prompt, ex.task, ex.negative))
            codes = None if ex.trajectory is None else self.processor.codebook.encode(ex.trajectory)
            targets.append(target_text(ex.explanation, codes))
        return self.processor.encode_training([ex.bev for ex in examples], prompts, targets)

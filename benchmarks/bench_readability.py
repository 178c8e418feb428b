"""Readability ceiling of the safety label: how much of it a predictor can read from the VLA's BEV image.

``python -m benchmarks.bench_readability [--train-scenes 120 --train-seed 0] [--eval-scenes 48 --eval-seed 4242]
[--cnn-seconds 120] [--cnn-steps N] [--seed 0] [--threads 1] [--cache-dir outputs/sft_cache]
[--motion none,velocity,...] [--outcomes varied [--outcome-mix 0.35,0.30,0.35] [--difficulty 0.5]]
[--prompt-state ego|agents [--prompt-agents 4] [--mlp-steps 1500]] [--no-cnn] [--vision-init DIR]``

``--vision-init DIR`` adds the probe on a BEV-pretrained tower (:mod:`agents.vla.pretrain_vision`; column
``probe-bev``, same rows and probe) and the blank-BEV check of both probes (``probe blank``, ``probe-bev blank``:
the probe fitted on the real training BEVs, reading an all-zero BEV for every held-out row); measured in
``docs/vla.md``, "A BEV-pretrained vision tower".

After each table it prints the **label honesty** of the held-out rows (:mod:`counterfactual.honesty`: the (type, lead)
lookup's language and risk accuracy on every row, the per-type majority risk accuracy, the share of the risk and
action entropy the scenario type explains, and the geometry oracle's risk accuracy, each beside issue #28's target);
``--outcomes varied`` renders the outcome-varied bank (measured table in ``docs/safety_labels.md``).

``--motion`` measures each named BEV motion preset (:data:`envs.render.MOTION_PRESETS`: velocity marks, denser
history trails) on the same rows (pairs mined once, rows re-rendered per preset), prints one table per preset
headed by the observation it used, then a summary of the probe's and the CNN's risk and language per preset
(measured: ``docs/vla.md``, "Motion in the observation").

Rows: the SFT sample rows (:func:`agents.sft.data.load_or_build_samples`, cached there) of a training bank split and
of a held-out split (a bank seed never trained on), each rendered from its scenes' safe expert-log decisions
(``kind="expert"``) and the anchor pairs the default miner finds in them (``kind="pair"``;
:func:`agents.vla.evaluate.heldout_pairs`). Predictors, all fitted on the training rows only:

* ``majority``: the most frequent training value of each field (reads nothing;
  :func:`agents.vla.evaluate.trivial_baselines`);
* ``probe``: a multinomial logistic regression per field (torch, L-BFGS, L2 penalty chosen per field on a
  scene-disjoint quarter of the training rows from :data:`PROBE_L2`) on the **VLA's own frozen random vision
  tower**: the default :class:`agents.vla.model.VLAConfig` model (``VLAPolicy.build``, seeded by ``--seed``), the
  BEV through the policy's own image processor, and the tensor the multi-modal projector receives (captured with a
  forward pre-hook on ``multi_modal_projector`` during ``get_image_features``: the tower's last hidden state without
  its CLS token, ``(N, 64 patches, 64 channels)``), flattened to ``(N, 4096)`` and standardised;
* ``cnn``: a small CNN trained from scratch on the ``uint8 (128, 128, 3)`` BEVs (:class:`SmallCNN`, one head per
  field, summed cross-entropy), for ``--cnn-seconds`` of wall clock or exactly ``--cnn-steps`` steps (the table
  notes the steps taken, so a run can be repeated exactly with ``--cnn-steps``);
* ``lookup``: the most frequent training value per (scenario type, lead time); it is handed the scenario type,
  which no image predictor sees (reference only).

With ``--prompt-state ego|agents`` the rows' prompts state the ego's and the nearest visible agents' motion
(:mod:`envs.prompt_state`, the VLA's ``agent.prompt_state``) and four predictors read the prompt's numbers
(:func:`prompt_features`, parsed back from the prompt text, so exactly what the VLA is told), printed beside the
image-only columns, then the readability ceiling (best image-only vs best with the numbers):

* ``state-lr``: the logistic probe (same L2 selection) on the prompt features alone;
* ``state-mlp``: a two-layer MLP on the prompt features alone (:func:`train_mlp`);
* ``probe+state``: the logistic probe on the tower features and the prompt features together;
* ``cnn+state``: the small CNN with the prompt features joined before its heads (``--no-cnn`` skips both CNNs).

Scoring is the project's (:func:`agents.vla.evaluate.accuracy_report`, as for the VLA's generated text): each field
is scored on **every** held-out row, pairs and expert decisions alike (exact match; rows whose true action is
``none`` are left out of ``action``), ``language`` is the mean of the five fields
(:data:`counterfactual.accuracy.LANGUAGE_FIELDS`), ``risk`` is the risk level on all held-out rows, and
``risk_experts`` is ``risk`` on the expert rows alone. The figures measured below predate scoring every row: their
fields and ``language`` were scored on the **pair** rows only (and the majority's language constants fitted on the training
pair rows). Expert rows store ``""`` for agent class, sector and conflict type (the no-hazard
label names none): the image predictors learn ``""`` as a class of its own and predicting it counts as the
no-hazard answer (None), which is wrong on a pair row, exactly as the VLA's no-hazard sentence parses.

Measured (SYNTHETIC scenario bank; shared 2-core CPU machine, 1 torch thread; 2 min 37 s in all: data 15 s,
probe 18 s, CNN 120 s), ``python -m benchmarks.bench_readability --train-scenes 120 --train-seed 0 --eval-scenes 48
--eval-seed 4242 --cnn-seconds 120``::

    train 120 scenes seed 0 (273 pair + 126 expert rows), held out 48 scenes seed 4242 (117 pair + 51 expert rows)
    accuracy %        majority  probe  cnn   lookup
    ----------------  --------  -----  ----  ------
    risk_agent_class  79.5      78.6   65.8  97.4
    sector            81.2      70.9   61.5  86.3
    risk_level        73.5      70.9   68.4  94.0
    conflict_type     20.5      64.1   59.8  92.3
    action            62.0      65.2   53.3  87.0
    language          63.3      70.0   61.8  91.4
    risk              51.2      68.5   64.9  94.6
    risk_experts      0.0       62.7   56.9  96.1
    probe L2 per field: risk_agent_class 1, sector 1, risk_level 0.1, conflict_type 0.01, action 1
    cnn: 3524 steps of 32

(The ``risk_experts`` row was printed as ``no-hazard`` when this was measured; it was renamed because the expert
rows' truth is the geometry label at their frame, and some of them state a hazard.)

The probe is deterministic; the CNN at this size is not a stable number: an earlier run of the same command (3,420
steps in its 120 s, probe grid without the 1 and 10 penalties) gave the CNN language 69.5 / risk 70.8, 8 and 6
points above this one (the last iterate of ~280 epochs over 399 images). Read the probe as the ceiling here.

Motion presets (SYNTHETIC bank; same machine under load, 34 min), ``python -m benchmarks.bench_readability
--train-scenes 120 --train-seed 0 --eval-scenes 48 --eval-seed 777 --cnn-steps 3000 --motion
none,velocity,velocity3,trails,velocity+trails`` (held out: 111 pair + 48 expert rows)::

    motion           probe risk  probe language  cnn risk  cnn language  cnn steps
    ---------------  ----------  --------------  --------  ------------  ---------
    none             69.2        75.2            67.9      75.1          3000
    velocity         65.4        75.3            71.7      79.2          3000
    velocity3        66.7        75.2            73.0      80.9          3000
    trails           63.5        75.2            68.6      71.4          3000
    velocity+trails  65.4        75.0            71.7      79.3          3000

Per-field tables, the outcome-varied bank and the reading: ``docs/vla.md``, "Motion in the observation".

Agents' numbers in the prompt (SYNTHETIC bank; loaded shared 2-core machine, 12-17 min per run), ``python -m
benchmarks.bench_readability --train-scenes 120 --train-seed 0 --eval-scenes 48 --eval-seed 5151 --no-cnn
--prompt-state agents --prompt-agents K [--outcomes varied]``, risk / language in %::

    bank     K  majority     probe (image)  state-rule  state-lr     state-mlp    probe+state
    default  4  50.3 / 64.1  67.9 / 74.9    63.5        62.3 / 61.5  72.3 / 68.3  75.5 / 77.7
    default  8  50.3 / 64.1  67.9 / 74.9    66.7        64.2 / 63.1  74.8 / 70.5  76.7 / 77.9
    varied   4  59.5 / 64.2  57.7 / 27.5    79.1        77.9 / 33.3  75.5 / 46.1  61.3 / 38.2
    varied   8  59.5 / 64.2  57.7 / 27.5    80.4        78.5 / 30.5  69.9 / 49.4  61.3 / 33.9
    (with the CNNs, K = 4, --cnn-steps 3000: default cnn 69.8 / 82.6, cnn+state 75.5 / 79.3; varied cnn
    55.8 / 24.3, cnn+state 65.0 / 47.2)
    (--prompt-state ego, the control: default risk 52.8 / 49.7 / 67.3 for state-lr / state-mlp / probe+state,
    varied 59.5 / 47.2 / 57.7: the ego's numbers alone read no risk beyond the majority)

Reading: ``docs/vla.md``, "Agents' speeds in the prompt".
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # one core per process, set before numpy / torch load their thread pools
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any, Mapping, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from agents.sft.data import LABEL_COLUMNS  # noqa: E402
from agents.vla.label_head import L2_GRID  # noqa: E402

FIELDS = LABEL_COLUMNS
"""Label fields, in table order (the five of the language accuracy)."""
PREDICTORS = ("majority", "probe", "cnn", "lookup")
"""Table columns, in order."""
STATE_PREDICTORS = ("state-rule", "state-lr", "state-mlp", "probe+state", "cnn+state")
"""Columns added with ``--prompt-state ego|agents`` (predictors that also read the prompt's numbers,
:func:`prompt_features`), after :data:`PREDICTORS`."""
SUMMARY_ROWS = ("language", "risk", "risk_experts")
"""Table rows after the fields: mean over the fields (pair rows), risk level on all rows, risk level on expert
rows."""
PROBE_L2 = L2_GRID
"""L2 penalties tried for the probe: :data:`agents.vla.label_head.L2_GRID`, the label head's (coefficient of the
summed squared weights, beside the mean cross-entropy)."""


# ------------------------------------------------------------------------------------------------------ data
def bank_source(num_scenes: int, seed: int, bank: Mapping[str, Any] | None = None) -> Any:
    """``open_source("bank", ...)`` with the bank options of the CLI (``outcomes``, ``outcome_mix``,
    ``difficulty``; none: the default bank)."""
    from envs.scenes.sources import open_source

    return open_source("bank", num_scenes=num_scenes, seed=seed, **{k: v for k, v in (bank or {}).items()
                                                                     if v is not None})


def split_table(num_scenes: int, seed: int, cache_dir: str, progress: bool = False, motion: str = "none",
                bank: Mapping[str, Any] | None = None, pairs: list | None = None, prompt_state: str = "none",
                prompt_agents: int = 4) -> Any:
    """The rendered sample rows (``datasets.Dataset``) of ``num_scenes`` bank scenes of ``seed`` (bank options
    ``bank``, :func:`bank_source`): their sampled decisions and their anchor pairs (``pairs``,
    or mined now with the default miner), drawn with the BEV motion preset ``motion``
    (:data:`envs.render.MOTION_PRESETS`) and prompts with ``prompt_state`` (:mod:`envs.prompt_state`; cached in
    ``cache_dir``)."""
    from agents.sft.data import load_or_build_samples
    from agents.vla.evaluate import heldout_pairs

    source = bank_source(num_scenes, seed, bank)
    pairs = heldout_pairs(source, None, progress) if pairs is None else pairs
    return load_or_build_samples(source, pairs, cache_dir, sample_config(motion, prompt_state, prompt_agents),
                                 progress=progress)


def sample_config(motion: str = "none", prompt_state: str = "none", prompt_agents: int = 4) -> Any:
    """The SFT sample settings whose BEV carries the motion preset ``motion`` and whose prompts state
    ``prompt_state`` (``"none"`` for both: the default settings, the VLA's observation today)."""
    from agents.sft.data import SampleConfig
    from envs.render import with_motion

    default = SampleConfig()
    if motion == "none" and prompt_state == "none":
        return default
    assert default.observation.bev is not None
    return dataclasses.replace(default, observation=dataclasses.replace(
        default.observation, bev=with_motion(default.observation.bev, motion), prompt_state=prompt_state,
        prompt_agents=prompt_agents))


def split_pairs(num_scenes: int, seed: int, bank: Mapping[str, Any] | None = None, progress: bool = False) -> list:
    """The anchor pairs the default miner finds in the split (mined once, shared by every motion preset)."""
    from agents.vla.evaluate import heldout_pairs

    source = bank_source(num_scenes, seed, bank)
    return heldout_pairs(source, None, progress)


def label_rows(table: Any) -> list[dict[str, Any]]:
    """Per row: ``kind``, ``scene_id``, ``scenario_type``, ``frame``, ``lead_time_s`` and the label columns (``""``
    where the label names none), the records :func:`agents.vla.evaluate.accuracy_report` scores against."""
    cols = ("kind", "scene_id", "scenario_type", "frame", "lead_time_s", *FIELDS)
    return [dict(zip(cols, values)) for values in zip(*(table[c] for c in cols))]


def honesty(train_rows: Sequence[Mapping[str, Any]], eval_rows: Sequence[Mapping[str, Any]], eval_source: Any
            ) -> dict[str, float]:
    """:func:`counterfactual.honesty.label_honesty` of the held-out rows (lookups fitted on the training rows), with
    the geometry oracle (:func:`counterfactual.frame_labels.frame_label` at each row's frame of its scene)."""
    from counterfactual.frame_labels import frame_label
    from counterfactual.honesty import label_honesty

    scenes = {eval_source[i].scene_id: i for i in range(len(eval_source))}
    oracle = [frame_label(eval_source[scenes[r["scene_id"]]], int(r["frame"])).risk_level for r in eval_rows]
    return label_honesty(train_rows, [{**r, "oracle_risk": o} for r, o in zip(eval_rows, oracle)])


def risk_agent_coverage(eval_rows: Sequence[Mapping[str, Any]], eval_source: Any, texts: Sequence[str],
                        bev_extent: tuple[float, float, float, float]) -> dict[str, int]:
    """How often the prompt can name the hazard: per held-out row, the geometry oracle's risk agent
    (:func:`counterfactual.frame_labels.project_frame` at the row's frame) and whether it is in the BEV's view and
    stated in the prompt (an agent row at its rounded relative position).

    Returns:
        ``{"rows", "conflicts" (rows whose frame holds a projected conflict), "in_view", "stated",
        "label_without_conflict" (rows labelled risky whose frame holds none: the miner's hindsight labels)}``.
    """
    from counterfactual.frame_labels import project_frame
    from envs.prompt_state import parse_state_text
    from rewards.geometry import world_to_local

    scenes = {eval_source[i].scene_id: i for i in range(len(eval_source))}
    out = {"rows": len(eval_rows), "conflicts": 0, "in_view": 0, "stated": 0, "label_without_conflict": 0}
    for row, text in zip(eval_rows, texts):
        scene, t = eval_source[scenes[row["scene_id"]]], int(row["frame"])
        projection = project_frame(scene, t)
        risk = projection.risk_agent()
        if risk is None:
            out["label_without_conflict"] += row["risk_level"] not in ("", "none")
            continue
        out["conflicts"] += 1
        j = list(scene.agent_ids).index(int(projection.agent_ids[risk]))
        x, y = world_to_local(scene.agent_poses[j, t, :2], scene.ego_poses[t])
        x_min, x_max, y_min, y_max = bev_extent
        out["in_view"] += bool(x_min <= x < x_max and y_min <= y < y_max)
        agents = parse_state_text(text)[1]
        if agents is not None and len(agents):
            out["stated"] += bool(np.any(np.all(np.abs(agents[:, 2:4] - np.round([x, y])) < 0.01, axis=1)))
    return out


def images(table: Any) -> np.ndarray:
    """``uint8 (N, H, W, 3)`` BEVs of the rows."""
    return np.asarray(table.with_format("numpy")["bev"], dtype=np.uint8)


def prompts(table: Any) -> list[str]:
    """The rows' text prompts (what the VLA reads beside the image)."""
    return [str(p) for p in table["prompt"]]


CLASS_SIZES = {0: (5.0, 2.0), 1: (0.65, 0.65), 2: (1.75, 0.7), 3: (0.45, 0.45)}
"""Box length, width [m] assumed per :class:`envs.scenes.scene.AgentClass` code by :func:`prompt_projection` (the
prompt states no size; these are the SYNTHETIC bank's class means, rounded)."""
@dataclass(frozen=True)
class PromptProjection:
    """The label rule's projection (:mod:`counterfactual.frame_labels`) redone from a prompt's numbers alone.

    Attributes:
        conflict_time_s: ``(M,)`` per stated agent: the first time [s] its box overlaps the ego's or passes within
            1 m (closing, ``> 0``) within 5 s, ``inf`` when neither.
        min_gap_m: ``(M,)`` smallest projected box-to-box gap [m].
        closing_mps: ``(M,)`` closing speed ``-(p . v) / |p|`` [m/s].
        risk_level: :func:`counterfactual.labels.risk_level_of` of the earliest conflict (``"none"`` without one).
        risk_index: index of that agent among the stated ones, or -1.
    """

    conflict_time_s: np.ndarray
    min_gap_m: np.ndarray
    closing_mps: np.ndarray
    risk_level: str
    risk_index: int


def prompt_projection(text: str, horizon_s: float = 5.0, step_s: float = 0.1, gap_m: float = 1.0
                      ) -> PromptProjection:
    """Project the agents a prompt states at constant velocity against the ego, as the label rule does but from the
    prompt's (rounded) numbers only: the ego box (:func:`rewards.geometry.vehicle_corners`) on a constant speed and
    yaw-rate arc from the prompt's ``Speed`` and ``yaw rate`` (the rule uses the ego's own path, which the prompt
    does not state), each agent a box of :data:`CLASS_SIZES` heading along its absolute velocity (relative velocity
    + the ego's; along the ego when slower than 0.5 m/s); gaps by :func:`rewards.geometry.box_distance`."""
    import re

    from counterfactual.labels import risk_level_of
    from envs.prompt_state import parse_state_text
    from rewards.geometry import box_corners, box_distance, vehicle_corners

    m = re.search(r"Speed ([\d.]+) m/s, acceleration [+-][\d.]+ m/s2, yaw rate ([+-][\d.]+) rad/s", text)
    ego_v, agents = parse_state_text(text)
    agents = np.zeros((0, 6)) if agents is None else agents
    none = PromptProjection(np.full(len(agents), np.inf), np.full(len(agents), np.inf), np.zeros(len(agents)),
                            "none", -1)
    if m is None or ego_v is None or not len(agents):
        return none
    taus = np.arange(0.0, horizon_s + 1e-9, step_s)
    speed, yaw_rate = float(m.group(1)), float(m.group(2))
    yaw = yaw_rate * taus
    if abs(yaw_rate) > 1e-3:
        track = np.stack([speed / yaw_rate * np.sin(yaw), speed / yaw_rate * (1 - np.cos(yaw)), yaw], axis=-1)
    else:
        track = np.stack([speed * taus, np.zeros_like(taus), yaw], axis=-1)
    ego_boxes = vehicle_corners(track)  # (K, 4, 2)
    x, y, vx, vy = (agents[:, i] for i in (2, 3, 4, 5))
    ax, ay = vx + ego_v[0], vy + ego_v[1]
    heading = np.where(np.hypot(ax, ay) > 0.5, np.arctan2(ay, ax), 0.0)
    sizes = np.array([CLASS_SIZES[int(c)] for c in agents[:, 1]])
    centres = np.stack([x[:, None] + ax[:, None] * taus, y[:, None] + ay[:, None] * taus,
                        np.repeat(heading[:, None], len(taus), axis=1)], axis=-1)  # (M, K, 3)
    gaps = box_distance(ego_boxes[None], box_corners(centres, sizes[:, 0, None], sizes[:, 1, None]))  # (M, K)
    conflict = np.full(len(agents), np.inf)
    for j in range(len(agents)):
        hit = np.flatnonzero(gaps[j] <= 0.0)
        near = np.flatnonzero((gaps[j] < gap_m) & (taus > 0))
        if len(hit):
            conflict[j] = taus[hit[0]]
        elif len(near):
            conflict[j] = taus[int(np.argmin(np.where(taus > 0, gaps[j], np.inf)))]
    closing = -(x * vx + y * vy) / np.maximum(np.hypot(x, y), 0.1)
    if not np.isfinite(conflict).any():
        return dataclasses.replace(none, min_gap_m=gaps.min(axis=1), closing_mps=closing)
    j = int(np.argmin(conflict))
    return PromptProjection(conflict, gaps.min(axis=1), closing, risk_level_of(float(conflict[j]), float(closing[j])),
                            j)


def prompt_features(texts: Sequence[str], k: int) -> np.ndarray:
    """Numeric features of the prompts, read back from their text (so a predictor sees exactly what the VLA is
    told, rounding included): ``float32 (N, 9 + 16 k + 6)``.

    Per prompt: the command (one-hot, 3), speed [m/s], acceleration [m/s^2], yaw rate [rad/s], heading change
    [deg] of the prompt's first sentences; the state block's ego velocity ``vx, vy`` [m/s]
    (:func:`envs.prompt_state.parse_state_text`; zeros without one); per agent slot ``j < k`` (nearest first, zeros
    where fewer are stated): present, class one-hot (4), ``x, y`` [m], ``vx, vy`` [m/s] relative to the ego, and four
    values **computed from those numbers** (constant relative velocity, points, no boxes): distance ``d`` [m],
    closing speed ``-(p . v) / d`` [m/s], time of closest approach ``clip(-(p . v) / |v|^2, 0, 10)`` [s] and the
    distance then [m], and three of :func:`prompt_projection` (box projection of the label rule from the prompt's
    numbers): conflict time [s] (6 where none), smallest gap [m] (clipped to 50) and a conflict flag; last, six
    per prompt: the earliest conflict time, its closing speed and the projection's risk level one-hot (4). A
    linear model needs these computed values; an MLP could learn some of them.
    """
    import re

    from counterfactual.schema import RISK_LEVELS
    from envs.observation import COMMAND_WORDS
    from envs.prompt_state import parse_state_text

    ego_re = re.compile(r"command: (.+?)\. Speed ([\d.]+) m/s, acceleration ([+-][\d.]+) m/s2, yaw rate ([+-][\d.]+) "
                        r"rad/s\. Past [\d.]+ s: [\d.]+ m travelled, heading change ([+-]\d+) deg\.")
    commands = list(COMMAND_WORDS.values())
    slot_width = 16
    width = 9 + slot_width * k + 6
    out = np.zeros((len(texts), width), dtype=np.float32)
    for i, text in enumerate(texts):
        m = ego_re.search(text)
        if m is None:
            raise ValueError(f"prompt {i}: not a text_prompt sentence: {text[:120]!r}")
        out[i, commands.index(m.group(1))] = 1.0
        out[i, 3:7] = [float(m.group(g)) for g in (2, 3, 4, 5)]
        ego_v, agents = parse_state_text(text)
        if ego_v is not None:
            out[i, 7:9] = ego_v
        projection = prompt_projection(text)
        for j, (_, cls, x, y, vx, vy) in enumerate(() if agents is None else agents[:k]):
            d = math.hypot(x, y)
            dot = x * vx + y * vy
            tca = min(max(-dot / max(vx * vx + vy * vy, 1e-3), 0.0), 10.0)
            slot = out[i, 9 + slot_width * j: 9 + slot_width * (j + 1)]
            slot[0] = 1.0
            slot[1 + int(cls)] = 1.0  # 4 classes: CLASS_WORDS
            slot[5:9] = (x, y, vx, vy)
            slot[9:13] = (d, -dot / max(d, 0.1), tca, math.hypot(x + tca * vx, y + tca * vy))
            t_c = float(projection.conflict_time_s[j])
            slot[13:16] = (min(t_c, 6.0), min(float(projection.min_gap_m[j]), 50.0), float(np.isfinite(t_c)))
        tail = out[i, width - 6:]
        tail[0] = 6.0
        if projection.risk_index >= 0:
            tail[0] = projection.conflict_time_s[projection.risk_index]
            tail[1] = projection.closing_mps[projection.risk_index]
        tail[2 + RISK_LEVELS.index(projection.risk_level)] = 1.0
    return out


class FeatureMLP(torch.nn.Module):
    """Two hidden layers (``hidden`` units, ReLU, dropout 0.2) over standardised features, one linear head per
    field."""

    def __init__(self, dim: int, classes: Mapping[str, int], hidden: int = 128) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                                        torch.nn.Linear(hidden, hidden), torch.nn.ReLU(), torch.nn.Dropout(0.2))
        self.heads = torch.nn.ModuleDict({f: torch.nn.Linear(hidden, n) for f, n in classes.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{field: (B, classes) logits}``."""
        h = self.body(x)
        return {f: head(h) for f, head in self.heads.items()}


def train_mlp(x_train: np.ndarray, labels: Labels, x_eval: np.ndarray, steps: int = 1500, lr: float = 3e-3,
              weight_decay: float = 1e-2, seed: int = 0) -> dict[str, np.ndarray]:
    """:class:`FeatureMLP` on standardised features (full batch, AdamW, summed cross-entropy of the heads, a fixed
    number of steps); returns ``{field: int64 (M,) predicted class indices}`` for every field of ``labels``."""
    torch.manual_seed(seed)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6
    xt = torch.as_tensor((x_train - mean) / std, dtype=torch.float32)
    xe = torch.as_tensor((x_eval - mean) / std, dtype=torch.float32)
    model = FeatureMLP(xt.shape[1], {f: len(c) for f, c in labels.classes.items()})
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    y = {f: torch.as_tensor(t) for f, t in labels.targets.items()}
    model.train()
    for _ in range(steps):
        out = model(xt)
        loss = sum(torch.nn.functional.cross_entropy(out[f], y[f]) for f in out)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        out = model(xe)
    return {f: out[f].argmax(dim=1).numpy() for f in labels.classes}


@dataclass
class Labels:
    """Class indices of the training rows' values, per field.

    Attributes:
        classes: ``{field: sorted values seen in training}`` (``""`` = the no-hazard answer, names none).
        targets: ``{field: int64 (N,) class index of each training row}``.
    """

    classes: dict[str, list[str]]
    targets: dict[str, np.ndarray]

    @classmethod
    def fit(cls, rows: Sequence[Mapping[str, Any]]) -> "Labels":
        """Classes and targets of training rows."""
        classes = {f: sorted({str(r[f]) for r in rows}) for f in FIELDS}
        targets = {f: np.array([classes[f].index(str(r[f])) for r in rows], dtype=np.int64) for f in FIELDS}
        return cls(classes, targets)

    def decode(self, predicted: Mapping[str, np.ndarray]) -> list[dict[str, str | None]]:
        """Label-field dicts from ``{field: int (N,) class indices}``; ``""`` becomes None (the field is not
        named, as :func:`counterfactual.language.parse_explanation` reads the no-hazard sentence)."""
        n = len(next(iter(predicted.values())))
        return [{f: (self.classes[f][int(predicted[f][i])] or None) for f in FIELDS} for i in range(n)]


# ------------------------------------------------------------------------------------------------ tower probe
def tower_features(bevs: np.ndarray, seed: int = 0, batch_size: int = 64, vision_init: str | None = None
                   ) -> np.ndarray:
    """What the default VLA's projector receives for each BEV, flattened: ``float32 (N, patches * channels)``
    (``(N, 64 * 64)`` for :class:`agents.vla.model.VLAConfig`). ``vision_init``: a pretrained tower folder
    (:attr:`agents.vla.model.VLAConfig.vision_init`, :mod:`agents.vla.pretrain_vision`) instead of the random one.

    The policy is ``VLAPolicy.build(codebook, VLAConfig(seed=seed))`` (frozen random tower); its vision tower's
    weights do not depend on the codebook (drawn before the vocabulary-sized embeddings; the smoke test checks it),
    so a 16-word codebook fitted on random walks stands in. The images go through the policy's own image processor
    (the ``pixel_values`` of :meth:`agents.vla.processor.VLAProcessor.encode_prompts`).
    """
    from agents.vla.model import VLAConfig
    from agents.vla.policy import VLAPolicy

    from agents.vla.label_head import projector_input

    policy = VLAPolicy.build(_stand_in_codebook(seed), VLAConfig(seed=seed, vision_init=vision_init))
    model = policy.model.eval()
    image_processor = policy.processor.processor.image_processor
    captured: list[torch.Tensor] = []
    for start in range(0, len(bevs), batch_size):
        pixels = image_processor(images=list(bevs[start: start + batch_size]), return_tensors="pt")["pixel_values"]
        patches = projector_input(model, pixels)
        captured.append(patches.reshape(patches.shape[0], -1))
    return torch.cat(captured).numpy() if captured else np.zeros((0, 0), dtype=np.float32)


def _stand_in_codebook(seed: int):
    """A 16-word segment codebook fitted on seeded random walks (the tower does not depend on it)."""
    from agents.vla.codebook import CodebookConfig, TrajectoryCodebook

    walks = np.cumsum(np.random.default_rng(seed).normal(scale=0.3, size=(64, 8, 3)), axis=1)
    return TrajectoryCodebook.fit(walks, CodebookConfig(size=16, mode="segment", seed=seed))


def _fit_logistic(x: torch.Tensor, y: torch.Tensor, classes: int, l2: float, steps: int) -> torch.Tensor:
    """:func:`agents.vla.label_head.fit_logistic` (the label head's fit; the probe is the same regression)."""
    from agents.vla.label_head import fit_logistic

    return fit_logistic(x, y, classes, l2, steps)


def _logistic_predict(w: torch.Tensor, x: torch.Tensor) -> np.ndarray:
    from agents.vla.label_head import logistic_predict

    return logistic_predict(w, x)


def fit_probe(x_train: np.ndarray, labels: Labels, scene_ids: Sequence[str], x_eval: np.ndarray, seed: int = 0,
              steps: int = 200) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Per field, a logistic probe on standardised features: the L2 penalty of :data:`PROBE_L2` with the best
    accuracy on a scene-disjoint quarter of the training rows (ties: the larger penalty; all training rows when
    either side would be empty), refitted on all training rows.

    Args:
        x_train: ``float32 (N, D)`` training features.
        labels: the training rows' classes and targets.
        scene_ids: ``N`` scene ids (the validation quarter keeps whole scenes).
        x_eval: ``float32 (M, D)`` features to predict.
        seed: seed of the validation split.
        steps: L-BFGS iterations per fit.

    Returns:
        ``({field: int64 (M,) predicted class indices}, {field: chosen L2 penalty})``.
    """
    from counterfactual.accuracy import split_by_scene

    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6
    xt = torch.as_tensor((x_train - mean) / std, dtype=torch.float32)
    xe = torch.as_tensor((x_eval - mean) / std, dtype=torch.float32)
    index = [{"scene_id": s, "i": i} for i, s in enumerate(scene_ids)]
    fit_part, val_part = split_by_scene(index, eval_fraction=0.25, seed=seed)
    fit_idx = torch.tensor([r["i"] for r in fit_part], dtype=torch.long)
    val_idx = np.array([r["i"] for r in val_part], dtype=np.int64)
    predicted, chosen = {}, {}
    for f in FIELDS:
        y = torch.as_tensor(labels.targets[f])
        classes = len(labels.classes[f])
        best = PROBE_L2[-1]
        if len(fit_idx) and len(val_idx):
            scores = []
            for l2 in PROBE_L2:
                w = _fit_logistic(xt[fit_idx], y[fit_idx], classes, l2, steps)
                scores.append(float(np.mean(_logistic_predict(w, xt[val_idx]) == labels.targets[f][val_idx])))
            best = max(zip(scores, PROBE_L2))[1]
        chosen[f] = best
        predicted[f] = _logistic_predict(_fit_logistic(xt, y, classes, best, steps), xe)
    return predicted, chosen


# -------------------------------------------------------------------------------------------------------- CNN
class SmallCNN(torch.nn.Module):
    """Four strided 3x3 conv layers (16, 32, 64, 64 channels, ReLU, batch norm) taking a ``(B, C, size, size)`` image
    in [-0.5, 0.5] to ``(B, 64, 8, 8)``, a shared 128-unit layer over the flattened map (it keeps where things are:
    the sector is a position) and one linear head per field.

    With ``extra`` > 0 (``cnn+state``) the forward pass also takes ``(B, extra)`` standardised prompt features
    (:func:`prompt_features`), through a 64-unit ReLU layer concatenated with the image's 128 units before the heads.

    Args:
        classes: ``{field: number of classes}``.
        size: input side [px] (a multiple of 16).
        extra: width of the extra feature vector (0: image only, the ``cnn`` column).
        channels: input channels (3: the VLA's RGB BEV; the MLP agent's semantic BEV has one per layer).
    """

    def __init__(self, classes: Mapping[str, int], size: int = 128, extra: int = 0, channels: int = 3) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        width_in = channels
        for width in (16, 32, 64, 64):
            layers += [torch.nn.Conv2d(width_in, width, 3, stride=2, padding=1), torch.nn.BatchNorm2d(width),
                       torch.nn.ReLU()]
            width_in = width
        self.features = torch.nn.Sequential(*layers, torch.nn.Flatten(),
                                            torch.nn.Linear(64 * (size // 16) ** 2, 128), torch.nn.ReLU(),
                                            torch.nn.Dropout(0.3))
        self.heads = torch.nn.ModuleDict({f: torch.nn.Linear(128 + (64 if extra else 0), n)
                                          for f, n in classes.items()})
        self.extra = torch.nn.Sequential(torch.nn.Linear(extra, 64), torch.nn.ReLU()) if extra else None

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``{field: (B, classes) logits}`` of images ``x`` (and extra features ``z (B, extra)``)."""
        h = self.features(x)
        if self.extra is not None:
            h = torch.cat([h, self.extra(z)], dim=1)
        return {f: head(h) for f, head in self.heads.items()}


def _to_input(bevs: np.ndarray) -> torch.Tensor:
    """``uint8 (N, H, W, 3)`` -> ``float32 (N, 3, H, W)`` in [-0.5, 0.5]."""
    return torch.as_tensor(bevs).permute(0, 3, 1, 2).float().div(255.0).sub(0.5)


def train_cnn(bevs: np.ndarray, labels: Labels, eval_bevs: np.ndarray, seconds: float = 120.0,
              steps: int | None = None, batch_size: int = 32, lr: float = 1e-3, seed: int = 0,
              extra: np.ndarray | None = None, eval_extra: np.ndarray | None = None
              ) -> tuple[dict[str, np.ndarray], int]:
    """Train :class:`SmallCNN` on the training BEVs (AdamW, weight decay 1e-2, summed cross-entropy of the heads,
    shuffled minibatches) for ``steps`` steps, or until ``seconds`` of wall clock have passed when ``steps`` is
    None; then predict the evaluation BEVs. ``extra`` / ``eval_extra`` ``(N, F)`` / ``(M, F)``: prompt features
    read beside the image (standardised with the training rows' statistics; ``cnn+state``).

    Returns:
        ``({field: int64 (M,) predicted class indices}, steps taken)``.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = SmallCNN({f: len(c) for f, c in labels.classes.items()}, size=bevs.shape[1],
                     extra=0 if extra is None else extra.shape[1])
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    x = _to_input(bevs)
    z = ze = None
    if extra is not None:
        assert eval_extra is not None
        mean, std = extra.mean(axis=0), extra.std(axis=0) + 1e-6
        z = torch.as_tensor((extra - mean) / std, dtype=torch.float32)
        ze = torch.as_tensor((eval_extra - mean) / std, dtype=torch.float32)
    y = {f: torch.as_tensor(t) for f, t in labels.targets.items()}
    n = len(x)
    done, order, cursor = 0, torch.randperm(n, generator=gen), 0
    start = time.perf_counter()
    model.train()
    while (done < steps) if steps is not None else (time.perf_counter() - start < seconds):
        if cursor >= n:
            order, cursor = torch.randperm(n, generator=gen), 0
        idx = order[cursor: cursor + batch_size]
        cursor += batch_size
        if len(idx) < 2:  # batch norm needs two rows
            continue
        out = model(x[idx], None if z is None else z[idx])
        loss = sum(torch.nn.functional.cross_entropy(out[f], y[f][idx]) for f in out)
        opt.zero_grad()
        loss.backward()
        opt.step()
        done += 1
    model.eval()
    with torch.no_grad():
        outs = [model(_to_input(eval_bevs[i: i + 128]), None if ze is None else ze[i: i + 128])
                for i in range(0, len(eval_bevs), 128)]
    return {f: torch.cat([o[f] for o in outs]).argmax(dim=1).numpy() for f in FIELDS}, done


# ------------------------------------------------------------------------------------------------------ table
def scores(report: Any) -> dict[str, float]:
    """Table values (fractions) of an :class:`agents.vla.evaluate.AccuracyReport`: the fields, ``language``,
    ``risk`` and ``risk_experts``."""
    return {**{f: report.fields[f] for f in FIELDS}, "language": report.language_accuracy,
            "risk": report.risk_accuracy, "risk_experts": report.risk_accuracy_experts}


def format_table(results: Mapping[str, Mapping[str, float]], title: str = "") -> str:
    """Fixed-width table: one row per field and summary row (:data:`SUMMARY_ROWS`), one column per predictor,
    accuracy in %."""
    names = list(results)
    rows = [[key] + [("n/a" if math.isnan(results[p][key]) else f"{100 * results[p][key]:.1f}") for p in names]
            for key in (*FIELDS, *SUMMARY_ROWS)]
    head = ["accuracy %", *names]
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = ([title] if title else []) + [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    return "\n".join(lines + [fmt.format(*r) for r in rows])


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_readability", description=__doc__.split("\n\n")[0])
    p.add_argument("--train-scenes", type=int, default=120, help="bank scenes of the training rows")
    p.add_argument("--train-seed", type=int, default=0, help="bank seed of the training rows")
    p.add_argument("--eval-scenes", type=int, default=48, help="bank scenes of the held-out rows")
    p.add_argument("--eval-seed", type=int, default=4242, help="bank seed of the held-out rows (never trained on)")
    p.add_argument("--cnn-seconds", type=float, default=120.0, help="CNN training budget [s of wall clock]")
    p.add_argument("--cnn-steps", type=int, default=None, help="exact CNN training steps (overrides --cnn-seconds)")
    p.add_argument("--no-cnn", action="store_true", help="skip the two CNN predictors (cnn, cnn+state: n/a)")
    p.add_argument("--probe-steps", type=int, default=200, help="L-BFGS iterations per probe fit")
    p.add_argument("--seed", type=int, default=0, help="VLA tower, probe split and CNN seed")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--cache-dir", default="outputs/sft_cache", help="rendered-sample cache folder (SFT format)")
    p.add_argument("--outcomes", choices=("collision", "varied"), default=None,
                   help="bank outcomes (default: the default bank, every accident collides)")
    p.add_argument("--outcome-mix", type=lambda t: tuple(float(v) for v in t.split(",")), default=None,
                   help="varied bank: wanted benign,near_miss,collision shares")
    p.add_argument("--difficulty", type=float, default=None, help="varied bank: hazard difficulty in [0, 1]")
    p.add_argument("--no-progress", action="store_true", help="disable progress bars")
    p.add_argument("--prompt-state", choices=("none", "ego", "agents"), default="none",
                   help="render the prompts with this state block (envs.prompt_state) and add the predictors that "
                        "read its numbers: " + ", ".join(STATE_PREDICTORS))
    p.add_argument("--prompt-agents", type=int, default=4, help="agents stated with --prompt-state agents")
    p.add_argument("--mlp-steps", type=int, default=1500, help="full-batch steps of the state-mlp predictor")
    p.add_argument("--vision-init", default=None,
                   help="also probe this pretrained vision tower (agents.vla.pretrain_vision folder): columns "
                        "probe-bev, and the blank-BEV check of both probes (probe blank, probe-bev blank)")
    p.add_argument("--motion", default="none",
                   help="comma-separated BEV motion presets to measure, each on the same rows (envs.render."
                        "MOTION_PRESETS: none, velocity, velocity3, trails, velocity+trails)")
    return p


def observation_line(motion: str, prompt_state: str = "none", prompt_agents: int = 4) -> str:
    """Which observation a table was measured on: the motion preset and its BEV settings, and the prompt state."""
    from envs.render import MOTION_PRESETS

    bev = sample_config(motion).observation.bev
    overrides = ", ".join(f"{k}={v}" for k, v in MOTION_PRESETS[motion].items()) or "the default BEV"
    state = {"none": "none", "ego": "ego velocity",
             "agents": f"ego velocity + {prompt_agents} nearest visible agents"}[prompt_state]
    return (f"observation: motion={motion} ({overrides}; {bev.height}x{bev.width} px {bev.mode} at "
            f"{bev.meters_per_pixel} m/px, history trail {bev.history_length} boxes every {bev.history_step} frames, "
            "velocity marks " + (f"{list(bev.motion_horizons)} s" if bev.motion_horizons else "none") + ")"
            f"; prompt_state={prompt_state} ({state})")


def bank_options(args: argparse.Namespace) -> dict[str, Any]:
    """The CLI's bank options (:func:`bank_source`)."""
    return {"outcomes": args.outcomes, "outcome_mix": args.outcome_mix, "difficulty": args.difficulty}


def measure(args: argparse.Namespace, motion: str, pairs: Mapping[str, list], progress: bool) -> dict[str, Any]:
    """Fit and score the four predictors on the rows drawn with ``motion``; print its table. Returns
    ``{"results": {predictor: scores}, ...}``."""
    from agents.vla.evaluate import accuracy_report, trivial_baselines

    t0 = time.perf_counter()
    state = (args.prompt_state, args.prompt_agents)
    train_table = split_table(args.train_scenes, args.train_seed, args.cache_dir, progress, motion, bank_options(args),
                              pairs["train"], *state)
    eval_table = split_table(args.eval_scenes, args.eval_seed, args.cache_dir, progress, motion, bank_options(args),
                             pairs["eval"], *state)
    train_rows, eval_rows = label_rows(train_table), label_rows(eval_table)
    train_bev, eval_bev = images(train_table), images(eval_table)
    labels = Labels.fit(train_rows)
    t_data = time.perf_counter() - t0
    if args.prompt_state == "agents":
        cover = risk_agent_coverage(eval_rows, bank_source(args.eval_scenes, args.eval_seed, bank_options(args)),
                                    prompts(eval_table), sample_config().observation.bev.view_extent)
        print(f"held-out rows {cover['rows']}: {cover['conflicts']} hold a projected conflict at their frame (geometry "
              f"oracle), its risk agent in the BEV's view {cover['in_view']}, stated in the prompt "
              f"({args.prompt_agents} nearest) {cover['stated']}; {cover['label_without_conflict']} rows labelled "
              "risky without one (hindsight labels)", flush=True)

    t0 = time.perf_counter()
    features = tower_features(np.concatenate([train_bev, eval_bev]), seed=args.seed)
    blank_results: dict[str, dict[str, float]] = {}
    if args.vision_init:  # the pretrained tower's probe, and both probes read from an all-zero BEV
        blank_results, probe_pred, l2 = pretrained_probe(args, labels, train_rows, eval_rows, train_bev, eval_bev,
                                                         features)
    else:
        probe_pred, l2 = fit_probe(features[: len(train_bev)], labels, [r["scene_id"] for r in train_rows],
                                   features[len(train_bev):], seed=args.seed, steps=args.probe_steps)
    t_probe = time.perf_counter() - t0

    t0 = time.perf_counter()
    if args.no_cnn:  # the cnn columns read n/a
        cnn_pred, cnn_steps = {f: np.full(len(eval_bev), -1) for f in FIELDS}, 0
    else:
        cnn_pred, cnn_steps = train_cnn(train_bev, labels, eval_bev, seconds=args.cnn_seconds, steps=args.cnn_steps,
                                        seed=args.seed)
    t_cnn = time.perf_counter() - t0

    majority, lookup = trivial_baselines(train_rows, eval_rows)
    results = {
        "majority": scores(majority),
        "probe": scores(accuracy_report("probe", labels.decode(probe_pred), eval_rows)),
        **blank_results,
        "cnn": _na() if args.no_cnn else scores(accuracy_report("cnn", labels.decode(cnn_pred), eval_rows)),
        "lookup": scores(lookup),
    }
    t_state = 0.0
    if args.prompt_state != "none":
        t0 = time.perf_counter()
        scene_ids = [r["scene_id"] for r in train_rows]
        z = prompt_features(prompts(train_table) + prompts(eval_table), args.prompt_agents)
        zt, ze = z[: len(train_rows)], z[len(train_rows):]
        tower_t, tower_e = features[: len(train_bev)], features[len(train_bev):]
        predicted = {
            "state-lr": fit_probe(zt, labels, scene_ids, ze, seed=args.seed, steps=args.probe_steps)[0],
            "state-mlp": train_mlp(zt, labels, ze, steps=args.mlp_steps, seed=args.seed),
            "probe+state": fit_probe(np.concatenate([tower_t, zt], axis=1), labels, scene_ids,
                                     np.concatenate([tower_e, ze], axis=1), seed=args.seed,
                                     steps=args.probe_steps)[0],
        }
        if not args.no_cnn:
            predicted["cnn+state"] = train_cnn(train_bev, labels, eval_bev, seconds=args.cnn_seconds,
                                               steps=args.cnn_steps, seed=args.seed, extra=zt, eval_extra=ze)[0]
        results["state-rule"] = rule_scores(prompts(eval_table), eval_rows)
        for name in STATE_PREDICTORS[1:]:
            results[name] = (scores(accuracy_report(name, labels.decode(predicted[name]), eval_rows))
                             if name in predicted else _na())
        t_state = time.perf_counter() - t0
    count = {k: sum(r["kind"] == k for r in train_rows) for k in ("pair", "expert")}
    held = {k: sum(r["kind"] == k for r in eval_rows) for k in ("pair", "expert")}
    bank = "SYNTHETIC bank" + (f", outcomes={args.outcomes}" if args.outcomes else "")
    title = (f"readability of the safety label ({bank}): train {args.train_scenes} scenes seed "
             f"{args.train_seed} ({count['pair']} pair + {count['expert']} expert rows), held out "
             f"{args.eval_scenes} scenes seed {args.eval_seed} ({held['pair']} pair + {held['expert']} expert "
             f"rows)\n{observation_line(motion, args.prompt_state, args.prompt_agents)}")
    print(format_table(results, title))
    from counterfactual.honesty import format_honesty

    print(format_honesty(honesty(train_rows, eval_rows, bank_source(args.eval_scenes, args.eval_seed,
                                                                     bank_options(args))),
                         "label honesty of the held-out rows (lookups fitted on the training rows):"))
    print(f"probe: tower features {features.shape[1]} per image (seed {args.seed}), L2 per field "
          + ", ".join(f"{f} {v:g}" for f, v in l2.items()) + f"; {t_probe:.0f} s")
    print(f"cnn: {cnn_steps} steps of 32 ({t_cnn:.0f} s, {args.threads} thread(s)); data {t_data:.0f} s", flush=True)
    if args.prompt_state != "none":
        print(f"state predictors: {z.shape[1]} prompt features per row (benchmarks.bench_readability.prompt_features, "
              f"{args.prompt_agents} agent slots), mlp {args.mlp_steps} steps; {t_state:.0f} s")
        print(format_ceiling(results), flush=True)
    return {"results": results, "cnn_steps": cnn_steps}


def pretrained_probe(args: argparse.Namespace, labels: Labels, train_rows: Sequence[Mapping[str, Any]],
                     eval_rows: Sequence[Mapping[str, Any]], train_bev: np.ndarray, eval_bev: np.ndarray,
                     random_features: np.ndarray
                     ) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray], dict[str, float]]:
    """Table columns of ``--vision-init``: ``probe blank`` (the random tower's probe, fitted on the real training
    BEVs, reading an all-zero BEV for every held-out row), ``probe-bev`` (the same probe on the pretrained tower
    ``args.vision_init``) and ``probe-bev blank``; also the random tower's probe predictions on the held-out rows
    and its L2 penalties (the ``probe`` column, fitted once with the blank row appended: a row's prediction does not
    depend on the other evaluated rows)."""
    from agents.vla.evaluate import accuracy_report

    blank = np.zeros_like(eval_bev[:1])
    scene_ids = [r["scene_id"] for r in train_rows]
    out: dict[str, dict[str, float]] = {}
    for name, init in (("probe", None), ("probe-bev", args.vision_init)):
        if init is None:
            feats, blank_feats = random_features, tower_features(blank, seed=args.seed)
        else:
            both = tower_features(np.concatenate([train_bev, eval_bev, blank]), seed=args.seed, vision_init=init)
            feats, blank_feats = both[:-1], both[-1:]
        n = len(train_bev)
        pred, l2 = fit_probe(feats[:n], labels, scene_ids, np.concatenate([feats[n:], blank_feats]),
                             seed=args.seed, steps=args.probe_steps)
        real = {f: p[:-1] for f, p in pred.items()}
        if init is None:
            random_pred, random_l2 = real, l2
        else:
            out[name] = scores(accuracy_report(name, labels.decode(real), eval_rows))
        tiled = {f: np.full(len(eval_rows), p[-1]) for f, p in pred.items()}
        out[f"{name} blank"] = scores(accuracy_report(f"{name} blank", labels.decode(tiled), eval_rows))
    return out, random_pred, random_l2


def rule_scores(texts: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Table values of ``state-rule``: the risk level of :func:`prompt_projection` of each prompt (no training);
    it states no other field (their cells and language: n/a)."""
    from agents.vla.evaluate import accuracy_report

    predicted = [{"risk_level": prompt_projection(t).risk_level} for t in texts]
    values = scores(accuracy_report("state-rule", predicted, rows))
    return {k: (v if k in ("risk_level", "risk", "risk_experts") else math.nan) for k, v in values.items()}


def _na() -> dict[str, float]:
    """Table values of a predictor that was not run (``--no-cnn``): every cell n/a."""
    return {k: math.nan for k in (*FIELDS, *SUMMARY_ROWS)}


def format_ceiling(results: Mapping[str, Mapping[str, float]]) -> str:
    """The readability ceiling (best predictor, in %) of risk and language: image only (``probe``, ``cnn``) and with
    the prompt's numbers (:data:`STATE_PREDICTORS`), beside the majority."""
    lines = ["readability ceiling (best predictor, %):"]
    for key in ("risk", "language"):
        parts = [f"majority {100 * results['majority'][key]:.1f}"]
        for title, names in (("image only", ("probe", "cnn")), ("with the prompt's numbers", STATE_PREDICTORS)):
            names = tuple(n for n in names if n != "state-rule" or key == "risk")
            run = [n for n in names if n in results and not math.isnan(results[n][key])]
            if not run:
                continue
            best = max(run, key=lambda n: results[n][key])
            parts.append(f"{title} {100 * results[best][key]:.1f} ({best})")
        lines.append(f"  {key}: " + ", ".join(parts))
    return "\n".join(lines)


def format_motion_summary(measured: Mapping[str, Mapping[str, Any]]) -> str:
    """One row per motion preset: risk and language of the probe and the CNN (the readability ceiling), in %."""
    head = ["motion", "probe risk", "probe language", "cnn risk", "cnn language", "cnn steps"]
    rows = [[m, *(f"{100 * r['results'][p][k]:.1f}" for p in ("probe", "cnn") for k in ("risk", "language")),
             str(r["cnn_steps"])] for m, r in measured.items()]
    widths = [max(len(x[i]) for x in rows + [head]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths))] + [fmt.format(*r) for r in rows])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its table (one per motion preset, then a summary when there are several)."""
    from envs.render import MOTION_PRESETS

    args = build_parser().parse_args(argv)
    motions = [m.strip() for m in args.motion.split(",") if m.strip()]
    unknown = [m for m in motions if m not in MOTION_PRESETS]
    if unknown or not motions:
        raise SystemExit(f"--motion: expected comma-separated names from {tuple(MOTION_PRESETS)}, got "
                         f"{args.motion!r}")
    progress = not args.no_progress
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        pairs = {"train": split_pairs(args.train_scenes, args.train_seed, bank_options(args), progress),
                 "eval": split_pairs(args.eval_scenes, args.eval_seed, bank_options(args), progress)}
        measured = {}
        for motion in motions:
            measured[motion] = measure(args, motion, pairs, progress)
            print()
        if len(motions) > 1:
            print("readability ceiling per motion preset (accuracy %, same rows):")
            print(format_motion_summary(measured))
    finally:
        torch.set_num_threads(threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

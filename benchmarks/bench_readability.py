"""Readability ceiling of the safety label: how much of it a predictor can read from the VLA's BEV image.

``python -m benchmarks.bench_readability [--train-scenes 120 --train-seed 0] [--eval-scenes 48 --eval-seed 4242]
[--cnn-seconds 120] [--cnn-steps N] [--seed 0] [--threads 1] [--cache-dir outputs/sft_cache]
[--outcomes varied [--outcome-mix 0.35,0.30,0.35] [--difficulty 0.5]]``

After the table it prints the **label honesty** of the held-out rows (:mod:`counterfactual.honesty`: the (type, lead)
lookup's language and risk accuracy on every row, the per-type majority risk accuracy, the share of the risk and
action entropy the scenario type explains, and the geometry oracle's risk accuracy, each beside issue #28's target);
``--outcomes varied`` renders the outcome-varied bank (measured table in ``docs/safety_labels.md``).

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

Scoring is the project's (:func:`agents.vla.evaluate.accuracy_report`, as for the VLA's generated text): each field
is scored on the **pair** rows (exact match; rows whose true action is ``none`` are left out of ``action``),
``language`` is the mean of the five fields (:data:`counterfactual.accuracy.LANGUAGE_FIELDS`), ``risk`` is the
risk level on **all** held-out rows (pairs + safe expert decisions, whose truth is ``none``), and ``no-hazard`` is
``risk`` on the expert rows alone. Expert rows store ``""`` for agent class, sector and conflict type (the no-hazard
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
    no-hazard         0.0       62.7   56.9  96.1
    probe L2 per field: risk_agent_class 1, sector 1, risk_level 0.1, conflict_type 0.01, action 1
    cnn: 3524 steps of 32

The probe is deterministic; the CNN at this size is not a stable number: an earlier run of the same command (3,420
steps in its 120 s, probe grid without the 1 and 10 penalties) gave the CNN language 69.5 / risk 70.8, 8 and 6
points above this one (the last iterate of ~280 epochs over 399 images). Read the probe as the ceiling here.
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # one core per process, set before numpy / torch load their thread pools
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any, Mapping, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from agents.sft.data import LABEL_COLUMNS  # noqa: E402

FIELDS = LABEL_COLUMNS
"""Label fields, in table order (the five of the language accuracy)."""
PREDICTORS = ("majority", "probe", "cnn", "lookup")
"""Table columns, in order."""
SUMMARY_ROWS = ("language", "risk", "no-hazard")
"""Table rows after the fields: mean over the fields (pair rows), risk level on all rows, risk level on expert
rows."""
PROBE_L2 = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
"""L2 penalties tried for the probe (coefficient of the summed squared weights, beside the mean cross-entropy)."""


# ------------------------------------------------------------------------------------------------------ data
def bank_source(num_scenes: int, seed: int, bank: Mapping[str, Any] | None = None) -> Any:
    """``open_source("bank", ...)`` with the bank options of the CLI (``outcomes``, ``outcome_mix``,
    ``difficulty``; none: the default bank)."""
    from envs.scenes.sources import open_source

    return open_source("bank", num_scenes=num_scenes, seed=seed, **{k: v for k, v in (bank or {}).items()
                                                                     if v is not None})


def split_table(num_scenes: int, seed: int, cache_dir: str, progress: bool = False,
                bank: Mapping[str, Any] | None = None) -> Any:
    """The rendered sample rows (``datasets.Dataset``) of ``num_scenes`` bank scenes of ``seed`` (bank options
    ``bank``, :func:`bank_source`): their safe expert decisions and their anchor pairs, mined now with the default
    miner (cached in ``cache_dir``)."""
    from agents.sft.data import load_or_build_samples
    from agents.vla.evaluate import heldout_pairs

    source = bank_source(num_scenes, seed, bank)
    return load_or_build_samples(source, heldout_pairs(source, None, progress), cache_dir, progress=progress)


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


def images(table: Any) -> np.ndarray:
    """``uint8 (N, H, W, 3)`` BEVs of the rows."""
    return np.asarray(table.with_format("numpy")["bev"], dtype=np.uint8)


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
def tower_features(bevs: np.ndarray, seed: int = 0, batch_size: int = 64) -> np.ndarray:
    """What the default VLA's projector receives for each BEV, flattened: ``float32 (N, patches * channels)``
    (``(N, 64 * 64)`` for :class:`agents.vla.model.VLAConfig`).

    The policy is ``VLAPolicy.build(codebook, VLAConfig(seed=seed))`` (frozen random tower); its vision tower's
    weights do not depend on the codebook (drawn before the vocabulary-sized embeddings; the smoke test checks it),
    so a 16-word codebook fitted on random walks stands in. The images go through the policy's own image processor
    (the ``pixel_values`` of :meth:`agents.vla.processor.VLAProcessor.encode_prompts`).
    """
    from agents.vla.model import VLAConfig
    from agents.vla.policy import VLAPolicy

    policy = VLAPolicy.build(_stand_in_codebook(seed), VLAConfig(seed=seed))
    model = policy.model.eval()
    image_processor = policy.processor.processor.image_processor
    captured: list[torch.Tensor] = []
    hook = model.model.multi_modal_projector.register_forward_pre_hook(
        lambda _module, args: captured.append(args[0].detach().reshape(args[0].shape[0], -1).float()))
    try:
        with torch.no_grad():
            for start in range(0, len(bevs), batch_size):
                chunk = list(bevs[start: start + batch_size])
                pixels = image_processor(images=chunk, return_tensors="pt")["pixel_values"]
                model.get_image_features(pixel_values=pixels, vision_feature_layer=model.config.vision_feature_layer,
                                         vision_feature_select_strategy=model.config.vision_feature_select_strategy)
    finally:
        hook.remove()
    return torch.cat(captured).numpy() if captured else np.zeros((0, 0), dtype=np.float32)


def _stand_in_codebook(seed: int):
    """A 16-word segment codebook fitted on seeded random walks (the tower does not depend on it)."""
    from agents.vla.codebook import CodebookConfig, TrajectoryCodebook

    walks = np.cumsum(np.random.default_rng(seed).normal(scale=0.3, size=(64, 8, 3)), axis=1)
    return TrajectoryCodebook.fit(walks, CodebookConfig(size=16, mode="segment", seed=seed))


def _fit_logistic(x: torch.Tensor, y: torch.Tensor, classes: int, l2: float, steps: int) -> torch.Tensor:
    """Weights ``(D + 1, C)`` (last row: bias) of a multinomial logistic regression minimising mean cross-entropy +
    ``l2 * ||W||^2`` (bias not penalised), by full-batch L-BFGS from zero (deterministic)."""
    xb = torch.cat([x, torch.ones(len(x), 1)], dim=1)
    w = torch.zeros(xb.shape[1], classes, requires_grad=True)
    opt = torch.optim.LBFGS([w], lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xb @ w, y) + l2 * (w[:-1] ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach()


def _logistic_predict(w: torch.Tensor, x: torch.Tensor) -> np.ndarray:
    return (torch.cat([x, torch.ones(len(x), 1)], dim=1) @ w).argmax(dim=1).numpy()


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
    """Four strided 3x3 conv layers (16, 32, 64, 64 channels, ReLU, batch norm) taking a ``(B, 3, 128, 128)`` image
    in [-0.5, 0.5] to ``(B, 64, 8, 8)``, a shared 128-unit layer over the flattened map (it keeps where things are:
    the sector is a position) and one linear head per field.

    Args:
        classes: ``{field: number of classes}``.
        size: input side [px] (a multiple of 16).
    """

    def __init__(self, classes: Mapping[str, int], size: int = 128) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        width_in = 3
        for width in (16, 32, 64, 64):
            layers += [torch.nn.Conv2d(width_in, width, 3, stride=2, padding=1), torch.nn.BatchNorm2d(width),
                       torch.nn.ReLU()]
            width_in = width
        self.features = torch.nn.Sequential(*layers, torch.nn.Flatten(),
                                            torch.nn.Linear(64 * (size // 16) ** 2, 128), torch.nn.ReLU(),
                                            torch.nn.Dropout(0.3))
        self.heads = torch.nn.ModuleDict({f: torch.nn.Linear(128, n) for f, n in classes.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{field: (B, classes) logits}``."""
        h = self.features(x)
        return {f: head(h) for f, head in self.heads.items()}


def _to_input(bevs: np.ndarray) -> torch.Tensor:
    """``uint8 (N, H, W, 3)`` -> ``float32 (N, 3, H, W)`` in [-0.5, 0.5]."""
    return torch.as_tensor(bevs).permute(0, 3, 1, 2).float().div(255.0).sub(0.5)


def train_cnn(bevs: np.ndarray, labels: Labels, eval_bevs: np.ndarray, seconds: float = 120.0,
              steps: int | None = None, batch_size: int = 32, lr: float = 1e-3, seed: int = 0
              ) -> tuple[dict[str, np.ndarray], int]:
    """Train :class:`SmallCNN` on the training BEVs (AdamW, weight decay 1e-2, summed cross-entropy of the heads,
    shuffled minibatches) for ``steps`` steps, or until ``seconds`` of wall clock have passed when ``steps`` is
    None; then predict the evaluation BEVs.

    Returns:
        ``({field: int64 (M,) predicted class indices}, steps taken)``.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = SmallCNN({f: len(c) for f, c in labels.classes.items()}, size=bevs.shape[1])
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    x = _to_input(bevs)
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
        out = model(x[idx])
        loss = sum(torch.nn.functional.cross_entropy(out[f], y[f][idx]) for f in out)
        opt.zero_grad()
        loss.backward()
        opt.step()
        done += 1
    model.eval()
    with torch.no_grad():
        outs = [model(_to_input(eval_bevs[i: i + 128])) for i in range(0, len(eval_bevs), 128)]
    return {f: torch.cat([o[f] for o in outs]).argmax(dim=1).numpy() for f in FIELDS}, done


# ------------------------------------------------------------------------------------------------------ table
def scores(report: Any) -> dict[str, float]:
    """Table values (fractions) of an :class:`agents.vla.evaluate.AccuracyReport`: the fields, ``language``,
    ``risk`` and ``no-hazard``."""
    return {**{f: report.fields[f] for f in FIELDS}, "language": report.language_accuracy,
            "risk": report.risk_accuracy, "no-hazard": report.no_hazard_accuracy}


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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    from agents.vla.evaluate import accuracy_report, trivial_baselines

    args = build_parser().parse_args(argv)
    progress = not args.no_progress
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        t0 = time.perf_counter()
        bank = {"outcomes": args.outcomes, "outcome_mix": args.outcome_mix, "difficulty": args.difficulty}
        train_table = split_table(args.train_scenes, args.train_seed, args.cache_dir, progress, bank)
        eval_table = split_table(args.eval_scenes, args.eval_seed, args.cache_dir, progress, bank)
        train_rows, eval_rows = label_rows(train_table), label_rows(eval_table)
        train_bev, eval_bev = images(train_table), images(eval_table)
        labels = Labels.fit(train_rows)
        t_data = time.perf_counter() - t0

        t0 = time.perf_counter()
        features = tower_features(np.concatenate([train_bev, eval_bev]), seed=args.seed)
        probe_pred, l2 = fit_probe(features[: len(train_bev)], labels, [r["scene_id"] for r in train_rows],
                                   features[len(train_bev):], seed=args.seed, steps=args.probe_steps)
        t_probe = time.perf_counter() - t0

        t0 = time.perf_counter()
        cnn_pred, cnn_steps = train_cnn(train_bev, labels, eval_bev, seconds=args.cnn_seconds, steps=args.cnn_steps,
                                        seed=args.seed)
        t_cnn = time.perf_counter() - t0

        majority, lookup = trivial_baselines(train_rows, eval_rows)
        results = {
            "majority": scores(majority),
            "probe": scores(accuracy_report("probe", labels.decode(probe_pred), eval_rows)),
            "cnn": scores(accuracy_report("cnn", labels.decode(cnn_pred), eval_rows)),
            "lookup": scores(lookup),
        }
        count = {k: sum(r["kind"] == k for r in train_rows) for k in ("pair", "expert")}
        held = {k: sum(r["kind"] == k for r in eval_rows) for k in ("pair", "expert")}
        title = (f"readability of the safety label (SYNTHETIC {'outcome-varied ' if args.outcomes == 'varied' else ''}"
                 f"bank): train {args.train_scenes} scenes seed "
                 f"{args.train_seed} ({count['pair']} pair + {count['expert']} expert rows), held out "
                 f"{args.eval_scenes} scenes seed {args.eval_seed} ({held['pair']} pair + {held['expert']} expert "
                 f"rows)")
        print(format_table(results, title))
        from counterfactual.honesty import format_honesty

        print(format_honesty(honesty(train_rows, eval_rows, bank_source(args.eval_scenes, args.eval_seed, bank)),
                             "label honesty of the held-out rows (lookups fitted on the training rows):"))
        print(f"probe: tower features {features.shape[1]} per image (seed {args.seed}), L2 per field "
              + ", ".join(f"{f} {v:g}" for f, v in l2.items()) + f"; {t_probe:.0f} s")
        print(f"cnn: {cnn_steps} steps of 32 ({t_cnn:.0f} s, {args.threads} thread(s)); data {t_data:.0f} s")
    finally:
        torch.set_num_threads(threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

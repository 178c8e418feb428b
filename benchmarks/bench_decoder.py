"""Does the VLA's decoder read its image? Label accuracy of SFT levers on a held-out bank seed (issue #29).

``python -m benchmarks.bench_decoder [--env bank|world_v2] [--train-scenes 120 --train-seed 0] [--eval-scenes 48
--eval-seed 3737[,SEED...]] [--blank-seeds SEEDS|none] [--seeds 0,1] [--mode positive] [--max-steps 800] [--lr 1e-3]
[--aux-weight 0 --aux-position image] [--label-balance none|hazard|risk] [--label-first-steps 0]
[--expert-frames 4 --expert-stride 1] [--prompt-state none|ego|agents [--prompt-agents 4]]
[--label-source text|head [--label-head-read tower|tower_mean] [--no-text | --text-blank]]
[--ceiling [--no-probe] | --ceiling-only] [--merge OUT.json ...]
[--out result.json] [--threads 1] [--cache-dir outputs/sft_cache]``

``--env world_v2``: the training and held-out splits are the ``env=world_v2`` preset's (outcome-varied bank on the
road families, held-out scenes on every family, ``hazard_dense`` decisions, the VLA agent's observation), built by
the pipeline's own builder (:func:`world_v2_sources`); ``--eval-seed A,B,...`` scores every run on each held-out seed
(each with its own majority / probe rows under ``--ceiling``) and prints the mean over run seeds and its lead over the
majority; ``--blank-seeds`` limits the blank-BEV pass to some of them. Mined anchor pairs are cached in
``--cache-dir`` (:func:`mined_pairs`). Measured on world v2 (SYNTHETIC; 120 training scenes of seed 0, 48 held-out
scenes per seed, 250 steps; full table and commands in ``docs/vla.md``, "World v2: SFT levers on a tuning seed and two
new held-out seeds"): the preset's SFT, 3 run seeds, language / risk 37.4 / 47.1 on seed 9191 and 35.4 / 41.0 on 9393
against the majority's 64.9 / 43.0 and 62.5 / 40.7; ``--prompt-state agents`` (chosen on tuning seed 4242 over the
image aux head and ``--label-balance risk``) 44.4 / 46.4 and 45.6 / 38.9: closer to the majority, not above it.

``--label-source head`` on world v2 (SYNTHETIC; the label head on the flattened tower features, chosen on tuning
seed 4242 over ``tower_mean``; 3 run seeds; docs/vla.md, "The label from a classifier"): language / risk on every
row 61.6 / 52.9 on held-out seed 6161 and 60.4 / 52.9 on 6363 against the majority's 57.9 / 43.9 and 55.8 / 45.0
(paired leads +3.6 / +9.1 and +4.6 / +7.8 points, bootstrap intervals including 0), with a blank BEV 43.8 / 32.7 and
44.9 / 35.1 (the no-hazard sentence on every row: 15-20 points lower, it reads its image). ``--merge`` joins the
``--out`` files of one lever run as one process per run seed.

One lever setting per call, trained once per ``--seeds`` entry (model initialisation and data order) with the
project's SFT (:func:`agents.sft.trainer.train_sft`, default :class:`agents.vla.model.VLAConfig` model, codebook
fitted on the training split's expert logs + positives) on the SFT sample rows of a training bank split
(:func:`benchmarks.bench_readability.split_table`: safe expert decisions + the default miner's anchor pairs), then
scored with the project's evaluation (:func:`agents.vla.evaluate.language_accuracy`: greedy text parsed and compared
field by field) on the rows of a held-out bank seed, once with the real BEV and once with a blank (all-zero) BEV.
``language`` = mean of the five fields, ``risk`` = risk level, both on all rows (pairs + safe expert decisions;
the figures measured below predate this and score ``language`` on the pair rows only). The held-out rows are always
rendered with the default :class:`agents.sft.data.SampleConfig` (``--expert-frames`` changes the training rows only),
so every lever is scored on the same rows.

``--label-source head``: the policy states its label with the label head (:mod:`agents.vla.label_head`, fitted by
the SFT before the decoder's steps on the tower's patch features, ``--label-head-read``) and the template; each run is
scored twice, as the head policy (``seed N head``) and as the text policy of the same run (``seed N text``: the same
decoder writing the label itself; the head's fit does not change the decoder's training), the blank-BEV pass on the
head policy (and on the text policy with ``--text-blank``). The head's label does not depend on the decoder's steps
(its text is the template's), so a read-out can be compared with few ``--max-steps``.

Levers: ``--aux-weight W`` (auxiliary per-field label loss on the decoder's image tokens,
:mod:`agents.sft.label_head`), ``--expert-frames N`` (more safe expert decisions per scene in training; stride
``--expert-stride`` [s]), ``--max-steps`` / ``--lr``, ``--prompt-state`` (the ego's and the nearest visible agents'
motion as numbers in the prompt, :mod:`envs.prompt_state`: training **and** held-out rows are rendered with it and
the tokenizer's corpus holds such prompts; same rows and labels, other prompts). ``--ceiling`` adds the majority answer
(:func:`agents.vla.evaluate.trivial_baselines`) and the logistic probe on the VLA's frozen tower
(:func:`benchmarks.bench_readability.fit_probe`) on the same held-out rows.

Measured (SYNTHETIC scenario bank; train 120 scenes seed 0, held out 48 scenes seed 3737, run seeds 0 and 1, shared
2-core CPU machine under heavy load; full table and commands in ``docs/vla.md``, section "Decoder: does the VLA
read its image"), language / risk in %: majority 60.0 / 50.0, tower probe (ceiling) 76.8 / 63.9; baseline (250
steps) 55.2 / 45.6 and 34.1 / 39.2, with a blank BEV 55.2 / 45.6 and 58.4 / 50.0 (it does not read its image
usefully); ``--aux-weight 1 --aux-position prompt`` 38.1 / 44.3 and 37.6 / 43.0, blank 11.4 / 37.3 and 19.7 / 36.1
(it reads its image, still under the majority); 500 steps 52.5 / 45.6 and 47.6 / 39.2; 500 steps with the prompt
aux 49.3 / 46.2 and 47.9 / 47.5 (blank 21.1 / 39.2 and 30.4 / 43.7). No lever reaches the majority; none is a
default. With ``--prompt-state agents`` (2 seeds, 250 steps): language 49.0 / 49.2, risk 57.6 / 55.7 against 60.0 /
54.1 and 50.6 / 46.8 without (``--prompt-state none``, same code), blank BEV equal to the real one: the decoder
reads the agents' numbers for the risk level (``docs/vla.md``, "Agents' speeds in the prompt").
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # one core per process, set before numpy / torch load their thread pools
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Mapping, Sequence  # noqa: E402

import numpy as np  # noqa: E402

from agents.sft.data import LABEL_COLUMNS  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_decoder", description=__doc__.split("\n\n")[0])
    p.add_argument("--train-scenes", type=int, default=120, help="bank scenes of the training split")
    p.add_argument("--train-seed", type=int, default=0, help="bank seed of the training split")
    p.add_argument("--eval-scenes", type=int, default=48, help="bank scenes of the held-out split")
    p.add_argument("--eval-seed", default="3737",
                   help="held-out bank seed(s), comma-separated (never trained on): each run is scored on each")
    p.add_argument("--env", choices=ENVS, default="bank",
                   help="the banks: 'bank' (the default bank, 'even' decisions) or 'world_v2' (the env=world_v2 "
                        "preset's training and held-out sources and decision rule, built by the preset's builder)")
    p.add_argument("--seeds", default="0", help="run seeds, comma-separated (model initialisation, data order)")
    p.add_argument("--mode", choices=("positive", "negative"), default="positive", help="SFT training view")
    p.add_argument("--max-steps", type=int, default=800, help="optimizer steps")
    p.add_argument("--batch-size", type=int, default=16, help="examples per step")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    p.add_argument("--aux-weight", type=float, default=0.0, help="auxiliary per-field label loss weight (0: off)")
    p.add_argument("--aux-position", choices=("image", "prompt"), default="image",
                   help="what the auxiliary head reads (agents.sft.label_head)")
    p.add_argument("--label-balance", default="none", help="class balance of the training examples "
                   "(agents.sft.balance: none, hazard, risk)")
    p.add_argument("--label-first-steps", type=int, default=0, help="label-first curriculum steps (0: off)")
    p.add_argument("--expert-frames", type=int, default=4, help="safe expert decisions per training scene")
    p.add_argument("--expert-stride", type=float, default=1.0, help="time between candidate expert frames [s]")
    p.add_argument("--codebook-scenes", type=int, default=None,
                   help="bank scenes (training seed) for the codebook (default: 120; --env world_v2: the VLA agent's 100)")
    p.add_argument("--prompt-state", choices=("none", "ego", "agents"), default="none",
                   help="state block in the prompts of the training and held-out rows (envs.prompt_state)")
    p.add_argument("--prompt-agents", type=int, default=4, help="agents stated with --prompt-state agents")
    p.add_argument("--label-source", choices=("text", "head"), default="text",
                   help="'head': the label head states the label (VLAConfig.label_source); each run is scored as the "
                        "head policy and as the text policy of the same run")
    p.add_argument("--label-head-read", choices=("tower", "tower_mean"), default="tower",
                   help="what the label head reads (SFTConfig.label_head_read)")
    p.add_argument("--no-text", action="store_true",
                   help="with --label-source head: score the head policy only (not the same run's text policy)")
    p.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                   help="no run: merge these --out files of one lever (e.g. one process per run seed; their ceiling "
                        "rows joined per held-out seed) and print / --out the summary and paired differences")
    p.add_argument("--text-runs", nargs="+", default=None, metavar="JSON",
                   help="with --merge of head runs: --out files of text-label runs (--label-source text) on the same "
                        "held-out seeds; each head run gets the text run of its run seed as its text policy "
                        "(paired on the same rows)")
    p.add_argument("--no-probe", action="store_true", help="with --ceiling: the majority row only (no tower probe)")
    p.add_argument("--text-blank", action="store_true",
                   help="with --label-source head: the blank-BEV pass for the text policy too")
    p.add_argument("--blank-seeds", default=None,
                   help="held-out seeds that also get the blank-BEV pass, comma-separated (default: every --eval-seed; "
                        "'none': no blank pass)")
    p.add_argument("--ceiling-only", action="store_true", help="score the majority and the probe only (no SFT run)")
    p.add_argument("--ceiling", action="store_true", help="also score the majority answer and the tower probe")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--cache-dir", default="outputs/sft_cache", help="rendered samples and codebooks")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    return p


ENVS = ("bank", "world_v2")
"""``--env`` choices: the default bank, or the ``env=world_v2`` preset (:data:`experiments.config.WORLD_V2`)."""


def _seeds(text: str, option: str = "--seeds") -> list[int]:
    try:
        seeds = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"{option}: expected comma-separated ints, got {text!r}") from None
    if not seeds:
        raise SystemExit(f"{option}: expected at least one seed, got {text!r}")
    return seeds


def world_v2_sources(train_scenes: int, train_seed: int, eval_scenes: int, eval_seed: int) -> tuple[Any, Any, Any]:
    """``(train source, held-out source, SampleConfig)`` of the ``env=world_v2`` preset with these sizes and seeds:
    the preset's :class:`experiments.config.SourceConfig` (:data:`experiments.config.WORLD_V2`: outcome-varied
    typologies, training road families without ``curve``, held-out scenes on every family) built by the pipeline's
    own builder (:func:`experiments.builders.sources`), and the pipeline's SFT sample settings for it (the preset's
    ``frame_sampling`` = ``hazard_dense``, ``train.expert_frames`` = 4, the VLA agent's observation,
    :func:`experiments.agents._vla_env_config`) -- nothing of the preset is restated here."""
    from agents.sft.data import SampleConfig
    from envs.sim.reward import RewardConfig
    from experiments.agents import VLAAgentConfig
    from experiments.builders import sources
    from experiments.config import WORLD_V2, TrainConfig
    from experiments.pipeline import Context
    from experiments.registry import get_agent

    if eval_seed == train_seed:
        raise SystemExit(f"--eval-seed: {eval_seed} is the training seed (--train-seed); a held-out seed must differ")
    env = dataclasses.replace(WORLD_V2, num_scenes=train_scenes, seed=train_seed, eval_num_scenes=eval_scenes,
                              eval_seed=eval_seed)
    with tempfile.TemporaryDirectory(prefix="bench_decoder_ctx_") as tmp:
        train, held, _ = sources(Context(out=Path(tmp), cfg=argparse.Namespace(env=env)))
    observation = get_agent("vla").env_config(VLAAgentConfig(), RewardConfig()).observation
    samples = SampleConfig(expert_frames_per_scene=TrainConfig().expert_frames, frame_sampling=env.frame_sampling,
                           observation=observation)
    return train, held, samples


def mined_pairs(source: Any, cache_dir: str) -> list:
    """The default miner's anchor pairs of ``source`` (:func:`agents.vla.evaluate.heldout_pairs`), cached in
    ``cache_dir`` as ``pairs-<hash of the source description>.parquet`` so that every lever's call reuses them (the
    description names every bank option; clear the folder after changing the miner)."""
    import hashlib

    from agents.vla.evaluate import heldout_pairs
    from counterfactual.dataset import load_anchor_pairs, write_anchor_pairs

    path = Path(cache_dir) / f"pairs-{hashlib.sha1(str(source.description).encode()).hexdigest()[:16]}.parquet"
    if path.is_file():
        return load_anchor_pairs(path)
    pairs = heldout_pairs(source, None, progress=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_anchor_pairs(pairs, path)
    return pairs


def tables(args: argparse.Namespace) -> tuple[Any, dict[int, Any], list]:
    """``(training rows, {held-out seed: held-out rows}, training pairs)``: rendered sample tables (cached in
    ``--cache-dir``). ``--env bank``: the default bank and sample settings; ``--env world_v2``: the preset's sources
    and sample settings (:func:`world_v2_sources`). Held-out rows always use the default expert frames and stride
    (only the training rows take ``--expert-frames`` / ``--expert-stride``); both take ``--prompt-state``."""
    from agents.sft.data import SampleConfig, load_or_build_samples
    from benchmarks.bench_readability import split_table
    from envs.scenes.sources import open_source

    eval_seeds = _seeds(args.eval_seed, "--eval-seed")
    state = {"prompt_state": args.prompt_state, "prompt_agents": args.prompt_agents}
    held: dict[int, Any] = {}
    if args.env == "world_v2":
        for seed in eval_seeds:
            train_source, held_source, base = world_v2_sources(args.train_scenes, args.train_seed, args.eval_scenes,
                                                               seed)
            base = dataclasses.replace(base, observation=dataclasses.replace(base.observation, **state))
            held[seed] = load_or_build_samples(held_source, mined_pairs(held_source, args.cache_dir),
                                               args.cache_dir, base, progress=False)
    else:
        train_source = open_source("bank", num_scenes=args.train_scenes, seed=args.train_seed)
        base = SampleConfig(observation=dataclasses.replace(SampleConfig().observation, **state))
        held = {seed: split_table(args.eval_scenes, seed, args.cache_dir, **state) for seed in eval_seeds}
    pairs = mined_pairs(train_source, args.cache_dir)
    samples = dataclasses.replace(base, expert_frames_per_scene=args.expert_frames, expert_stride_s=args.expert_stride)
    train = load_or_build_samples(train_source, pairs, args.cache_dir, samples, progress=False)
    return train, held, pairs


def _summary(report: Any) -> dict[str, Any]:
    return {"language": report.language_accuracy, "risk": report.risk_accuracy, "fields": dict(report.fields),
            "risk_experts": report.risk_accuracy_experts, "per_row": report.per_row}


PAIRED = (("head - text", "text", "head"), ("head - majority", "majority", "head"),
          ("head - head blank BEV", "head blank", "head"), ("text - majority", "majority", "text"))
"""``--label-source head`` comparisons: (name, a, b) of the paired differences ``b - a`` per held-out seed."""


def paired_differences(out: Mapping[str, Any], resamples: int = 10000) -> dict[str, dict[str, Any]]:
    """Per held-out seed and comparison of :data:`PAIRED`, the paired difference of language and of risk accuracy
    over the run seeds with its bootstrap 95% interval (:func:`experiments.compare.paired_bootstrap`,
    hierarchical: run seeds then held-out scenes, the decisions of a drawn scene together), from the runs' per-row
    hits; fractions."""
    from experiments.compare import _sums, paired_bootstrap

    def sums(per_row: Sequence[Mapping[str, Any]], column: str) -> dict:
        return _sums([{**r, "unit": "decision"} for r in per_row], column)

    result: dict[str, dict[str, Any]] = {}
    runs = [r for r in out["runs"] if r.get("label_source") == "head"]
    for seed in (runs[0]["eval"] if runs else {}):
        rows: dict[str, list] = {"head": [r["eval"][seed]["real"]["per_row"] for r in runs]}
        if all("text_eval" in r for r in runs):
            rows["text"] = [r["text_eval"][seed]["real"]["per_row"] for r in runs]
        if all(r["eval"][seed]["blank"] is not None for r in runs):
            rows["head blank"] = [r["eval"][seed]["blank"]["per_row"] for r in runs]
        major = out["ceiling"].get(seed, {}).get("majority")
        if major is not None:
            rows["majority"] = [major["per_row"]] * len(runs)
        result[seed] = {}
        for name, a, b in PAIRED:
            if a in rows and b in rows:
                result[seed][name] = {
                    metric: paired_bootstrap([sums(x, column) for x in rows[a]], [sums(x, column) for x in rows[b]],
                                             resamples=resamples)
                    for metric, column in (("language", "language_accuracy"), ("risk", "risk_accuracy"))}
    return result


def train_and_score(args: argparse.Namespace, seed: int, train: Any, held: Mapping[int, Any], pairs: Sequence[Any]
                    ) -> dict[str, Any]:
    """One SFT run of the lever setting; its label accuracy on each held-out seed's rows (``eval``: ``{seed:
    {"real": ..., "blank": ...}}``) with the real and with a blank BEV."""
    from agents.sft.data import SFTDataset
    from agents.sft.train import codebook_for
    from agents.sft.trainer import SFTConfig, train_sft
    from agents.vla.evaluate import language_accuracy
    from agents.vla.model import VLAConfig
    from agents.vla.policy import VLAPolicy
    from agents.vla.tokenizer import TokenizerConfig

    codebook = codebook_for(pairs, args.cache_dir, scenes=codebook_scenes(args), scene_seed=args.train_seed,
                            progress=False)
    label_source = getattr(args, "label_source", "text")
    policy = VLAPolicy.build(codebook, VLAConfig(seed=seed, label_source=label_source), TokenizerConfig(
        prompt_state=args.prompt_state, prompt_agents=args.prompt_agents), name=f"sft seed {seed}")
    config = SFTConfig(max_steps=args.max_steps, batch_size=args.batch_size, learning_rate=args.lr, seed=seed,
                       progress=False, tensorboard=False, save_steps=args.max_steps,
                       aux_label_weight=args.aux_weight, aux_label_position=args.aux_position,
                       label_balance=args.label_balance, label_first_steps=args.label_first_steps,
                       label_head_read=getattr(args, "label_head_read", "tower"))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_decoder_") as tmp:
        result = train_sft(policy, SFTDataset(train, args.mode), tmp, config)
        head_record = json.loads((Path(tmp) / "sft_result.json").read_text()).get("label_head")
    seconds = time.perf_counter() - t0
    blank = blank_seeds(args)

    def score(with_blank: bool) -> dict[str, Any]:
        return {str(s): {"real": _summary(language_accuracy(policy, rows)[0]),
                         "blank": (_summary(language_accuracy(policy, rows, blank_bev=True)[0])
                                   if s in blank and with_blank else None)}
                for s, rows in held.items()}

    t1 = time.perf_counter()
    scores = score(True)
    out = {"seed": seed, "train_seconds": seconds, "examples": len(SFTDataset(train, args.mode)),
           "final_loss": result.losses[-1][1], "eval": scores, "label_source": label_source,
           "score_seconds": time.perf_counter() - t1}
    if label_source == "head":
        out["label_head"] = head_record
    if label_source == "head" and not getattr(args, "no_text", False):
        policy.label_source = "text"  # the same run's decoder writing the label itself
        out["text_eval"] = score(bool(getattr(args, "text_blank", False)))
    return out


def blank_seeds(args: argparse.Namespace) -> set[int]:
    """The held-out seeds scored with a blank BEV too (``--blank-seeds``; default: every ``--eval-seed``)."""
    if args.blank_seeds is None:
        return set(_seeds(args.eval_seed, "--eval-seed"))
    if str(args.blank_seeds).strip().lower() == "none":
        return set()
    return set(_seeds(args.blank_seeds, "--blank-seeds"))


def codebook_scenes(args: argparse.Namespace) -> int:
    """``--codebook-scenes``, else the pipeline's VLA agent default with ``--env world_v2`` (100), else 120."""
    if args.codebook_scenes is not None:
        return int(args.codebook_scenes)
    if args.env == "world_v2":
        from experiments.agents import VLAAgentConfig

        return int(VLAAgentConfig().codebook_scenes)
    return 120


def summarize(runs: Sequence[Mapping[str, Any]], ceilings: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Per held-out seed, the mean over run seeds of language / risk (real and blank BEV), their lead over the majority
    (with ``ceilings``) and the selection score ``lead`` = mean of the language lead and the risk lead [fraction]."""
    out: dict[str, Any] = {}
    for seed in (runs[0]["eval"] if runs else {}):
        row: dict[str, Any] = {}
        for view in ("real", "blank"):
            for metric in ("language", "risk"):
                values = [r["eval"][seed][view][metric] for r in runs if r["eval"][seed][view] is not None]
                row[f"{view}_{metric}"] = float(np.nanmean(values)) if values else math.nan
        major = ceilings.get(seed, {}).get("majority")
        if major is not None:
            row["language_lead"] = row["real_language"] - major["language"]
            row["risk_lead"] = row["real_risk"] - major["risk"]
            row["lead"] = (row["language_lead"] + row["risk_lead"]) / 2
        out[seed] = row
    return out


def ceiling(train: Any, held: Mapping[int, Any], probe: bool = True) -> dict[str, dict[str, dict[str, Any]]]:
    """Per held-out seed, the majority answer and the logistic probe on the VLA's frozen random tower (the training
    rows' tower features computed once; the probe, deterministic, refitted on them per seed), on that seed's rows;
    ``probe=False``: the majority only."""
    from agents.vla.evaluate import _rows, accuracy_report, trivial_baselines
    from benchmarks.bench_readability import Labels, fit_probe, images, label_rows, tower_features

    train_rows = label_rows(train)
    labels = Labels.fit(train_rows)
    features = tower_features(images(train)) if probe else None
    out: dict[str, dict[str, Any]] = {}
    for seed, rows in held.items():
        majority = trivial_baselines(_rows(train), _rows(rows))[0]
        if not probe:
            out[str(seed)] = {"majority": _summary(majority)}
            continue
        predicted, _ = fit_probe(features, labels, [r["scene_id"] for r in train_rows], tower_features(images(rows)))
        probe = accuracy_report("probe", labels.decode(predicted), label_rows(rows))
        out[str(seed)] = {"majority": _summary(majority), "probe": _summary(probe)}
    return out


def _pct(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def _row(name: str, real: Mapping[str, Any], blank: Mapping[str, Any] | None = None, tail: str = "") -> str:
    b = blank or {"language": None, "risk": None}
    return (f"{name:<22} {_pct(real['language']):>8} {_pct(real['risk']):>6} {_pct(b['language']):>10} "
            f"{_pct(b['risk']):>10} " + " ".join(f"{_pct(real['fields'][f]):>10}" for f in LABEL_COLUMNS) + tail)


def report(out: dict[str, Any], head: bool) -> None:
    """Add the summaries (and with ``head``, the paired differences) to ``out`` and print its tables."""
    out["summary"] = summarize(out["runs"], out["ceiling"])
    head = bool(head and out["runs"])
    if head:
        if all("text_eval" in r for r in out["runs"]):
            out["summary_text"] = summarize([{**r, "eval": r["text_eval"]} for r in out["runs"]], out["ceiling"])
        out["paired"] = paired_differences(out)
    for s in (out["runs"][0]["eval"] if out["runs"] else out["ceiling"]):
        print(f"held-out seed {s} (language and risk: all rows, pairs + expert decisions)\n{'row':<22} "
              f"{'language':>8} {'risk':>6} {'blank lang':>10} {'blank risk':>10} "
              + " ".join(f"{f[:10]:>10}" for f in LABEL_COLUMNS))
        for name, c in out["ceiling"].get(str(s), {}).items():
            print(_row(name, c))
        for run in out["runs"]:
            e = run["eval"][str(s)]
            print(_row(f"seed {run['seed']}" + (" head" if head else ""), e["real"], e["blank"],
                       f"   ({run['train_seconds']:.0f} s, loss {run['final_loss']:.3f})"))
            if head and "text_eval" in run:
                t = run["text_eval"][str(s)]
                print(_row(f"seed {run['seed']} text", t["real"], t["blank"]))
        for key, label in (("summary", "head policy" if head else ""), ("summary_text", "text policy")):
            m = out.get(key, {}).get(str(s))
            if m is None:
                continue
            lead = (f"; lead over the majority: language {100 * m['language_lead']:+.1f}, risk "
                    f"{100 * m['risk_lead']:+.1f}, mean {100 * m['lead']:+.1f}") if "lead" in m else ""
            print(f"mean over run seeds{' (' + label + ')' if label else ''}: language {_pct(m['real_language'])} "
                  f"risk {_pct(m['real_risk'])} (blank BEV {_pct(m['blank_language'])} / {_pct(m['blank_risk'])})"
                  f"{lead}", flush=True)
        for name, diff in out.get("paired", {}).get(str(s), {}).items():
            print(f"paired {name}: " + ", ".join(
                f"{metric} {100 * d['diff']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"
                for metric, d in diff.items()) + " (points, bootstrap 95%: run seeds, then scenes)", flush=True)


def merge(paths: Sequence[str], text_paths: Sequence[str] = ()) -> dict[str, Any]:
    """One result of several ``--out`` files of the same lever (e.g. one process per run seed): their runs in order,
    the ceiling rows of every file per held-out seed (``SystemExit`` when two files' majority rows differ: other
    splits). ``text_paths``: text-label runs whose ``eval`` becomes the ``text_eval`` of the head run with the same
    run seed (``SystemExit`` when a head run has none)."""
    outs = [json.loads(Path(p).read_text()) for p in paths]
    merged: dict[str, Any] = {"args": outs[0]["args"], "runs": [], "ceiling": {}, "merged": list(paths)}
    for path, o in zip(paths, outs):
        merged["runs"] += o["runs"]
        for seed, rows in o["ceiling"].items():
            have = merged["ceiling"].setdefault(seed, {})
            if "majority" in have and "majority" in rows \
                    and have["majority"]["language"] != rows["majority"]["language"]:
                raise SystemExit(f"--merge: {path} has another majority row on held-out seed {seed} (other splits)")
            have.update(rows)
    if text_paths:
        text_runs = {r["seed"]: r for p in text_paths for r in json.loads(Path(p).read_text())["runs"]}
        for run in merged["runs"]:
            if run["seed"] not in text_runs:
                raise SystemExit(f"--text-runs: no text run of run seed {run['seed']} in {list(text_paths)}")
            run["text_eval"] = text_runs[run["seed"]]["eval"]
            run["text_steps"] = json.loads(Path(text_paths[0]).read_text())["args"]["max_steps"]
    return merged


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit code."""
    import torch

    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    if args.merge:
        out = merge(args.merge, args.text_runs or ())
        report(out, out["args"].get("label_source") == "head")
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(out, indent=2, default=float))
        return 0
    train, held, pairs = tables(args)
    kinds = list(train["kind"])
    rows = ", ".join(f"seed {s}: {list(t['kind']).count('pair')} pair + {list(t['kind']).count('expert')} expert"
                     for s, t in held.items())
    print(f"{'world v2 (env=world_v2 preset)' if args.env == 'world_v2' else 'default'} SYNTHETIC bank; train "
          f"{args.train_scenes} scenes seed {args.train_seed} ({kinds.count('pair')} pair + {kinds.count('expert')} "
          f"expert rows, {args.mode} view), held out {args.eval_scenes} scenes per seed ({rows} rows); lever: steps "
          f"{args.max_steps} lr {args.lr:g} aux {args.aux_weight:g} ({args.aux_position}) balance "
          f"{args.label_balance} label-first {args.label_first_steps} expert frames {args.expert_frames} (stride "
          f"{args.expert_stride:g} s) prompt state {args.prompt_state}", flush=True)
    out: dict[str, Any] = {"args": vars(args), "runs": [], "ceiling": {}}
    if args.ceiling or args.ceiling_only:
        out["ceiling"] = ceiling(train, held, probe=not args.no_probe)
    for seed in ([] if args.ceiling_only else _seeds(args.seeds)):
        out["runs"].append(train_and_score(args, seed, train, held, pairs))
    report(out, args.label_source == "head")
    print(f"total {time.perf_counter() - t0:.0f} s")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

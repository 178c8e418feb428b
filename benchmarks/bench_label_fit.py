"""Which risk levels does a trained SFT policy state, on the rows it was trained on and on held-out rows? (issue #29)

``python -m benchmarks.bench_label_fit RUN [--views positive,negative] [--rows 80] [--threads 1]``

``RUN`` is a pipeline run folder (``python -m experiments.run ... out_dir=RUN``) with its SFT policies
(``RUN/sft/<view>/final``) and rendered sample tables (``RUN/sft/cache/samples-*``: the training split's and the
held-out split's). For each view and table, the policy's greedy label text
(:func:`agents.vla.evaluate.generate_texts`) on every ``len // min(len, rows)``-th row, parsed with
:func:`counterfactual.language.parse_explanation`: the count of each stated risk level against the rows' truth, and
the risk accuracy. A policy that states ``none`` on every **training** row has not learned to condition its label on
the image at all (underfitting), which class balance of the loss cannot fix by itself; one that fits the training
rows and not the held-out ones generalises badly.

Measured on ``env=world_v2`` seed 0 (SYNTHETIC; docs/vla.md, "Class-balanced SFT"): every 2nd of the 210 training rows,
truth none 56 / high 32 / medium 16 / low 1. The plain SFT policies (both views), ``label_balance=hazard`` and
``hazard`` + ``label_first_steps=100`` state ``none`` on 105 of 105; ``risk`` balance states low / medium / high on
every row (positive view: low 55, medium 45, high 5; accuracy 10.5%); the prompt aux loss states a hazard on 5-10
rows (with ``hazard`` balance 1-4). At 800 steps (negative view) the policy fits them (46 hazards stated, risk
accuracy 89.5% without balance, 88.6% with ``hazard`` + aux) and reaches 52.6 / 56.1% on the 57 held-out rows
(majority 56.1): it memorises. Shared 2-core machine under load from other engineers' jobs (not a timing).
"""

from __future__ import annotations

import argparse
import glob
from collections import Counter
from pathlib import Path
from typing import Sequence


def stated_levels(policy, table, rows: int) -> tuple[Counter, Counter, float]:
    """``(stated, truth, accuracy)``: the risk levels the policy states on every ``len // min(len, rows)``-th row of
    ``table``, their true levels, and the share stated right."""
    from agents.vla.evaluate import generate_texts
    from counterfactual.language import parse_explanation

    table = table.select(range(0, len(table), max(1, len(table) // min(len(table), rows))))
    stated = [parse_explanation(text).get("risk_level") for text in generate_texts(policy, table, 16, False)]
    truth = [str(r) for r in table["risk_level"]]
    return Counter(stated), Counter(truth), sum(s == t for s, t in zip(stated, truth)) / len(truth)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_label_fit", description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="pipeline run folder with sft/<view>/final and sft/cache")
    p.add_argument("--views", default="positive,negative", help="SFT views to load (comma-separated)")
    p.add_argument("--rows", type=int, default=80, help="about this many rows per table (every len // rows-th)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args(argv)
    import torch
    from datasets import load_from_disk

    from agents.vla.policy import VLAPolicy

    torch.set_num_threads(args.threads)
    run = Path(args.run)
    tables = sorted(glob.glob(str(run / "sft" / "cache" / "samples-*")))
    if not tables:
        raise SystemExit(f"{run}/sft/cache: no rendered sample table (samples-*)")
    for view in args.views.split(","):
        folder = run / "sft" / view / "final"
        if not folder.is_dir():
            raise SystemExit(f"{folder}: no SFT policy of view {view!r}")
        policy = VLAPolicy.from_pretrained(folder, name=view)
        for path in tables:
            table = load_from_disk(path)
            stated, truth, acc = stated_levels(policy, table, args.rows)
            print(f"{view:9s} {Path(path).name} ({len(table)} rows): stated {dict(stated)} truth {dict(truth)} "
                  f"risk acc {100 * acc:.1f}%", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

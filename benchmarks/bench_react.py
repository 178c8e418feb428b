"""What the reacting expert (``ScenarioBank(..., outcomes="varied", expert="reacting")``) does to the decision labels,
beside the logged expert (SYNTHETIC banks; issue #28).

``python -m benchmarks.bench_react [--what fields,actions,safe,replay] [--roads families]``

* ``fields``: the sampled decisions alone (``hazard_dense`` frames, ``frame_label``; no pairs) of ``--fields-scenes``
  scenes of seed ``--seed``, the (type, lead) lookup fitted on ``--fit-seed``'s: its accuracy per label field;
* ``actions``: the hazard decisions' actions of the first ``--scenes`` scenes of ``--seed`` (braking / yielding or
  ``keep_lane``), by outcome;
* ``safe``: of the near-miss scenes' hazard-window candidate frames (every 0.2 s), how many are safe as executed
  (the PDM scorer's verdict on the tracked logged 4 s future, :func:`counterfactual.frame_labels.safe_log_frames`'
  rule) and why the others are not (contact, TTC, DAC);
* ``replay``: the closed-loop replay of the logged trajectory (``ReplayEnv``, ``logged_action()`` every 0.5 s from
  frames 20 and 35) of the near-miss / benign scenes of ``--replay-scenes`` scenes of seed ``--replay-seed``: how the
  episodes end.

Measured (2026-12-07, the shared 2-core machine, load 20-26 from other engineers' jobs; the numbers are counts, not
timings), ``python -m benchmarks.bench_react`` (classic roads, defaults): see ``docs/safety_labels.md``
(``#a-reacting-expert-issue-28-expertreacting``). Prints numbers only.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any


def bank(num: int, seed: int, expert: str, roads: str) -> Any:
    from envs.scenes.bank import ScenarioBank

    kw: dict[str, Any] = {"outcomes": "varied"}
    if expert != "logged":
        kw["expert"] = expert
    if roads == "families":
        kw["roads"] = "families"
    return ScenarioBank(num, seed=seed, **kw)


def fields(args: argparse.Namespace, expert: str) -> str:
    from counterfactual.accuracy import LabelBaseline, label_accuracy
    from counterfactual.frame_labels import sample_frames
    from counterfactual.honesty import decision_records, record_fields

    def records(seed: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for s in bank(args.fields_scenes, seed, expert, args.roads):
            out += decision_records(s, sample_frames(s, sampling="hazard_dense"), seed=seed, oracle=False)
        return out

    train, ev = records(args.fit_seed), records(args.seed)
    truth = [record_fields(r) for r in ev]
    acc = label_accuracy(LabelBaseline("type_lead_lookup").fit(train).predict(ev), truth)
    none = sum(f["risk_level"] == "none" for f in truth)
    shown = ", ".join(f"{k} {100 * acc[k]:.1f}%" for k in
                      ("risk_agent_class", "sector", "risk_level", "conflict_type", "action", "language"))
    return f"{len(ev)} decisions ({none} no hazard); lookup accuracy: {shown}"


def actions(args: argparse.Namespace, expert: str) -> str:
    from counterfactual.frame_labels import frame_label, sample_frames

    count: Counter = Counter()
    for s in bank(args.scenes, args.seed, expert, args.roads):
        if s.meta.scenario_type == "normal":
            continue
        for t in sample_frames(s, sampling="hazard_dense"):
            f = frame_label(s, t).fields()
            if f["risk_level"] not in (None, "none"):
                count[(s.meta.extra["outcome"], "keep_lane" if f["action"] == "keep_lane" else "reacts")] += 1
    reacts = sum(n for (_, a), n in count.items() if a == "reacts")
    return (f"hazard decisions {sum(count.values())}, braking / yielding {reacts}; by outcome: "
            + ", ".join(f"{o} {a} {n}" for (o, a), n in sorted(count.items())))


def safe(args: argparse.Namespace, expert: str) -> str:
    from counterfactual.frame_labels import dense_window
    from envs.sim.scoring import problem_from_scene, trajectory_from_log
    from rewards.config import PDMConfig
    from rewards.pdm import score_states
    from rewards.tracking import simulate_candidates

    pdm = PDMConfig()
    why: Counter = Counter()
    for s in bank(args.scenes, args.seed, expert, args.roads):
        if s.meta.scenario_type == "normal" or s.meta.extra["outcome"] != "near_miss":
            continue
        first, last = dense_window(s)
        for t in range(max(20, first), min(s.num_frames - 40, last + 1), 2):
            problem = problem_from_scene(s, t, pdm)
            res = score_states(problem, simulate_candidates(problem.ego, trajectory_from_log(s, t, pdm)[None], pdm), pdm)
            why["contact" if res.collision[0] else "nc" if res.nc[0] < 1 else "ttc" if res.ttc[0] < 1
                else "dac" if s.map is not None and res.dac[0] < 1 else "safe"] += 1
    return f"near-miss window frames {sum(why.values())}: " + ", ".join(f"{k} {n}" for k, n in sorted(why.items()))


def replay(args: argparse.Namespace, expert: str) -> str:
    from envs.render import BEVConfig
    from envs.replay_env import EnvConfig, ReplayEnv

    scenes = [s for s in bank(args.replay_scenes, args.replay_seed, expert, args.roads)
              if s.meta.scenario_type != "normal" and s.meta.extra["outcome"] != "collision"]
    env = ReplayEnv(scenes, "closed_loop", EnvConfig(bev=BEVConfig(height=48, width=48, meters_per_pixel=1.0)))
    ends: Counter = Counter()
    for i, s in enumerate(scenes):
        for t0 in (20, 35):
            env.reset(options={"scene_index": i, "t": t0})
            done, info = False, {}
            while not done:
                _, _, terminated, truncated, info = env.step(env.logged_action())
                done = terminated or truncated
            ends[(s.meta.extra["outcome"], info.get("termination_reason"))] += 1
    return f"{len(scenes)} scenes x 2 starts: " + ", ".join(f"{o} {r} {n}" for (o, r), n in sorted(ends.items()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_react", description=__doc__.split("\n\n")[0])
    parser.add_argument("--what", default="fields,actions,safe,replay")
    parser.add_argument("--roads", choices=("classic", "families"), default="classic")
    parser.add_argument("--seed", type=int, default=29, help="scored bank seed (a tuning seed)")
    parser.add_argument("--fit-seed", type=int, default=37, help="bank seed the lookup is fitted on")
    parser.add_argument("--fields-scenes", type=int, default=100)
    parser.add_argument("--scenes", type=int, default=60, help="scenes of --seed for actions and safe")
    parser.add_argument("--replay-scenes", type=int, default=120)
    parser.add_argument("--replay-seed", type=int, default=41)
    args = parser.parse_args(argv)
    steps = {"fields": fields, "actions": actions, "safe": safe, "replay": replay}
    for name in args.what.split(","):
        if name not in steps:
            parser.error(f"--what: unknown step {name!r}; known: {', '.join(steps)}")
        for expert in ("logged", "reacting"):
            print(f"{name:8s} {expert:9s} {steps[name](args, expert)}", flush=True)


if __name__ == "__main__":
    main()

"""Log replay on DeepAccident-like SHORT logs, open vs closed loop (issue 17, finding 4).

Run: ``python -m benchmarks.bench_deepaccident_short_logs [--scenes 9] [--after 2.0] [--keep DIR]
[--log-end-margin S]``.

Real DeepAccident scenarios end a few seconds after the crash. This script takes SYNTHETIC bank accident scenes,
cuts each log ``--after`` seconds after its logged collision, writes them in the DeepAccident layout
(:func:`envs.scenes.deepaccident.write_scenario`), reads them back (:class:`envs.scenes.deepaccident.DeepAccidentDataset`) and
replays the log with :class:`envs.replay_env.ReplayEnv` in both modes. It prints, per scene, the collision frame,
the closed-loop truncation frame ``t_max`` and the start frame, then the collision rates. Log replay should collide
in closed loop wherever it does in open loop; while ``t_max`` falls before the collision frame it cannot.
``--log-end-margin 0.5`` (the smallest ``EnvConfig.log_end_margin``, one re-planning interval) shows what an env
that runs accident episodes to the log's end gets on the same scenes.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import warnings
from pathlib import Path

import numpy as np


def _cut(scene, stop: int):
    """``scene`` restricted to frames ``[0, stop)``; map dropped (DeepAccident has none)."""
    return dataclasses.replace(
        scene, ego_poses=scene.ego_poses[:stop], ego_velocities=scene.ego_velocities[:stop],
        agent_poses=scene.agent_poses[:, :stop], agent_velocities=scene.agent_velocities[:, :stop],
        agent_valid=scene.agent_valid[:, :stop], map=None,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenes", type=int, default=9, help="accident scenes (bank, seed 0)")
    p.add_argument("--after", type=float, default=2.0, help="log kept after the collision [s]")
    p.add_argument("--keep", default=None, help="write the folder here (default: a temp folder)")
    p.add_argument("--log-end-margin", type=float, default=None, help="EnvConfig.log_end_margin [s] (default: env's)")
    args = p.parse_args()

    from envs.scenes.bank import ACCIDENT_TYPES, ScenarioBank
    from envs.scenes.deepaccident import (
        DeepAccidentDataset,
        DeepAccidentWarning,
        write_scenario,
    )
    from envs.replay_env import EnvConfig, ReplayEnv

    root = Path(args.keep or tempfile.mkdtemp(prefix="da-short-"))
    bank = ScenarioBank(args.scenes, seed=0, scenario_types=list(ACCIDENT_TYPES))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepAccidentWarning)
        for i in range(len(bank)):
            s = bank[i]
            write_scenario(_cut(s, s.meta.collision_frame + 1 + round(args.after / s.dt)), root, split="val",
                           overwrite=True)
    scenes = DeepAccidentDataset(root, "val")
    cfg = EnvConfig(bev=None) if args.log_end_margin is None else EnvConfig(bev=None,
                                                                             log_end_margin=args.log_end_margin)
    rates = {}
    rows = []
    for mode in ("open_loop", "closed_loop"):
        env = ReplayEnv(scenes, mode=mode, config=cfg)
        hits = []
        for i in range(len(scenes)):
            try:
                env.reset(seed=i, options={"scene_index": i})
            except ValueError as exc:  # a log shorter than the env's end margin
                hits.append(False)
                rows.append((mode, scenes[i].scene_id, f"reset refused: {exc}"[:90]))
                continue
            start, collided = env.t, False
            for _ in range(200):
                _, _, term, trunc, info = env.step(env.logged_action())
                collided |= bool(info["collision"])
                if term or trunc:
                    break
            hits.append(collided)
            scene = env.scene
            t_max = env._context(scene).t_max if mode == "closed_loop" else None
            facts = (f"T={scene.num_frames} collision_frame={scene.meta.collision_frame} start={start} t_max={t_max} "
                     f"end={env.t} collided={collided}")
            rows.append((mode, scene.scene_id, facts))
        rates[mode] = float(np.mean(hits))
    for row in rows:
        print(f"{row[0]:<12} {row[1]:<72} {row[2]}")
    print(f"log replay collision rate on {len(scenes)} short accident logs ({args.after} s after the crash): "
          f"open loop {100 * rates['open_loop']:.1f}%, closed loop {100 * rates['closed_loop']:.1f}%  (folder {root})")


if __name__ == "__main__":
    main()

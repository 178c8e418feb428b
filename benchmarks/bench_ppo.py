"""Does default SB3 PPO learn to drive, or to stand still? (a benchmark: trains, prints a table, asserts nothing)

Trains SB3 PPO with default hyperparameters (``MultiInputPolicy``) for a fixed wall-clock or env-step budget on the
closed-loop replay env (state-only observation, the default reward: progress first, ``--reward-kind score`` for the
SP-PDMS score; actions normalised by :class:`envs.wrappers.NormalizedTrajectoryAction`) over SYNTHETIC bank scenes,
then evaluates it closed loop on held-out scenes (another bank seed) beside the trivial and reference policies::

    python -m benchmarks.bench_ppo --minutes 5                                        # progress first (default)
    python -m benchmarks.bench_ppo --minutes 5 --reward-kind score                    # the SP-PDMS score per step
    python -m benchmarks.bench_ppo --minutes 5 --reward-kind score --reward-score pdms  # NAVSIM's EP: stand still
    python -m benchmarks.bench_ppo --steps 42000 --prompt-state agents                # the agents in its observation
    python -m benchmarks.bench_ppo --steps 42000 --prompt-state agents --normalize-obs  # ... normalised (VecNormalize)

Budget: ``--minutes M`` (default 5) stops on the clock (the rollout in progress then is not trained on), so the env
steps PPO gets depend on the machine's load; ``--steps N`` instead trains whole rollouts up to the first multiple of
``--n-steps`` (SB3's 2048) >= N (``--steps 42000``: 43,008 env steps, 21 updates, about what 5 quiet minutes give),
so runs compare at equal env steps on a shared machine.

What PPO sees (``--prompt-state``, :attr:`envs.replay_env.EnvConfig.prompt_state`; no BEV): ``none`` (default):
``ego_state`` (speed [m/s], longitudinal acceleration [m/s^2], yaw rate [rad/s]), the route ``command`` and the ego's
past poses ``history`` (ego frame [m, m, rad]), no other agent, so it can avoid collisions only by driving slower
everywhere; ``ego`` adds the ego's body-frame velocity; ``agents`` adds the ``--prompt-agents`` K (default 4) nearest
agents visible in the default BEV's extent as a ``(K, 6)`` array (valid, class, ego-frame position [m], velocity
relative to the ego [m/s]; :mod:`envs.prompt_state`), which SB3's ``CombinedExtractor`` flattens beside the other
entries.

``--normalize-obs`` (default off): PPO trains on SB3's standard ``VecNormalize(norm_obs=True, norm_reward=False)``
(SB3's other defaults: running mean / variance per entry and element, clip at 10) over every ``Box`` entry of the
observation (``ego_state``, ``history``, ``ego_velocity``, ``agents``; ``command`` is ``Discrete`` and stays one-hot),
and the evaluation scales each observation with the statistics frozen at the end of training (``training=False``).
Chosen over a fixed scaling of the agents array because it is SB3's one standard way, scales every entry alike (the
ego state and past poses too) and needs no hand-picked ranges; the reward is not normalised, so returns compare with
the runs without it.

Measured (2026-12-07, fd640c9; ``--steps 42000 --prompt-state {none,agents}``, 43,008 env steps each, three runs in
parallel on a 2-core machine at load average 14-19, 1,036-1,238 s of training; RC / collision %, episodes ending in
collision / off road of 24): seeds ``--train-bank-seed 1000 --eval-bank-seed 2000 --rl-seed 0``: none 48.8 / 45.8
(11 / 3), agents 56.4 / 41.7 (10 / 9); ``3000 / 4000 / 1``: none 54.2 / 37.5 (9 / 0), agents 47.4 / 20.8 (5 / 10);
``5100 / 5200 / 2``: none 61.0 / 29.2 (7 / 1), agents 62.3 / 20.8 (5 / 9); stand still RC 28.2 / 28.1 / 28.7,
constant velocity collisions 29.2 / 45.8 / 45.8%. The agents lower PPO's collisions on every seed set but send it off
the road more often and lower its return; with either observation PPO beats standing still on route and constant
velocity on collisions on the last two seed sets only, so the default stays ``none`` (README, "PPO with the agents in
its observation").

Re-measured at dd35b5a (2026-12-07, after the progress reward was capped at the route completion, b6a6fe3, so the
returns above do not compare; ``--steps 42000``, 43,008 env steps each, two runs at a time on the 2-core machine beside
another engineer's CI run, 158-267 s of training; RC / collision %, episodes ending in collision / off road of 24),
seed sets as above: none 63.8 / 29.2 (7 / 2), 54.1 / 25.0 (6 / 2), 74.6 / 29.2 (7 / 1); agents 58.1 / 29.2 (7 / 3),
49.9 / 25.0 (6 / 9), 62.2 / 37.5 (9 / 5); agents ``--normalize-obs`` 64.9 / 33.3 (8 / 2), 54.5 / 33.3 (8 / 6),
68.9 / 25.0 (6 / 1), returns -0.27 / -0.47 / -0.10 against -0.29 / -0.52 / -0.46 unnormalised and -0.21 / -0.18 /
-0.12 for none. Normalising cuts the agents' off-road endings and raises their RC and return on every seed set, but
does not beat the state-only observation (one RL seed each), so both defaults stay (README).

Columns: route completion RC, collision rate, driving score DS (means over episodes), mean speed [m/s] over driven
frames, share of stopped frames, the mean return, and how the episodes ended (counts of the env's
``info["termination_reason"]``: ``collision``, ``offroad``, ``time_limit`` = the log ran out, ``route_end``): a
policy that stands still ends every episode at the time limit, so its RC next to a driving policy's says whether
that one completes more of the route or only ends the same way.

Seeds (defaults: the values the README's runs used): ``--train-bank-seed`` (the training scenes),
``--eval-bank-seed`` (the held-out scenes, never trained on), ``--rl-seed`` (PPO's seed: network initialisation,
action sampling, the env's reset seeds during training), ``--eval-reset-seed`` (reset seeds ``reset seed + i`` of the
evaluation episodes: the start frames of normal scenes).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections import Counter
from typing import Sequence

import numpy as np

from agents.base import Policy, PolicyInput, policy_input
from agents.baselines import make_baseline
from envs.scenes.bank import ScenarioBank
from envs.prompt_state import PROMPT_STATES
from envs.replay_env import EnvConfig, ReplayEnv
from envs.sim.reward import REWARD_KINDS, RewardConfig
from envs.wrappers import NormalizedTrajectoryAction, kinematic_trajectories


class SB3Policy(Policy):
    """A trained SB3 model on normalised actions, as a :class:`~agents.base.Policy` (deterministic); with
    ``normalizer`` (the training run's SB3 ``VecNormalize``, ``--normalize-obs``) each observation is first scaled by
    its frozen running statistics (``normalizer.training`` is set ``False``: evaluation never updates them)."""

    def __init__(self, model, wrapper: NormalizedTrajectoryAction, name: str = "ppo", normalizer=None) -> None:
        self.model, self.wrapper, self.name, self.normalizer = model, wrapper, name, normalizer
        if normalizer is not None:
            normalizer.training = False

    def act(self, inp: PolicyInput) -> np.ndarray:
        obs = dict(inp.observation)
        if self.normalizer is not None:
            obs = self.normalizer.normalize_obs(obs)
        action, _ = self.model.predict(obs, deterministic=True)
        return kinematic_trajectories(action, self.wrapper.max_speed, self.wrapper.max_yaw_rate).astype(np.float32)


DEFAULT_PROMPT_STATE = "none"
"""``--prompt-state``'s default (module docstring, "What PPO sees")."""

TERMINATION_REASONS = ("collision", "offroad", "time_limit", "route_end")
"""The closed-loop :class:`~envs.replay_env.ReplayEnv`'s ``info["termination_reason"]`` values of an ended episode."""


def evaluate(policy: Policy, env: ReplayEnv, seed: int = 0) -> tuple[dict[str, float], Counter]:
    """Closed-loop means over one episode per scene of ``env.source`` (reset seed ``seed + i``), and the episodes'
    termination reasons as counts."""
    rows: dict[str, list[float]] = {k: [] for k in ("rc", "collided", "ds", "speed", "stopped", "return")}
    reasons: Counter = Counter()
    for i in range(len(env.source)):
        obs, info = env.reset(seed=seed + i, options={"scene_index": i})
        done, total, speeds = False, 0.0, []
        while not done:
            obs, reward, terminated, truncated, info = env.step(
                policy.act(policy_input(env, obs, info, policy.requires_privileged)))
            total += float(reward)
            speeds.append(float(obs["ego_state"][0]))
            done = terminated or truncated
        m = info["driving_metrics"]
        rows["rc"].append(m["route_completion"])
        rows["ds"].append(m["driving_score"])
        rows["stopped"].append(m["stopped_share"])
        rows["collided"].append(float(info["termination_reason"] == "collision"))
        rows["speed"].append(float(np.mean(speeds)))
        rows["return"].append(total)
        reasons[info["termination_reason"]] += 1
    return {k: float(np.mean(v)) for k, v in rows.items()}, reasons


def env_config(args: argparse.Namespace) -> EnvConfig:
    """The env PPO trains and is evaluated on: the state-only observation (``bev=None``) with ``--prompt-state`` /
    ``--prompt-agents``, the run's reward; ``ValueError`` naming the ``EnvConfig`` field at fault."""
    return EnvConfig(bev=None, reward={"reward_score": args.reward_score, "kind": args.reward_kind,
                                       "min_speed_penalty": args.min_speed_penalty},
                     prompt_state=args.prompt_state, prompt_agents=args.prompt_agents)


def make_normalizer(env: NormalizedTrajectoryAction):
    """SB3's ``VecNormalize`` over ``env`` (in a ``DummyVecEnv``): observation normalisation only
    (``norm_obs=True, norm_reward=False``, SB3's other defaults: clip 10, epsilon 1e-8), on every ``Box`` entry of the
    Dict observation (``command`` is ``Discrete``: SB3 normalises only Boxes; it is one-hot encoded as before)."""
    from gymnasium import spaces
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    keys = [k for k, s in env.observation_space.spaces.items() if isinstance(s, spaces.Box)]
    return VecNormalize(DummyVecEnv([lambda: env]), norm_obs=True, norm_reward=False, norm_obs_keys=keys)


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command line (module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=None,
                        help="training wall-clock budget [min] (default 5 unless --steps is given)")
    budget.add_argument("--steps", type=int, default=None,
                        help="training budget in env steps instead of minutes (independent of the machine's load)")
    p.add_argument("--n-steps", type=int, default=2048,
                   help="PPO's rollout length per update (SB3's default 2048; smaller only for smoke tests)")
    p.add_argument("--prompt-state", default=DEFAULT_PROMPT_STATE, choices=PROMPT_STATES,
                   help="what PPO's state-only observation adds (EnvConfig.prompt_state, envs.prompt_state): none, "
                        "the ego's velocity, or also the K nearest visible agents (K, 6)")
    p.add_argument("--prompt-agents", type=int, default=EnvConfig().prompt_agents,
                   help="K, the agents in the observation with --prompt-state agents (EnvConfig.prompt_agents)")
    p.add_argument("--normalize-obs", action="store_true",
                   help="train on SB3's VecNormalize(norm_obs=True, norm_reward=False) over the Box entries "
                        "(running mean / std, clipped at 10) and evaluate with the frozen statistics (default off)")
    p.add_argument("--train-scenes", type=int, default=64)
    p.add_argument("--train-bank-seed", "--train-seed", dest="train_seed", type=int, default=1000,
                   help="bank seed of the training scenes")
    p.add_argument("--eval-scenes", type=int, default=24)
    p.add_argument("--eval-bank-seed", "--eval-seed", dest="eval_seed", type=int, default=2000,
                   help="bank seed of the held-out scenes (never trained on)")
    p.add_argument("--reward-score", default="sp_pdms", choices=("sp_pdms", "pdms"))
    p.add_argument("--reward-kind", default=RewardConfig().kind, choices=REWARD_KINDS,
                   help="closed-loop step reward (envs.sim.reward.RewardConfig.kind): the score, or progress first")
    p.add_argument("--min-speed-penalty", type=float, default=RewardConfig().min_speed_penalty,
                   help="the progress reward's minimum-speed infraction (RewardConfig.min_speed_penalty; 0: off)")
    p.add_argument("--rl-seed", "--seed", dest="seed", type=int, default=0,
                   help="PPO's seed (initialisation, action sampling, training resets)")
    p.add_argument("--eval-reset-seed", type=int, default=0, help="evaluation episodes reset with seed + scene index")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        p.error(f"--steps: expected an int >= 1, got {args.steps}")
    if args.minutes is not None and not args.minutes > 0:
        p.error(f"--minutes: expected a positive number, got {args.minutes}")
    if args.n_steps < 2:
        p.error(f"--n-steps: expected an int >= 2, got {args.n_steps}")

    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from agents.rl.sb3_logger import folderless_logger

    torch.set_num_threads(1)
    try:
        config = env_config(args)
    except ValueError as exc:
        p.error(str(exc))
    train_env = NormalizedTrajectoryAction(
        ReplayEnv(ScenarioBank(args.train_scenes, seed=args.train_seed), "closed_loop", config))

    class Clock(BaseCallback):
        """Stops training at the deadline (the rollout in progress then is not trained on)."""

        def __init__(self, seconds: float) -> None:
            super().__init__()
            self.deadline = time.monotonic() + seconds

        def _on_step(self) -> bool:
            return time.monotonic() < self.deadline

    normalizer = make_normalizer(train_env) if args.normalize_obs else None
    model = PPO("MultiInputPolicy", train_env if normalizer is None else normalizer, n_steps=args.n_steps, seed=args.seed, device="cpu", verbose=0)
    model.set_logger(folderless_logger(0))  # SB3 would make an empty $TMPDIR/SB3-<date> folder (agents.rl.sb3_logger)
    start = time.perf_counter()
    if args.steps is not None:  # whole rollouts: the first multiple of n_steps >= --steps
        model.learn(total_timesteps=args.steps, progress_bar=False)
        budget = f"--steps {args.steps}"
    else:
        minutes = 5.0 if args.minutes is None else args.minutes
        model.learn(total_timesteps=10**9, callback=Clock(60.0 * minutes), progress_bar=False)
        budget = f"--minutes {minutes:g}"
    wall = time.perf_counter() - start
    observed = (args.prompt_state + (f" (K = {args.prompt_agents})" if args.prompt_state == "agents" else "")
                + (" normalised (VecNormalize)" if normalizer is not None else ""))
    print(f"PPO (SB3 defaults, MultiInputPolicy, n_steps {args.n_steps}, RL seed {args.seed}): "
          f"{model.num_timesteps} env steps in {wall:.0f} s ({budget}), prompt state {observed}, "
          f"reward {args.reward_kind} ({args.reward_score}, min_speed_penalty {args.min_speed_penalty}), "
          f"{args.train_scenes} SYNTHETIC training scenes (bank seed {args.train_seed})")

    eval_env = ReplayEnv(ScenarioBank(args.eval_scenes, seed=args.eval_seed), "closed_loop",
                         dataclasses.replace(config))
    policies = [SB3Policy(model, train_env, normalizer=normalizer)] + [make_baseline(n) for n in
                                                ("stand_still", "brake_to_stop", "constant_velocity",
                                                 "pdm_closed_like", "safe_oracle")]
    print(f"closed loop on {args.eval_scenes} held-out SYNTHETIC scenes (bank seed {args.eval_seed}, reset seeds "
          f"{args.eval_reset_seed} + i); ended by: episodes per termination reason")
    print(f"{'policy':<18} {'RC':>6} {'coll %':>7} {'DS':>6} {'speed':>6} {'stopped':>8} {'return':>8}  "
          + " ".join(f"{r:>10}" for r in TERMINATION_REASONS))
    for policy in policies:
        r, reasons = evaluate(policy, eval_env, args.eval_reset_seed)
        other = sum(reasons.values()) - sum(reasons[k] for k in TERMINATION_REASONS)
        print(f"{policy.name:<18} {r['rc']:>6.3f} {100 * r['collided']:>7.1f} {r['ds']:>6.3f} {r['speed']:>6.2f} "
              f"{r['stopped']:>8.3f} {r['return']:>8.2f}  " + " ".join(f"{reasons[k]:>10}" for k in TERMINATION_REASONS)
              + (f"  (other {other})" if other else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

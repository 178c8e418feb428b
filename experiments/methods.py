"""The built-in methods (:mod:`experiments.registry`), in table order:

* planners (``evaluate.planners``), every policy of :mod:`agents.baselines`: ``pdm_closed_like`` (constant-velocity
  forecasts, reads the agents' current states) and ``safe_oracle`` (oracle knowledge of the agents' logged future: a
  privileged reference, not an upper bound; see ``benchmarks/bench_oracle.py``) first, then the degenerate
  references ``brake_to_stop``, ``constant_velocity``, ``log_replay``, ``stand_still``;
* learned: ``sft_positive`` (positive-only SFT, the no-negative baseline), ``sft_negative`` (negative-enhanced SFT),
  ``ppo`` (SB3 PPO from scratch, :mod:`agents.rl.ppo`), ``grpo`` (vanilla GRPO) and ``anchor_grpo`` (anchor-GRPO),
  both from the negative-enhanced SFT policy (their KL reference), for ``train.rl_budget`` env steps each.

The SFT rows are trained by the agent's SFT stage (behaviour cloning for ``agent=mlp``), the RL rows by the ``grpo``
stage through :func:`learn`.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from agents.baselines import BASELINES, make_baseline
from experiments.builders import group_env
from experiments.pipeline import Context
from experiments.registry import Method, get_agent, register_method


def learn(ctx: Context, method: str, model: Any, save: Callable[[Any], Any]) -> dict[str, Any]:
    """Train an SB3 ``model`` for ``train.rl_budget`` env steps (TensorBoard run ``method``), save it with ``save``,
    close its env; returns the stage outputs ``{method: path, f"{method}_seconds": s, f"{method}_anchor_states": n}``
    and, for GRPO, the anchor counts of :func:`anchor_stats`."""
    budget = int(ctx.cfg.train.rl_budget)
    start = time.perf_counter()
    model.learn(budget, progress_bar=bool(ctx.cfg.progress), tb_log_name=method)
    path = save(model)
    seconds = time.perf_counter() - start
    print(f"{method}: {budget} env steps in {seconds:.0f} s -> {path}")
    model.get_env().close()
    out = {method: path, f"{method}_seconds": seconds,
           f"{method}_anchor_states": int(getattr(model, "anchor_states_seen", 0))}
    if hasattr(model, "anchor_bank"):  # GRPO: how many states got anchors, and from which source
        out.update(anchor_stats(model, method))
    return out


def anchor_stats(model: Any, method: str) -> dict[str, Any]:
    """A GRPO model's anchor counts over its training, for the grpo stage's outputs (``state.json``):
    ``{method}_env_steps`` (states collected: env steps over every env), ``{method}_anchor_states`` (states whose
    group had anchors), ``{method}_online_anchor_states`` (... from pairs mined online during the run),
    ``{method}_teacher_states`` (... whose positive was the teacher's, ``train.grpo.teacher_anchor``),
    ``{method}_anchor_state_share`` (anchor states / env steps), ``{method}_online_pairs`` (pairs mined online from
    the run's crashes), ``{method}_bank_pairs`` (pairs in the bank at the end: dataset + online)."""
    steps = int(model.num_timesteps)
    states = int(getattr(model, "anchor_states_seen", 0))
    return {f"{method}_env_steps": steps, f"{method}_anchor_states": states,
            f"{method}_online_anchor_states": int(getattr(model, "online_anchor_states_seen", 0)),
            f"{method}_teacher_states": int(getattr(model, "teacher_states_seen", 0)),
            f"{method}_anchor_state_share": states / steps if steps else float("nan"),
            f"{method}_online_pairs": len(getattr(model, "_online_pairs", [])),
            f"{method}_bank_pairs": len(model.anchor_bank)}


# ------------------------------------------------------------------------------------------------------ planners
_PLANNER_NOTES = {
    "pdm_closed_like": "planner (constant-velocity forecasts; privileged: reads the agents' current states)",
    "safe_oracle": "privileged reference, not an upper bound: planner with oracle knowledge of the agents' logged "
                   "future",
    "constant_velocity": "degenerate reference: keeps its current speed straight ahead",
    "log_replay": "privileged reference: replays the ego's logged future (into the crash on accident scenes)",
    "stand_still": "degenerate reference: stays where it is",
    "brake_to_stop": "degenerate reference: brakes straight ahead to a stop",
}


def _planner(name: str) -> Callable[[Context], Any]:
    return lambda ctx: make_baseline(name)


for _name in sorted(BASELINES, key=lambda n: (n not in ("pdm_closed_like", "safe_oracle"), n)):
    register_method(Method(_name, "planner", _planner(_name), privileged_view=True,
                           note=_PLANNER_NOTES.get(_name, "planner")))


# ------------------------------------------------------------------------------------------------------------ SFT
def _sft_row(view: str, name: str) -> Callable[[Context], Any]:
    return lambda ctx: get_agent(ctx.cfg.agent.name).sft_policy(ctx, view, name)


register_method(Method("sft_positive", "learned", _sft_row("positive", "sft_positive"), sft_views=("positive",),
                       note="positive-only SFT (the no-negative baseline)"))
register_method(Method("sft_negative", "learned", _sft_row("negative", "sft_negative"), sft_views=("negative",),
                       note="negative-enhanced SFT (failure feedback + correction)"))


# ------------------------------------------------------------------------------------------------------------ PPO
def _train_ppo(ctx: Context) -> dict[str, Any]:
    from agents.rl.ppo import make_ppo

    model = make_ppo(group_env(ctx, normalized=True), ctx.cfg.train.ppo, seed=int(ctx.cfg.seed),
                     tensorboard_log=str(ctx.path("tb", "rl", ".keep").parent) if ctx.cfg.tensorboard else None)

    def save(m: Any) -> Any:
        path = ctx.path("rl", "ppo.zip")
        m.save(path)
        return path

    return learn(ctx, "ppo", model, save)


def _load_ppo(ctx: Context) -> Any:
    from stable_baselines3 import PPO

    from agents.rl.sb3_agent import SB3Agent

    return SB3Agent(PPO.load(ctx.outputs["grpo"]["ppo"], device="cpu"), "ppo")


register_method(Method("ppo", "learned", _load_ppo, train=_train_ppo, states_label=False,
                       note="SB3 PPO from scratch, same env, reward and env budget"))


# ----------------------------------------------------------------------------------------------------------- GRPO
def _train_grpo(name: str, anchors: bool) -> Callable[[Context], dict[str, Any]]:
    def train(ctx: Context) -> dict[str, Any]:
        sft_out = ctx.outputs.get("sft", {})
        if "negative" not in sft_out:
            raise SystemExit(f"{name}: needs the negative-enhanced SFT policy (stage sft with algo.methods "
                             "including sft_negative or a GRPO row)")
        agent = get_agent(ctx.cfg.agent.name)
        model = agent.rl_model(ctx, anchors, sft_out["negative"])
        return learn(ctx, name, model, lambda m: agent.save_rl(ctx, m, name))

    return train


def _load_grpo(name: str) -> Callable[[Context], Any]:
    return lambda ctx: get_agent(ctx.cfg.agent.name).rl_policy(ctx, name)


register_method(Method("grpo", "learned", _load_grpo("grpo"), sft_views=("negative",),
                       train=_train_grpo("grpo", anchors=False),
                       note="vanilla GRPO from the negative-enhanced SFT policy"))
register_method(Method("anchor_grpo", "learned", _load_grpo("anchor_grpo"), sft_views=("negative",),
                       train=_train_grpo("anchor_grpo", anchors=True),
                       note="anchor-GRPO from the negative-enhanced SFT policy"))

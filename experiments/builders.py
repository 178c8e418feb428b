"""What the stages, agents and methods share, built from the run configuration: the scene sources, the replay env
configuration of the run's agent (its view + the one reward config) and the GRPO / PPO training env."""

from __future__ import annotations

from typing import Any

from experiments.pipeline import Context


def evaluates_training_bank(env: Any) -> bool:
    """Whether a bank run's evaluation scenes are drawn from its training seed (``python -m experiments.reevaluate
    --training-bank``): its tables say "TRAINING scenes, not held out"."""
    return env.name == "bank" and int(env.eval_seed) == int(env.seed)


def sources(ctx: Context) -> tuple[Any, Any, str]:
    """``(train, held_out, description)`` scene sources of ``cfg.env`` (cached for the process)."""
    if "sources" in ctx.cache:
        return ctx.cache["sources"]
    from envs.scenes.sources import SourceError, bank_options, open_source

    env = ctx.cfg.env
    name = env.name
    try:
        if name == "bank":
            types = list(env.scenario_types) if env.scenario_types else None
            outcomes = str(getattr(env, "outcomes", "collision"))
            roads = str(getattr(env, "roads", "classic"))
            density = float(getattr(env, "background_density", 1.0))
            varied, families = outcomes != "collision", roads != "classic"
            fams = getattr(env, "road_families", None)
            eval_fams = getattr(env, "eval_road_families", None)
            expert = str(getattr(env, "expert", "logged"))
            if expert != "logged" and not varied:
                raise SystemExit(f"env: expert={expert!r} needs env.outcomes=varied (got {outcomes!r})")
            options = dict(outcomes=outcomes, outcome_mix=getattr(env, "outcome_mix", None) if varied else None,
                           difficulty=float(getattr(env, "difficulty", 0.5)) if varied else None,
                           roads=roads if families else None, background_density=None if density == 1.0 else density,
                           expert=expert if varied else None)
            try:
                train = open_source("bank", num_scenes=int(env.num_scenes), seed=int(env.seed), scenario_types=types,
                                    **bank_options(**options, road_families=fams if families else None))
                held = open_source("bank", num_scenes=int(env.eval_num_scenes), seed=int(env.eval_seed),
                                   scenario_types=types, **bank_options(
                                       **options, road_families=(fams if eval_fams is None else eval_fams)
                                       if families else None))
            except ValueError as exc:
                raise SystemExit(f"env: {exc}") from None
            held_text = (f"{len(held)} held-out scenes (seed {env.eval_seed}, never trained on)"
                         if not evaluates_training_bank(env) else
                         f"{len(held)} evaluation scenes of the TRAINING seed {env.eval_seed} (not held out: "
                         "python -m experiments.reevaluate --training-bank)")
            text = f"SYNTHETIC bank: {len(train)} training scenes (seed {env.seed}), {held_text}"
            if outcomes != "collision":
                bank = train.collection
                text += (f"; outcome-varied typologies (benign / near-miss / collision mix {bank.outcome_mix}, "
                         f"difficulty {bank.difficulty}" + (f", {bank.expert} expert" if bank.expert != "logged"
                                                            else "") + ")")
            if roads != "classic":
                text += (f"; parametric road families: training {list(train.collection.road_families)}, held-out "
                         f"{list(held.collection.road_families)}")
            if density != 1.0:
                text += f"; background density {density}"
        elif name == "deepaccident":
            convention = str(getattr(env, "frame_convention", "auto"))
            train = open_source("deepaccident", root=env.root, split=env.split, strict=False,
                                frame_convention=convention)
            held_split = env.eval_split or env.split
            held = open_source("deepaccident", root=env.root, split=held_split, strict=False,
                               frame_convention=convention)
            same = " (the training split: not held out)" if held_split == env.split else ""

            def named(split: str | None) -> str:
                return "every scenario folder" if split is None else split

            reading, why, _ = train.collection.convention
            text = (f"DeepAccident {env.root}: {len(train)} training scenarios ({named(env.split)}), "
                    f"{len(held)} evaluation scenarios ({named(held_split)}){same}; frame convention {reading!r} "
                    f"({why}); no HD map, so the PDMS column holds "
                    "the map-free score NC (5 TTC + 2 C) / 7")
        elif name == "carla":
            from experiments.carla import carla_sources

            train, held, text = carla_sources(ctx.cfg, ctx.out)
        else:
            raise SystemExit(f"env.name: unknown scene source {name!r}")
    except SourceError as exc:
        raise SystemExit(f"env: {exc}") from None
    ctx.cache["sources"] = (train, held, text)
    return ctx.cache["sources"]


def env_config(ctx: Context):
    """The replay env configuration of the run's agent (its view, the run's one reward): what it trains on and what
    the learned rows are evaluated on (:attr:`experiments.registry.Agent.env_config`)."""
    import dataclasses

    from experiments.registry import get_agent

    config = get_agent(ctx.cfg.agent.name).env_config(ctx.cfg.agent, ctx.cfg.reward)
    return dataclasses.replace(config, start_steering=start_steering(ctx))


def start_steering(ctx: Context) -> str:
    """The closed loop's start steering of the run (``env.start_steering``; sources without the field: the
    :class:`envs.replay_env.EnvConfig` default)."""
    from envs.replay_env import EnvConfig

    return str(getattr(ctx.cfg.env, "start_steering", EnvConfig.start_steering))


def group_env(ctx: Context, normalized: bool, online_mining: bool = False):
    """The GRPO / PPO training env of the run: the group env over the training scenes (``train.n_envs`` of them,
    ``SubprocVecEnv`` when > 1; on Ray actors, ``env.envs_per_worker`` each, with ``env.vec_backend=ray``), with the
    run's env config."""
    from agents.rl.env import GroupEnvConfig, make_group_vec_env

    env = ctx.cfg.env
    # The training source itself (every bank option: outcomes, roads, scenario types, density), so that the env
    # trains on the scenes the miner mined and the SFT stage rendered (anchor pairs match by scene id and logged pose).
    config = GroupEnvConfig(source=sources(ctx)[0], env=env_config(ctx), normalized_actions=normalized,
                            online_mining=online_mining)
    n_envs = int(ctx.cfg.train.n_envs)
    if getattr(env, "vec_backend", "local") == "ray":
        return make_group_vec_env(config, n_envs, seed=int(ctx.cfg.seed), backend="ray",
                                  ray_options={"address": getattr(env, "ray_address", None),
                                               "envs_per_worker": int(getattr(env, "envs_per_worker", 1))})
    return make_group_vec_env(config, n_envs, seed=int(ctx.cfg.seed), subprocess=n_envs > 1)

"""How the pipeline's stages build what they share from the run configuration: the scene sources, the replay env
configuration (reward group + the agent's view), the group env and the GRPO model of the configured agent, and the
method names (:mod:`experiments.stages` runs the stages, :mod:`experiments.results` evaluates their outputs; both
build through here)."""

from __future__ import annotations

from typing import Any

from experiments.pipeline import Context

SFT_MODES = {"sft_positive": "positive", "sft_negative": "negative"}
"""SFT methods -> the SFT data view they train on."""
RL_METHODS = ("ppo", "grpo", "anchor_grpo")
"""Methods trained by the ``grpo`` stage."""


def sources(ctx: Context) -> tuple[Any, Any, str]:
    """``(train, held_out, description)`` scene sources of ``cfg.env`` (cached for the process)."""
    if "sources" in ctx.cache:
        return ctx.cache["sources"]
    from envs.scenes.sources import SourceError, open_source

    env = ctx.cfg.env
    name = env.name
    try:
        if name == "bank":
            types = list(env.scenario_types) if env.scenario_types else None
            train = open_source("bank", num_scenes=int(env.num_scenes), seed=int(env.seed), scenario_types=types)
            held = open_source("bank", num_scenes=int(env.eval_num_scenes), seed=int(env.eval_seed),
                               scenario_types=types)
            text = (f"SYNTHETIC bank: {len(train)} training scenes (seed {env.seed}), {len(held)} held-out scenes "
                    f"(seed {env.eval_seed}, never trained on)")
        elif name == "deepaccident":
            train = open_source("deepaccident", root=env.root, split=env.split, strict=False)
            held_split = env.eval_split or env.split
            held = open_source("deepaccident", root=env.root, split=held_split, strict=False)
            same = " (the training split: not held out)" if held_split == env.split else ""
            text = (f"DeepAccident {env.root}: {len(train)} training scenarios ({env.split}), "
                    f"{len(held)} evaluation scenarios ({held_split}){same}; no HD map, so the PDMS column holds "
                    "the map-free score NC (5 TTC + 2 C) / 7")
        elif name == "carla":
            from experiments.carla import carla_source

            train = carla_source(ctx.cfg, ctx.out)
            held = train
            text = f"CARLA recordings: {len(train)} episodes (evaluated on the same recordings, replayed)"
        else:
            raise SystemExit(f"env.name: unknown scene source {name!r}")
    except SourceError as exc:
        raise SystemExit(f"env: {exc}") from None
    ctx.cache["sources"] = (train, held, text)
    return ctx.cache["sources"]


def env_config(ctx: Context):
    """The replay env configuration of the learning agent and the evaluation (reward group + the agent's view)."""
    from envs.render import BEVConfig
    from envs.replay_env import EnvConfig

    reward, agent = ctx.cfg.reward, ctx.cfg.agent
    if agent.name == "vla":
        return EnvConfig(text_prompt=True, reward=reward)  # the VLA's 128 px RGB BEV and its prompt
    if agent.bev == "none":
        return EnvConfig(bev=None, reward=reward)
    from agents.rl.grpo.policies import MLP_LAYERS

    return EnvConfig(bev=BEVConfig(height=64, width=64, meters_per_pixel=1.0, mode="semantic",
                                   semantic_layers=MLP_LAYERS), reward=reward)


def group_env(ctx: Context, normalized: bool, online_mining: bool = False):
    """The GRPO / PPO training env of the run: the group env over the training scenes (``train.n_envs`` of them,
    ``SubprocVecEnv`` when > 1), with the run's env config."""
    from agents.rl.env import GroupEnvConfig, make_group_vec_env

    env = ctx.cfg.env
    if env.name != "bank":
        source_kwargs = {"source": sources(ctx)[0]}
    else:
        source_kwargs = {"num_scenes": int(env.num_scenes), "seed": int(env.seed)}
    config = GroupEnvConfig(env=env_config(ctx), normalized_actions=normalized, online_mining=online_mining,
                            **source_kwargs)
    n_envs = int(ctx.cfg.train.n_envs)
    return make_group_vec_env(config, n_envs, seed=int(ctx.cfg.seed), subprocess=n_envs > 1)


def grpo_model(ctx: Context, anchors: bool, start: Any):
    """A GRPO model of the configured agent (VLA from the SFT folder ``start``; MLP from the BC state dict)."""
    import dataclasses

    import torch

    from agents.rl.grpo import GRPO

    config = dataclasses.replace(ctx.cfg.train.grpo, anchors=anchors)
    pairs = str(ctx.outputs["mine"]["pairs_train"])
    tb = str(ctx.path("tb", "rl", ".keep").parent) if ctx.cfg.tensorboard else None
    seed = int(ctx.cfg.seed)
    if ctx.cfg.agent.name == "vla":
        return GRPO("VLAPolicy", group_env(ctx, normalized=False), config, anchor_pairs=pairs,
                    policy_kwargs={"path": str(start)}, seed=seed, tensorboard_log=tb)
    agent = ctx.cfg.agent
    kwargs: dict[str, Any] = {"log_std_init": float(agent.log_std_init)}
    if agent.bev != "none":
        kwargs["features_extractor_kwargs"] = {"cnn_output_dim": 64}
    model = GRPO("MultiInputPolicy",  # the observation is a dict with or without the BEV (agent.bev=none)
                 group_env(ctx, normalized=True), config, anchor_pairs=pairs, seed=seed, tensorboard_log=tb,
                 policy_kwargs=kwargs)
    if start is not None:
        model.policy.load_state_dict(torch.load(start))
        model.reset_reference()
    return model

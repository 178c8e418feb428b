"""The built-in agents (:mod:`experiments.registry`): ``vla`` (the vision-language-action policy of :mod:`agents.vla`:
SFT with the ``transformers`` Trainer, GRPO through ``VLAGroupPolicy``) and ``mlp`` (the Gaussian trajectory policy
of :mod:`agents.rl.grpo.policies`: behaviour cloning as its SFT analogue, :mod:`agents.rl.bc`)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from agents.vla.model import VLAConfig
from experiments.builders import env_config, group_env, sources
from experiments.pipeline import Context
from experiments.registry import Agent, AgentConfig, register_agent
from experiments.schema import schema

VLAConfigNode = schema(VLAConfig)
"""The ``agent.model`` node of the VLA (generated from :class:`agents.vla.model.VLAConfig`)."""


# ------------------------------------------------------------------------------------------------------------ vla
@dataclass
class VLAAgentConfig(AgentConfig):
    """The VLA (:mod:`agents.vla`): a tiny random-init LLaVA by default, or a pretrained VLM from a local folder."""

    name: str = "vla"
    model: VLAConfigNode = field(default_factory=VLAConfigNode)
    """Model sizes (:class:`agents.vla.model.VLAConfig`, ``_target_``, every field, e.g. ``agent.model.text_layers=4``;
    its ``seed`` is set from the run's ``seed``)."""
    init: Optional[str] = None
    """A local folder with a pretrained VLM (``AutoModelForImageTextToText``) or a saved VLA policy to start from."""
    lora: bool = False
    """With ``init``: train LoRA adapters (``peft``) instead of every weight."""
    codebook_size: int = 256
    """Action codewords (k-means)."""
    codebook_mode: str = "segment"
    """``segment`` (one token per 0.5 s) or ``trajectory`` (one token per 4 s)."""
    codebook_scenes: int = 100
    """Bank scenes (training seed) whose expert logs the codebook is fitted on (plus the pairs' positives)."""
    motion: str = "none"
    """Motion drawn in the BEV the VLA sees (env observation and SFT rows alike): a name of
    :data:`envs.render.MOTION_PRESETS` (``none``: today's image; ``velocity``: velocity marks at +1 / +2 s; see
    docs/vla.md, "Motion in the observation")."""
    prompt_state: str = "none"
    """Motion as numbers in the VLA's observation and prompt (:mod:`envs.prompt_state`; env observation, SFT rows,
    GRPO sampling and evaluation alike): ``none`` (today's prompt, bit for bit), ``ego`` (the ego's velocity) or
    ``agents`` (also the ``prompt_agents`` nearest agents visible in the BEV: class, relative position [m] and
    velocity [m/s]); the tokenizer's corpus then holds such prompts too. See docs/vla.md, "Agents' speeds in the
    prompt"."""
    prompt_agents: int = 4
    """Agents stated with ``prompt_state=agents``."""

    def __post_init__(self) -> None:
        from envs.prompt_state import check_prompt_options
        from envs.render import MOTION_PRESETS

        if self.motion not in MOTION_PRESETS:
            raise ValueError(f"agent.motion: expected one of {tuple(MOTION_PRESETS)}, got {self.motion!r}")
        check_prompt_options("agent", self.prompt_state, self.prompt_agents)
        if self.init and getattr(self.model, "vision_init", None):
            raise ValueError(f"agent.model.vision_init={self.model.vision_init!r} with agent.init={self.init!r}: a "
                             "model loaded with agent.init keeps its own vision tower; set one of the two")


def _vla_env_config(agent: Any, reward: Any) -> Any:
    from envs.render import BEVConfig, with_motion
    from envs.replay_env import EnvConfig

    # the VLA's 128 px RGB BEV (the EnvConfig default, with the agent's motion marks) and its prompt (with the
    # agent's prompt state: the numbers go into the observation, so SFT rows, GRPO and evaluation all state them)
    bev = with_motion(BEVConfig(antialias=False), str(getattr(agent, "motion", "none")))
    return EnvConfig(bev=bev, text_prompt=True, reward=reward, prompt_state=str(getattr(agent, "prompt_state", "none")),
                     prompt_agents=int(getattr(agent, "prompt_agents", 4)))


def _vla_tokenizer_config(agent: Any) -> Any:
    """The tokenizer settings of a new VLA: the default corpus, plus prompts with the agent's state block."""
    from agents.vla.tokenizer import TokenizerConfig

    return TokenizerConfig(prompt_state=str(getattr(agent, "prompt_state", "none")),
                           prompt_agents=int(getattr(agent, "prompt_agents", 4)))


def _frame_sampling(cfg: Any) -> str:
    """The run's rule for the sampled decisions (``env.frame_sampling``; ``even`` for sources without the key)."""
    return str(getattr(cfg.env, "frame_sampling", "even") or "even")


def _sample_tables(ctx: Context) -> tuple[Any, Any]:
    """``(train, held-out)`` rendered SFT sample tables of the run (built once, cached in ``<run>/sft/cache``)."""
    if "sample_tables" in ctx.cache:
        return ctx.cache["sample_tables"]
    from agents.sft.data import SampleConfig, load_or_build_samples
    from counterfactual.dataset import load_anchor_pairs

    cfg = ctx.cfg
    train, held, _ = sources(ctx)
    samples = SampleConfig(expert_frames_per_scene=int(cfg.train.expert_frames),
                           frame_sampling=_frame_sampling(cfg), observation=env_config(ctx).observation)
    cache = ctx.path("sft", "cache", ".keep").parent
    tables = tuple(load_or_build_samples(scenes, load_anchor_pairs(ctx.outputs["mine"][f"pairs_{split}"]), cache,
                                         samples, progress=bool(cfg.progress))
                   for split, scenes in (("train", train), ("eval", held)))
    ctx.cache["sample_tables"] = tables
    return tables


def _vla_train_sft(ctx: Context, views: Sequence[str]) -> dict[str, Any]:
    """SFT of the VLA on each data view (the Trainer's checkpoints let an interrupted stage resume)."""
    from agents.sft.data import SampleConfig, SFTDataset, load_or_build_samples
    from agents.sft.trainer import latest_checkpoint, train_sft
    from agents.vla.codebook import CodebookConfig, TrajectoryCodebook, fit_on_logs_and_positives
    from agents.vla.policy import VLAPolicy
    from counterfactual.dataset import load_anchor_pairs

    cfg, agent, train_cfg = ctx.cfg, ctx.cfg.agent, ctx.cfg.train
    train, _, _ = sources(ctx)
    pairs = load_anchor_pairs(ctx.outputs["mine"]["pairs_train"])
    cache = ctx.path("sft", "cache", ".keep").parent
    table = load_or_build_samples(train, pairs, cache, SampleConfig(
        expert_frames_per_scene=int(train_cfg.expert_frames), frame_sampling=_frame_sampling(cfg),
        observation=env_config(ctx).observation), progress=bool(cfg.progress))
    book_path = ctx.path("sft", "codebook.npz")
    if book_path.is_file():
        codebook = TrajectoryCodebook.load(book_path)
    else:
        codebook = fit_on_logs_and_positives(
            pairs, CodebookConfig(size=int(agent.codebook_size), mode=agent.codebook_mode),
            int(agent.codebook_scenes), int(getattr(cfg.env, "seed", 0) or 0))
        codebook.save(book_path)
    outputs: dict[str, Any] = {"codebook": book_path, "samples": len(table)}
    model_config = agent.model  # a VLAConfig, built by experiments.run.typed_config with the run's seed
    for view in views:
        run = ctx.path("sft", view, ".keep").parent
        name = f"vla_sft_{view}"
        last = latest_checkpoint(run)
        if last is not None:
            _check_prompt_state(last, agent)
            policy = VLAPolicy.from_pretrained(last, name=name)
        elif agent.init:
            policy = VLAPolicy.from_pretrained(agent.init, codebook=codebook, lora=bool(agent.lora), name=name)
            policy.prompt_state = _prompt_state(agent)  # the rows it is fine-tuned on (recorded when saved)
            policy.label_source = model_config.label_source  # agent.model.label_source (recorded when saved)
        else:
            policy = VLAPolicy.build(codebook, model_config, _vla_tokenizer_config(agent), name=name)
        result = train_sft(policy, SFTDataset(table, view), run, train_cfg.sft,
                           resume=last if last is not None else False)
        print(f"SFT {view}: loss {result.losses[0][1]:.3f} -> {result.losses[-1][1]:.3f} in {result.train_seconds:.0f} s"
              f" -> {result.final_dir}")
        outputs[view] = result.final_dir
        outputs[f"{view}_seconds"] = result.train_seconds
    return outputs


def _prompt_state(agent: Any) -> tuple[str, int]:
    """``(agent.prompt_state, agent.prompt_agents)`` (defaults for an agent config without them)."""
    return str(getattr(agent, "prompt_state", "none")), int(getattr(agent, "prompt_agents", 4))


def _check_prompt_state(folder: Any, agent: Any) -> None:
    """``ValueError`` when the policy folder records another prompt state than ``agent.prompt_state`` (the run's
    env observations and rows state the agent's: :func:`agents.vla.processor.resolve_prompt_state`)."""
    from agents.vla.processor import resolve_prompt_state

    try:
        resolve_prompt_state(folder, *_prompt_state(agent))
    except ValueError as exc:
        raise ValueError(f"agent.prompt_state / agent.prompt_agents: {exc} (set them to the folder's)") from None


def _vla_folder_policy(ctx: Context, folder: Any, name: str) -> Any:
    from agents.vla.policy import VLAPolicy

    _check_prompt_state(folder, ctx.cfg.agent)
    return VLAPolicy.from_pretrained(folder, name=name)


def _vla_rl_model(ctx: Context, anchors: bool, start: Any) -> Any:
    from agents.rl.grpo import GRPO

    return GRPO("VLAPolicy", group_env(ctx, normalized=False, online_mining=_online(ctx, anchors)),
                _grpo_config(ctx, anchors), anchor_pairs=str(ctx.outputs["mine"]["pairs_train"]),
                policy_kwargs={"path": str(start)}, seed=int(ctx.cfg.seed), tensorboard_log=_tb(ctx))


def _vla_label_accuracy(ctx: Context, policy: Any, blank_bev: bool = False) -> Sequence[Any]:
    from agents.vla.evaluate import language_accuracy

    train_table, held_table = _sample_tables(ctx)
    return language_accuracy(policy, held_table, None if blank_bev else train_table, progress=bool(ctx.cfg.progress),
                             blank_bev=blank_bev)


# ------------------------------------------------------------------------------------------------------------ mlp
@dataclass
class MLPAgentConfig(AgentConfig):
    """The Gaussian trajectory policy of :mod:`agents.rl.grpo` (fast; SFT rows are behaviour cloning)."""

    name: str = "mlp"
    bev: str = "semantic64"
    """Observation: ``semantic64`` (64 px semantic BEV, CNN features) or ``none`` (state only)."""
    log_std_init: float = -1.0
    """Initial log-std of the Gaussian (normalised action units)."""
    yaw_log_std_init: float | None = None
    """Initial log-std of its 8 yaw-rate dimensions alone (None: ``log_std_init``); e.g. ``-4``: GRPO's group
    members differ in speed, hardly in heading (docs/grpo_ablation.md, "Sampling speed only")."""
    prompt_state: str = "none"
    """Motion as numbers in the observation (:mod:`envs.prompt_state`; behaviour cloning, GRPO, the SB3 PPO baseline
    and evaluation alike): ``none`` (default, unchanged), ``ego`` (the ego's velocity, ``(2,)``) or ``agents`` (also
    the ``prompt_agents`` nearest agents visible in the agent's BEV, the default BEV's extent with ``bev=none``,
    ``(K, 6)``: class, relative position [m] and velocity [m/s]). With ``bev=none`` it gives the state-only
    policies the other agents (``benchmarks.bench_ppo --prompt-state agents``)."""
    prompt_agents: int = 4
    """Agents in the observation with ``prompt_state=agents``."""
    privileged_hazard: bool = False
    """Add the PRIVILEGED ``"hazard"`` observation ``(8,)`` (behaviour cloning, GRPO, PPO and evaluation alike): the
    scenario's designated hazard agent's relative motion and constant-velocity closest approach
    (:func:`envs.prompt_state.hazard_state`). A diagnostic (what the policy does once it sees the hazard,
    docs/grpo_ablation.md), never a deployable policy: results with it are marked privileged."""

    normalize_vectors: bool = True
    """Scale every vector observation (``history``, ``ego_state``, ``ego_velocity``, ``agents``, ``hazard``) to
    ``[-1, 1]`` by its observation-space bound before the mean MLP
    (:class:`agents.rl.grpo.policies.BoundedCombinedExtractor`; behaviour cloning, GRPO and evaluation; the SB3 PPO
    row keeps its own policy). Default on since 2026-12-07 (anchor-GRPO completed +5.4 points more route on two
    held-out banks, docs/grpo_ablation.md#the-vectors-scale-question-written-before-its-runs); ``false``: SB3's raw
    ``CombinedExtractor``, with which every MLP number published before that date was measured (restate it to load
    or re-evaluate those runs)."""

    def __post_init__(self) -> None:
        from envs.prompt_state import check_prompt_options

        if self.bev not in ("semantic64", "none"):
            raise ValueError(f"agent.bev: expected 'semantic64' or 'none', got {self.bev!r}")
        check_prompt_options("agent", self.prompt_state, self.prompt_agents)
        for name in ("privileged_hazard", "normalize_vectors"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"agent.{name}: expected true or false, got {getattr(self, name)!r}")


def _mlp_env_config(agent: Any, reward: Any) -> Any:
    from envs.render import BEVConfig
    from envs.replay_env import EnvConfig

    state = {"prompt_state": str(getattr(agent, "prompt_state", "none")),
             "prompt_agents": int(getattr(agent, "prompt_agents", 4)),
             "privileged_hazard": bool(getattr(agent, "privileged_hazard", False))}
    if agent.bev == "none":
        return EnvConfig(bev=None, reward=reward, **state)
    from agents.rl.grpo.policies import MLP_LAYERS

    return EnvConfig(bev=BEVConfig(height=64, width=64, meters_per_pixel=1.0, mode="semantic",
                                   semantic_layers=MLP_LAYERS), reward=reward, **state)


def _mlp_rl_model(ctx: Context, anchors: bool, start: Any) -> Any:
    """A GRPO model of the Gaussian policy, its weights from the BC state dict ``start`` (when given)."""
    import torch

    from agents.rl.grpo import GRPO
    from agents.rl.grpo.policies import BoundedCombinedExtractor

    agent = ctx.cfg.agent
    kwargs: dict[str, Any] = {"log_std_init": float(agent.log_std_init)}
    if getattr(agent, "yaw_log_std_init", None) is not None:
        kwargs["yaw_log_std_init"] = float(agent.yaw_log_std_init)
    if agent.bev != "none":
        kwargs["features_extractor_kwargs"] = {"cnn_output_dim": 64}
    if getattr(agent, "normalize_vectors", False):
        kwargs["features_extractor_class"] = BoundedCombinedExtractor
    model = GRPO("MultiInputPolicy",  # the observation is a dict with or without the BEV (agent.bev=none)
                 group_env(ctx, normalized=True, online_mining=_online(ctx, anchors)), _grpo_config(ctx, anchors),
                 anchor_pairs=str(ctx.outputs["mine"]["pairs_train"]), seed=int(ctx.cfg.seed),
                 tensorboard_log=_tb(ctx), policy_kwargs=kwargs)
    if start is not None:
        weights = torch.load(start)
        scaled = any(k.startswith("features_extractor.scale_") for k in weights)
        if scaled != isinstance(model.policy.features_extractor, BoundedCombinedExtractor):
            raise ValueError(f"{start}: behaviour-cloning weights trained with agent.normalize_vectors="
                             f"{str(scaled).lower()}, but the run's agent.normalize_vectors is "
                             f"{str(not scaled).lower()} (the default is true since 2026-12-07); restate "
                             f"agent.normalize_vectors={str(scaled).lower()} to use them")
        model.policy.load_state_dict(weights)
        model.reset_reference()
    return model


def _mlp_train_sft(ctx: Context, views: Sequence[str]) -> dict[str, Any]:
    """The MLP agent's SFT analogue: behaviour cloning of the Gaussian trajectory policy in each view."""
    import torch

    from agents.rl.bc import build_bc_data, dagger_data, merge_bc_data, train_bc
    from counterfactual.dataset import load_anchor_pairs

    train, _, _ = sources(ctx)
    outputs: dict[str, Any] = {}
    for view in views:
        start = time.perf_counter()
        model = _mlp_rl_model(ctx, anchors=False, start=None)
        data = build_bc_data([train[i] for i in range(len(train))],
                             load_anchor_pairs(ctx.outputs["mine"]["pairs_train"]), env_config(ctx).observation,
                             model.policy.max_speed, model.policy.max_yaw_rate,
                             expert_frames_per_scene=int(ctx.cfg.train.expert_frames),
                             frame_sampling=_frame_sampling(ctx.cfg),
                             demonstrations=str(ctx.cfg.train.bc.demonstrations),
                             teacher_stride=float(ctx.cfg.train.bc.teacher_stride), env_config=env_config(ctx),
                             teacher_futures=str(ctx.cfg.train.bc.teacher_futures))
        train_bc(model.policy, data, view, ctx.cfg.train.bc, seed=int(ctx.cfg.seed))
        for r in range(int(ctx.cfg.train.bc.dagger_rounds)):  # DAgger: the teacher at the states the policy reaches
            data = merge_bc_data(data, dagger_data(model, int(ctx.cfg.train.bc.dagger_steps), model.policy.max_speed,
                                                   model.policy.max_yaw_rate,
                                                   futures=str(ctx.cfg.train.bc.teacher_futures)))
            train_bc(model.policy, data, view, ctx.cfg.train.bc, seed=int(ctx.cfg.seed) + r + 1)
        model.get_env().close()
        path = ctx.path("sft", f"{view}.pt")
        torch.save(model.policy.state_dict(), path)
        outputs[view] = path
        outputs[f"{view}_seconds"] = time.perf_counter() - start
        print(f"BC {view}: {len(data)} samples in {outputs[f'{view}_seconds']:.0f} s -> {path}")
    return outputs


def _mlp_sft_policy(ctx: Context, view: str, name: str) -> Any:
    from agents.rl.sb3_agent import SB3Agent

    return SB3Agent(_mlp_rl_model(ctx, anchors=False, start=ctx.outputs["sft"][view]), name)


def _mlp_save_rl(ctx: Context, model: Any, method: str) -> Any:
    path = ctx.path("rl", f"{method}.zip")
    model.save(path)
    return path


def _mlp_rl_policy(ctx: Context, method: str) -> Any:
    from agents.rl.grpo import GRPO
    from agents.rl.sb3_agent import SB3Agent

    return SB3Agent(GRPO.load(ctx.outputs["grpo"][method], device="cpu"), method)


# ---------------------------------------------------------------------------------------------------- shared
def _grpo_config(ctx: Context, anchors: bool) -> Any:
    """The run's ``train.grpo`` with ``anchors`` set; the teacher anchor (``train.grpo.teacher_anchor``), like
    online mining, applies to anchor-GRPO only (vanilla GRPO's groups stay the sampled members)."""
    grpo = ctx.cfg.train.grpo
    return dataclasses.replace(grpo, anchors=anchors, teacher_anchor=bool(grpo.teacher_anchor and anchors))


def _online(ctx: Context, anchors: bool) -> bool:
    """Online mining (``train.online_mining``) applies to anchor-GRPO's env only."""
    return bool(anchors and getattr(ctx.cfg.train, "online_mining", False))


def _tb(ctx: Context) -> str | None:
    return str(ctx.path("tb", "rl", ".keep").parent) if ctx.cfg.tensorboard else None


register_agent(Agent(
    name="vla", config=VLAAgentConfig, env_config=_vla_env_config, train_sft=_vla_train_sft,
    sft_policy=lambda ctx, view, name: _vla_folder_policy(ctx, ctx.outputs["sft"][view], name),
    rl_model=_vla_rl_model,
    save_rl=lambda ctx, model, method: model.policy.vla.save_pretrained(ctx.path("rl", method, ".keep").parent),
    rl_policy=lambda ctx, method: _vla_folder_policy(ctx, ctx.outputs["grpo"][method], method),
    label_accuracy=_vla_label_accuracy))

register_agent(Agent(
    name="mlp", config=MLPAgentConfig, env_config=_mlp_env_config, train_sft=_mlp_train_sft,
    sft_policy=_mlp_sft_policy, rl_model=_mlp_rl_model, save_rl=_mlp_save_rl, rl_policy=_mlp_rl_policy,
    no_label_note="; the Gaussian policy states no safety label: language / risk acc n/a",
    notes={"sft_positive": "positive-only behaviour cloning (MLP analogue of SFT) (the no-negative baseline)",
           "sft_negative": "negative-enhanced behaviour cloning (MLP analogue of SFT) "
                           "(failure feedback + correction)"}))

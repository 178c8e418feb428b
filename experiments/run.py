"""The main job: ``python -m experiments.run`` (Hydra; no arguments = the embedded default, ``conf/config.yaml``).

Runs the stages ``collect -> mine -> sft -> grpo -> eval`` (:mod:`experiments.stages`) into one run folder and
prints the results table: the planners, positive-only SFT, negative-enhanced SFT, SB3 PPO, vanilla GRPO and
anchor-GRPO on held-out scenes, with the trivial label predictors as rows (``results.md`` / ``.csv`` / ``.json``).

Examples::

    python -m experiments.run                                   # the whole method, ~10 min on 2 CPU cores
    python -m experiments.run stages=[collect,mine]             # some stages (a finished stage is skipped)
    python -m experiments.run out_dir=outputs/run1              # rerun the same command to resume a killed run
    python -m experiments.run agent=mlp algo=anchor_grpo        # the Gaussian policy, one method
    python -m experiments.run env=deepaccident env.root=/data/DeepAccident
    python -m experiments.run env=carla                         # live CARLA servers (docker compose up carla)
    python -m experiments.run +experiment=paper -m seed=0,1,2   # paper-scale, 3 seeds, one aggregated table
    python -m experiments.run --cfg job                         # print the full configuration

A bad override (unknown key or wrong type: Hydra's structured configs; a value the library config refuses, e.g.
``train.grpo.group_size=1``, checked where the field is defined when :func:`typed_config` builds it; unknown stage; a
stage whose inputs are neither selected nor done; a missing DeepAccident folder; held-out seed equal to the training
seed; any ``env=carla`` field that cannot run, :func:`experiments.carla.validate_carla`) stops before any stage runs,
with a message naming it.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Mapping

import hydra
from omegaconf import DictConfig, OmegaConf

from experiments.config import RunConfig, register_configs
from experiments.schema import build
from experiments.registry import agent_names, method_names

register_configs()


def validate(cfg: Mapping[str, Any]) -> None:
    """``SystemExit`` naming the field of a configuration that cannot run (before any stage runs)."""
    env = cfg["env"]
    if env["name"] == "bank" and int(env["eval_seed"]) == int(env["seed"]):
        raise SystemExit(f"env.eval_seed={env['eval_seed']} equals env.seed: the held-out scenes must come from a "
                         "bank seed never trained on")
    if env["name"] == "deepaccident":
        if not env.get("root"):
            raise SystemExit("env.root: set it to your DeepAccident folder, e.g. env=deepaccident env.root=/data/DA")
        if not Path(env["root"]).is_dir():
            raise SystemExit(f"env.root: {env['root']!r} is not a folder")
    backend = env.get("vec_backend", "local")
    if backend not in ("local", "ray"):
        raise SystemExit(f"env.vec_backend: expected 'local' or 'ray', got {backend!r}")
    if env.get("ray_address") is not None and backend != "ray":
        raise SystemExit(f"env.ray_address={env['ray_address']!r} needs env.vec_backend=ray")
    per_worker = env.get("envs_per_worker", 1)
    if isinstance(per_worker, bool) or not isinstance(per_worker, int) or per_worker < 1:
        raise SystemExit(f"env.envs_per_worker: expected an int >= 1, got {per_worker!r}")
    if per_worker != 1 and backend != "ray":
        raise SystemExit(f"env.envs_per_worker={per_worker} needs env.vec_backend=ray")
    if env["name"] == "carla":
        from experiments.carla import validate_carla

        validate_carla(env)
    for field, kind, names in (("algo.methods", "learned", cfg["algo"]["methods"]),
                               ("evaluate.planners", "planner", cfg["evaluate"]["planners"])):
        unknown = [m for m in names if m not in method_names(kind)]
        if unknown:
            raise SystemExit(f"{field}: unknown {unknown}; known: {method_names(kind)}")
    if cfg["agent"]["name"] not in agent_names():
        raise SystemExit(f"agent.name: expected one of {agent_names()}, got {cfg['agent']['name']!r}")


def import_plugins(modules: Any) -> None:
    """Import the ``imports`` modules (their registrations run); ``SystemExit`` naming one that fails to import."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(str(name))
        except Exception as exc:  # noqa: BLE001  (any failure of a user module is reported by name)
            raise SystemExit(f"imports: cannot import {name!r}: {type(exc).__name__}: {exc}") from None


def typed_config(cfg: DictConfig) -> RunConfig:
    """The run configuration as typed objects, what the stages receive: ``OmegaConf.to_object`` (the schema
    dataclasses of :mod:`experiments.config`, whose own checks run, e.g. ``train.n_envs >= 1``), then every
    ``_target_`` node built into its library object (:func:`experiments.schema.build`), which validates its fields:
    ``cfg.reward`` is the one :class:`envs.sim.reward.RewardConfig`; ``cfg.train.sft`` / ``bc`` / ``grpo`` / ``ppo`` the
    library configs (SFT's ``seed``, ``progress`` and ``tensorboard`` from the run's); the agent's library nodes
    (the VLA's ``agent.model``, a :class:`agents.vla.model.VLAConfig`, its ``seed`` the run's). ``SystemExit`` naming
    the field of the first value that cannot run."""
    try:
        typed = OmegaConf.to_object(cfg)
    except Exception as exc:  # noqa: BLE001  (OmegaConf wraps the schema's ValueError in its own errors)
        raise SystemExit(f"configuration: {exc}") from None
    typed.reward = build(typed.reward, "reward")
    agent = typed.agent
    for f in dataclasses.fields(agent):  # library nodes of the agent (the VLA's agent.model), seeded by the run
        value = getattr(agent, f.name)
        if dataclasses.is_dataclass(value) and hasattr(value, "_target_"):
            seed = {"seed": int(typed.seed)} if any(g.name == "seed" for g in dataclasses.fields(value)) else {}
            setattr(agent, f.name, build(value, f"agent.{f.name}", **seed))
    train = typed.train
    train.sft = build(train.sft, "train.sft", seed=int(typed.seed), progress=bool(typed.progress),
                      tensorboard=bool(typed.tensorboard))
    train.bc = build(train.bc, "train.bc")
    train.grpo = build(train.grpo, "train.grpo")
    train.ppo = build(train.ppo, "train.ppo")
    return typed


def run(cfg: DictConfig, out: Path):
    """Check the configuration and the stage selection, then run the stages into ``out``; returns the pipeline's
    :class:`~experiments.pipeline.Context` (``ctx.outputs``: every stage's outputs; ``ctx.cfg``: the typed
    configuration of :func:`typed_config`)."""
    import experiments.stages  # noqa: F401  (registers the stages)
    from experiments.pipeline import PipelineError, plan, run_stages

    import_plugins(cfg.get("imports") or [])
    validate(OmegaConf.to_container(cfg, resolve=True))
    typed = typed_config(cfg)
    out.mkdir(parents=True, exist_ok=True)
    try:
        plan(typed.stages, out, typed)
        ctx = run_stages(typed.stages, out, typed)
    except PipelineError as exc:
        raise SystemExit(str(exc)) from None
    print(f"outputs in {out} (tensorboard --logdir {out})")
    return ctx


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    out = Path(cfg.out_dir) if cfg.out_dir else Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    run(cfg, out)


if __name__ == "__main__":
    sys.exit(main())

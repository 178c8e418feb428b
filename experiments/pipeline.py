"""The stage registry and the run directory: which stages run, in which order, what each reads and writes, and how an
interrupted run resumes.

A :class:`Stage` has a name, the names of the stages whose outputs it reads (``requires``) and a function
``run(ctx) -> dict`` returning its outputs (JSON-able: paths relative to the run directory, counts, timings). The
run directory holds ``state.json``:

``{"version": 1, "stages": {name: {"status": "done", "outputs": {...}, "seconds": float, "cpu_seconds": float,
"config": digest}}}`` (``seconds``: wall clock; ``cpu_seconds``: user + system CPU time of this process and its
reaped children, e.g. ``SubprocVecEnv`` workers, during the stage: what the stage costs on a machine shared with
other jobs, where the wall clock overstates it)

written atomically after every stage. A stage is **done** when its entry says so, its configuration digest (the
config sections it declares in ``config_keys``) is unchanged and every output path it listed still exists; a
rerun of the same command skips done stages (a killed run restarts where it stopped; stages that checkpoint
internally, SFT and GRPO, resume inside the stage). Changing a stage's configuration reruns it and every stage
after it that reads it.

:func:`plan` checks a selection before anything runs: unknown stage names, and stages whose inputs are neither
selected nor done in the run directory, fail at once with a message naming them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

STATE_FILE = "state.json"
STATE_VERSION = 1


class PipelineError(ValueError):
    """A stage selection that cannot run (the message names the stage and what is missing)."""


@dataclass(frozen=True)
class Stage:
    """One pipeline stage.

    Attributes:
        name: registry key (``stages=[...]`` on the command line).
        run: ``run(ctx) -> outputs`` (a dict; values that are paths are stored relative to the run directory).
        requires: stages whose outputs this one reads (they must be selected or already done).
        config_keys: config sections (dotted, e.g. ``"env"``, ``"train.sft"``) whose values decide this
            stage's outputs: a change reruns it.
        description: one line for ``--help`` style listings and logs.
    """

    name: str
    run: Callable[["Context"], dict[str, Any]]
    requires: tuple[str, ...] = ()
    config_keys: tuple[str, ...] = ()
    description: str = ""


@dataclass
class Context:
    """What a stage sees: the run directory, the (resolved) configuration, earlier stages' outputs, shared objects.

    Attributes:
        out: the run directory.
        cfg: the resolved configuration: the typed :class:`experiments.config.RunConfig` with the library configs
            built (``cfg.reward`` a :class:`envs.sim.reward.RewardConfig`, ``cfg.train.grpo`` a ``GRPOConfig``, ...;
            :func:`experiments.run.typed_config`); tests of the registry alone may pass a nested mapping.
        outputs: ``{stage: outputs}`` of the stages done so far (paths absolute).
        cache: objects shared within one process (scene sources, a TensorBoard writer), never persisted.
    """

    out: Path
    cfg: Any
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)

    def path(self, *parts: str) -> Path:
        """A path inside the run directory (parent folders created)."""
        p = self.out.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


REGISTRY: dict[str, Stage] = {}
"""Registered stages by name, in registration order (the default order of a run)."""


def register_stage(stage: Stage) -> Stage:
    """Add a stage to :data:`REGISTRY` (replacing one of the same name)."""
    REGISTRY[stage.name] = stage
    return stage


def plain(value: Any) -> Any:
    """``value`` with dataclasses (the typed run configuration and the library configs in it) as dicts, for JSON."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _digest(cfg: Any, keys: Sequence[str]) -> str:
    """A short hash of the config values at dotted ``keys`` (``cfg``: a typed configuration or a nested mapping)."""
    picked = {}
    for key in keys:
        node: Any = cfg
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else getattr(node, part, None)
        picked[key] = plain(node)
    return hashlib.sha256(json.dumps(picked, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_state(out: Path) -> dict[str, Any]:
    """The run directory's state (empty when there is none); ``PipelineError`` naming the file when unreadable."""
    path = out / STATE_FILE
    if not path.is_file():
        return {"version": STATE_VERSION, "stages": {}}
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PipelineError(f"{path}: cannot be read ({exc}); delete it to start the run over") from None
    if state.get("version") != STATE_VERSION or not isinstance(state.get("stages"), dict):
        raise PipelineError(f"{path}: not a pipeline state of version {STATE_VERSION}")
    return state


def save_state(out: Path, state: Mapping[str, Any]) -> None:
    """Write the state atomically (:func:`envs.atomic.atomic_write_text`)."""
    from envs.atomic import atomic_write_text

    atomic_write_text(out / STATE_FILE, json.dumps(state, indent=2, default=str))


def _relative(out: Path, value: Any) -> Any:
    if isinstance(value, Path):
        try:
            return {"path": str(value.resolve().relative_to(out.resolve()))}
        except ValueError:
            return {"path": str(value.resolve())}
    if isinstance(value, dict):
        return {k: _relative(out, v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_relative(out, v) for v in value]
    return value


def _absolute(out: Path, value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"path"}:
        p = Path(value["path"])
        return p if p.is_absolute() else out / p
    if isinstance(value, dict):
        return {k: _absolute(out, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_absolute(out, v) for v in value]
    return value


def _paths(value: Any) -> list[Path]:
    if isinstance(value, Path):
        return [value]
    if isinstance(value, dict):
        return [p for v in value.values() for p in _paths(v)]
    if isinstance(value, list):
        return [p for v in value for p in _paths(v)]
    return []


def done_outputs(out: Path, state: Mapping[str, Any], stage: Stage, cfg: Any) -> dict[str, Any] | None:
    """The outputs of ``stage`` when it is done in ``state`` with the same configuration and its files exist."""
    entry = state.get("stages", {}).get(stage.name)
    if not entry or entry.get("status") != "done" or entry.get("config") != _digest(cfg, stage.config_keys):
        return None
    outputs = _absolute(out, entry.get("outputs", {}))
    if not all(p.exists() for p in _paths(outputs)):
        return None
    return outputs


def plan(selected: Sequence[str], out: Path, cfg: Any,
         registry: Mapping[str, Stage] = REGISTRY) -> list[Stage]:
    """The stages to consider, in registry order, after checking the selection (see the module docstring).

    Raises:
        PipelineError: an unknown stage name, or a selected stage whose required stage is neither selected nor done.
    """
    unknown = [s for s in selected if s not in registry]
    if unknown:
        raise PipelineError(f"stages: unknown {unknown}; known: {list(registry)}")
    state = load_state(out)
    chosen = [stage for name, stage in registry.items() if name in set(selected)]
    for stage in chosen:
        for need in stage.requires:
            if need in selected:
                continue
            if done_outputs(out, state, registry[need], cfg) is None:
                raise PipelineError(
                    f"stage {stage.name!r} reads the outputs of {need!r}, which is not selected and not done in {out} "
                    f"(add it: stages=[{', '.join(dict.fromkeys([need, *selected]))}])")
    return chosen


def cpu_seconds() -> float:
    """User + system CPU time [s] of this process and its reaped child processes so far."""
    import resource

    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def run_stages(selected: Sequence[str], out: Path, cfg: Any, cache: dict[str, Any] | None = None,
               log: Callable[[str], None] = print, registry: Mapping[str, Stage] = REGISTRY) -> Context:
    """Run the selected stages in registry order, skipping done ones, recording each in ``state.json``.

    A stage whose inputs were rerun in this invocation is rerun too (its outputs would be stale).
    """
    stages = plan(selected, out, cfg, registry)
    state = load_state(out)
    ctx = Context(out=out, cfg=cfg, cache=cache if cache is not None else {})
    for name in registry:  # outputs of earlier runs that selected stages may read
        prior = done_outputs(out, state, registry[name], cfg)
        if prior is not None:
            ctx.outputs[name] = prior
    rerun: set[str] = set()
    for stage in stages:
        previous = done_outputs(out, state, stage, cfg)
        if previous is not None and not (set(stage.requires) & rerun):
            log(f"== {stage.name}: done in an earlier run, skipped ({out / STATE_FILE})")
            ctx.outputs[stage.name] = previous
            continue
        log(f"== {stage.name}: {stage.description}")
        state["stages"][stage.name] = {"status": "running", "config": _digest(cfg, stage.config_keys)}
        save_state(out, state)
        start, cpu_start = time.perf_counter(), cpu_seconds()
        outputs = stage.run(ctx)
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
        ctx.outputs[stage.name] = outputs
        state["stages"][stage.name] = {"status": "done", "outputs": _relative(out, outputs), "seconds": seconds,
                                       "cpu_seconds": cpu, "config": _digest(cfg, stage.config_keys)}
        save_state(out, state)
        rerun.add(stage.name)
        log(f"   {stage.name} took {seconds:.1f} s ({cpu:.1f} s CPU)")
    return ctx

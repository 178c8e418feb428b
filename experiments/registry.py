"""The registries of the pipeline: **agents** (the policy models a run can train: ``vla``, ``mlp``) and **methods** (the
rows of the results table: the learned methods and the reference planners), in the style of
:mod:`envs.scenes.sources`.

An :class:`Agent` says what a policy model sees (its replay env configuration), how its SFT stage trains it on the
data views the selected methods need, how an RL method builds and saves it, and how a trained one is loaded for
evaluation. A :class:`Method` says what to train for it (the SFT views it needs; an RL training function run by the
``grpo`` stage) and how to load it as an :class:`agents.base.Policy` for the ``eval`` stage; every registered method
can be selected with ``algo.methods=[...]`` and appears in the results table (:mod:`experiments.results`).

Adding an algorithm or a policy model is one module with one :func:`register_method` / :func:`register_agent` call
(imported by ``experiments/__init__.py`` for the built-ins: :mod:`experiments.agents`, :mod:`experiments.methods`); no
stage, config or results code changes. The registries bind library code (:mod:`agents`) to the run folder and the
config tree, which is why they live here and not in :mod:`agents`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from experiments.pipeline import Context

NO_LABEL_NOTE = "; states no safety label: language / risk acc n/a"
"""Appended to a row whose policy writes no safety label."""


@dataclass
class AgentConfig:
    """The learning policy (group ``agent``; each agent's node subclasses this)."""

    name: str = "vla"
    """A registered agent (:func:`agent_names`)."""


@dataclass(frozen=True)
class Agent:
    """A policy model the pipeline trains (group ``agent``).

    Attributes:
        name: ``agent=<name>`` on the command line.
        config: its Hydra node (an :class:`AgentConfig` dataclass with ``name`` defaulting to ``name``).
        env_config: ``(agent_cfg, reward) -> envs.replay_env.EnvConfig``: what the policy sees (and the learned rows
            are evaluated on), with the run's one reward config.
        train_sft: ``(ctx, views) -> outputs``: the ``sft`` stage for the SFT data views ``views``
            (``"positive"`` / ``"negative"``); outputs ``{view: path, f"{view}_seconds": s, ...}``.
        sft_policy: ``(ctx, view, name) -> Policy``: a trained SFT view as the row ``name``.
        rl_model: ``(ctx, anchors, start) -> GRPO``: a GRPO model of this agent (``start``: an SFT output or None).
        save_rl: ``(ctx, model, method) -> path``: where a trained GRPO row is saved.
        rl_policy: ``(ctx, method) -> Policy``: a trained GRPO row loaded for evaluation.
        label_accuracy: ``(ctx, policy, blank_bev=False) -> [AccuracyReport, ...]`` (the policy's, then the
            trivial predictors'; with ``blank_bev=True`` the policy's alone, stating its label from an all-zero
            image: the ``evaluate.blank_bev`` row), or None when the policy writes no safety label.
        no_label_note: appended to every row of an agent that writes no label.
        notes: row notes that differ for this agent (method name -> note).
    """

    name: str
    config: type
    env_config: Callable[[Any, Any], Any]
    train_sft: Callable[["Context", Sequence[str]], dict[str, Any]]
    sft_policy: Callable[["Context", str, str], Any]
    rl_model: Callable[["Context", bool, Any], Any]
    save_rl: Callable[["Context", Any, str], Any]
    rl_policy: Callable[["Context", str], Any]
    label_accuracy: Callable[["Context", Any], Sequence[Any]] | None = None
    no_label_note: str = NO_LABEL_NOTE
    notes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    """A row of the results table.

    Attributes:
        name: ``algo.methods=[<name>]`` (learned) / ``evaluate.planners=[<name>]`` (planner).
        kind: ``"learned"`` or ``"planner"``.
        load: ``ctx -> Policy``: what the ``eval`` stage drives (after the training stages).
        note: the row's note in the table.
        sft_views: SFT data views the ``sft`` stage must train for this row (its own, or the start of an RL row).
        train: ``ctx -> outputs`` run by the ``grpo`` stage (RL methods), or None (nothing to train there).
        states_label: whether the row's policy writes the safety label (when its agent can).
        privileged_view: evaluate on the state-only env (a planner reads the scorer's view, not the BEV).
    """

    name: str
    kind: str
    load: Callable[["Context"], Any]
    note: str = ""
    sft_views: tuple[str, ...] = ()
    train: Callable[["Context"], dict[str, Any]] | None = None
    states_label: bool = True
    privileged_view: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("learned", "planner"):
            raise ValueError(f"method {self.name!r}: kind must be 'learned' or 'planner', got {self.kind!r}")


_AGENTS: dict[str, Agent] = {}
_METHODS: dict[str, Method] = {}


def register_agent(agent: Agent, replace: bool = False) -> Agent:
    """Add ``agent`` (``ValueError`` if the name is taken, unless ``replace``)."""
    if agent.name in _AGENTS and not replace:
        raise ValueError(f"agent {agent.name!r} is already registered")
    _AGENTS[agent.name] = agent
    return agent


def register_method(method: Method, replace: bool = False) -> Method:
    """Add ``method`` (``ValueError`` if the name is taken, unless ``replace``). Registration order is the table's
    row order among methods of the same kind."""
    if method.name in _METHODS and not replace:
        raise ValueError(f"method {method.name!r} is already registered")
    _METHODS[method.name] = method
    return method


def unregister_method(name: str) -> None:
    """Remove a method (tests that register their own)."""
    _METHODS.pop(name, None)


def get_agent(name: str) -> Agent:
    """The agent ``name`` (``KeyError`` naming the known ones)."""
    if name not in _AGENTS:
        raise KeyError(f"agent.name: unknown {name!r}; known: {sorted(_AGENTS)}")
    return _AGENTS[name]


def get_method(name: str) -> Method:
    """The method ``name`` (``KeyError`` naming the known ones)."""
    if name not in _METHODS:
        raise KeyError(f"unknown method {name!r}; known: {list(_METHODS)}")
    return _METHODS[name]


def agent_names() -> list[str]:
    """Registered agents, in registration order."""
    return list(_AGENTS)


def method_names(kind: str | None = None) -> list[str]:
    """Registered methods (of ``kind``), in registration order."""
    return [m.name for m in _METHODS.values() if kind is None or m.kind == kind]


def row_order() -> list[str]:
    """The table's row order: planners, then learned methods, each in registration order."""
    return method_names("planner") + method_names("learned")

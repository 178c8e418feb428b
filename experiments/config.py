"""Typed Hydra configuration of the pipeline (the only place besides ``run.py`` that knows about Hydra).

Groups: ``env`` (the scene source: ``bank`` = built-in synthetic scenario bank, ``deepaccident`` = a local
DeepAccident folder, ``carla`` = episodes recorded on live CARLA 0.9.16 servers, see :mod:`experiments.carla`). Every field has a one-line docstring; override any of them on the command line, e.g.
``python -m experiments.run env.num_scenes=200 evaluate.closed_loop=false``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class SourceConfig:
    """A scene source (the ``env`` group)."""

    name: str = "bank"
    """``bank`` (built-in synthetic accident scenario bank) or ``deepaccident``."""
    num_scenes: int = 60
    """bank: number of synthetic scenes (a balanced mix of every scenario type, some normal driving)."""
    seed: int = 0
    """bank: generator seed (same seed, same scenes)."""
    scenario_types: Optional[List[str]] = None
    """bank: restrict to these scenario types (default: all)."""
    root: Optional[str] = None
    """deepaccident: the dataset root folder (with train.txt / val.txt / test.txt)."""
    split: Optional[str] = None
    """deepaccident: ``train``, ``val``, ``test`` or null (every scenario folder)."""


@dataclass
class DeepAccidentSourceConfig(SourceConfig):
    """A local DeepAccident download (no map: PDMS is replaced by the map-free score, and said so)."""

    name: str = "deepaccident"
    root: Optional[str] = MISSING
    split: Optional[str] = "val"


@dataclass
class CarlaSourceConfig(SourceConfig):
    """Episodes driven on CARLA 0.9.16 servers (``docker compose up carla``) and recorded (:mod:`experiments.carla`)."""

    name: str = "carla"
    hosts: List[str] = field(default_factory=lambda: ["localhost:2000"])
    """CARLA servers ``host:port``, one per environment worker (each gets its own Traffic Manager port)."""
    backend: str = "carla"
    """``carla`` (the client library, the ``[carla]`` extra) or ``standin`` (the in-process stand-in, for tests)."""
    town: Optional[str] = "Town03"
    """Town to load (null: keep the server's)."""
    num_episodes: int = 4
    """Episodes to drive and record."""
    episode_time: float = 15.0
    """Episode length including the 2 s warm-up [s]."""
    num_background: int = 8
    """Background vehicles on the Traffic Manager."""
    policy: str = "pdm_closed_like"
    """Baseline that drives the episodes (``agents.baselines.BASELINES``)."""
    connect_timeout: float = 3.0
    """Start-up check: TCP probe and version query timeout per server [s]."""


@dataclass
class RenderStage:
    """BEV images of a few scenes for a person to look at."""

    enabled: bool = True
    """Write PNGs and a contact sheet."""
    num_scenes: int = 9
    """Scenes to render."""
    size: int = 256
    """Image size [px]."""
    meters_per_pixel: float = 0.25
    """Resolution [m/px]."""


@dataclass
class MineStage:
    """Counterfactual anchor-pair mining (``counterfactual.miner``)."""

    enabled: bool = True
    """Mine the source's scenes into anchor pairs (parquet)."""
    lead_times: List[float] = field(default_factory=lambda: [1.0, 2.0, 3.0])
    """Decision times before each risky moment [s]."""


@dataclass
class EvaluateStage:
    """Baseline evaluation in the replay environment."""

    enabled: bool = True
    """Evaluate the baselines and print the results table."""
    baselines: List[str] = field(default_factory=lambda: ["constant_velocity", "log_replay", "pdm_closed_like"])
    """Policies to evaluate (see ``agents.baselines.BASELINES``)."""
    open_loop: bool = True
    """One scored decision per scene (NAVSIM-style)."""
    closed_loop: bool = True
    """One closed-loop episode per scene (re-planning every 0.5 s)."""


@dataclass
class RunConfig:
    """The pipeline: scenes -> summary -> BEV renders -> anchor-pair mining -> baseline evaluation."""

    defaults: List[Any] = field(default_factory=lambda: ["_self_", {"env": "bank"}])
    env: SourceConfig = MISSING
    """Scene source (group ``env``: ``bank``, ``deepaccident`` or ``carla``)."""
    out_dir: Optional[str] = None
    """Output folder (default: Hydra's run folder, ``outputs/<date>/<time>``)."""
    progress: bool = True
    """Show progress bars."""
    tensorboard: bool = True
    """Log metrics and per-scene reward curves to ``<out_dir>/tb`` (``tensorboard --logdir outputs``)."""
    render: RenderStage = field(default_factory=RenderStage)
    mine: MineStage = field(default_factory=MineStage)
    evaluate: EvaluateStage = field(default_factory=EvaluateStage)


def register_configs() -> None:
    """Register the structured configs with Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="config", node=RunConfig)
    cs.store(group="env", name="bank", node=SourceConfig)
    cs.store(group="env", name="deepaccident", node=DeepAccidentSourceConfig)
    cs.store(group="env", name="carla", node=CarlaSourceConfig)

"""Typed Hydra configuration of the pipeline (with :mod:`experiments.run`, the only place that knows about Hydra).

Config groups (``python -m experiments.run <group>=<option> <field>=<value>``), each backed by a dataclass here;
``_target_`` names the object a group builds (``hydra.utils.instantiate``):

* ``env``: the scene source: ``bank`` (built-in **synthetic** scenario bank: training and held-out seeds),
  ``deepaccident`` (a local DeepAccident folder: training and held-out splits), ``carla`` (episodes recorded on live
  CARLA 0.9.16 servers, :mod:`experiments.carla`);
* ``agent``: the learning policy: ``vla`` (the VLA of :mod:`agents.vla`, built from ``_target_``
  :class:`agents.vla.model.VLAConfig`) or ``mlp`` (the Gaussian trajectory policy of :mod:`agents.grpo`);
* ``algo``: which methods run: ``all`` (default: positive-only SFT, negative-enhanced SFT, SB3 PPO, vanilla GRPO,
  anchor-GRPO), or one of ``sft_positive``, ``sft_negative``, ``ppo``, ``grpo``, ``anchor_grpo`` (with what it
  needs);
* ``reward``: the env reward (``_target_`` :class:`envs.replay_env.EnvConfig` fields): ``sp_pdms`` (default) or
  ``pdms`` (NAVSIM's EP);
* ``train``: budgets: ``default`` (the whole method in about 10 minutes on 2 CPU cores) or ``paper`` (the larger
  documented configuration).

Committed experiment files (``experiments/conf/experiment/*.yaml``, ``+experiment=<name>``) hold the paper's runs;
``-m seed=0,1,2`` sweeps seeds and aggregates them into one table (:mod:`experiments.aggregate`). Every field has a
one-line docstring.
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
    """``bank`` (built-in synthetic accident scenario bank), ``deepaccident`` or ``carla``."""
    num_scenes: int = 60
    """bank: training scenes (a balanced mix of every scenario type, some normal driving)."""
    seed: int = 0
    """bank: training generator seed (same seed, same scenes)."""
    eval_num_scenes: int = 16
    """bank: held-out scenes for the evaluation."""
    eval_seed: int = 1000
    """bank: held-out generator seed (never trained on; must differ from ``seed``)."""
    scenario_types: Optional[List[str]] = None
    """bank: restrict to these scenario types (default: all)."""
    root: Optional[str] = None
    """deepaccident: the dataset root folder (with train.txt / val.txt / test.txt)."""
    split: Optional[str] = None
    """deepaccident: training split, ``train``, ``val``, ``test`` or null (every scenario folder)."""
    eval_split: Optional[str] = None
    """deepaccident: held-out split (null: the training split's scenes are evaluated too, and said so)."""


@dataclass
class DeepAccidentSourceConfig(SourceConfig):
    """A local DeepAccident download (no map: PDMS is replaced by the map-free score, and said so)."""

    name: str = "deepaccident"
    root: Optional[str] = MISSING
    split: Optional[str] = "train"
    eval_split: Optional[str] = "val"


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
class RenderConfig:
    """BEV images of a few training scenes for a person to look at (stage ``collect``)."""

    enabled: bool = True
    """Write PNGs and a contact sheet."""
    num_scenes: int = 9
    """Scenes to render."""
    size: int = 256
    """Image size [px]."""
    meters_per_pixel: float = 0.25
    """Resolution [m/px]."""


@dataclass
class MineConfig:
    """Counterfactual anchor-pair mining (stage ``mine``, :mod:`counterfactual.miner`)."""

    lead_times: List[float] = field(default_factory=lambda: [1.0, 2.0, 3.0])
    """Decision times before each risky moment [s]."""


@dataclass
class AgentConfig:
    """The learning policy (group ``agent``)."""

    name: str = "vla"
    """``vla`` or ``mlp``."""


@dataclass
class VLAAgentConfig(AgentConfig):
    """The VLA (:mod:`agents.vla`): a tiny random-init LLaVA by default, or a pretrained VLM from a local folder."""

    name: str = "vla"
    model: Any = field(default_factory=lambda: {"_target_": "agents.vla.model.VLAConfig"})
    """Model sizes (``_target_: agents.vla.model.VLAConfig``; override fields, e.g. ``agent.model.text_layers=4``)."""
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


@dataclass
class MLPAgentConfig(AgentConfig):
    """The Gaussian trajectory policy of :mod:`agents.grpo` (fast; SFT rows are behaviour cloning)."""

    name: str = "mlp"
    bev: str = "semantic64"
    """Observation: ``semantic64`` (64 px semantic BEV, CNN features) or ``none`` (state only)."""
    log_std_init: float = -1.0
    """Initial log-std of the Gaussian (normalised action units)."""


METHODS = ("sft_positive", "sft_negative", "ppo", "grpo", "anchor_grpo")
"""Learned methods, in table order."""


@dataclass
class AlgoConfig:
    """Which learned methods run (group ``algo``)."""

    methods: List[str] = field(default_factory=lambda: list(METHODS))
    """Learned methods (:data:`METHODS`); GRPO rows start from the negative-enhanced SFT policy."""


@dataclass
class RewardConfig:
    """The env reward (group ``reward``; fields of :class:`envs.replay_env.EnvConfig`)."""

    _target_: str = "envs.replay_env.EnvConfig"
    reward_score: str = "sp_pdms"
    """``sp_pdms`` (EP against the safe-progress reference) or ``pdms`` (NAVSIM's EP)."""
    w_score: float = 1.0
    """Weight of the score."""
    w_collision: float = 1.0
    """Weight of the scorer's collision term (any contact in the 4 s horizon)."""
    w_terminal_collision: float = 1.0
    """Closed loop: penalty when the simulated ego collides."""


@dataclass
class TrainConfig:
    """Budgets of the learning stages (group ``train``)."""

    sft_steps: int = 250
    """SFT optimizer steps per mode (the same for both modes)."""
    sft_batch_size: int = 16
    """SFT examples per step."""
    sft_lr: float = 1e-3
    """SFT peak learning rate."""
    expert_frames: int = 4
    """Safe expert-log decisions per training scene in the SFT data."""
    rl_budget: int = 64
    """Environment steps per GRPO / PPO run (equal for every RL method)."""
    rl_n_steps: int = 16
    """Rollout length per env between updates (GRPO and PPO)."""
    n_envs: int = 1
    """Parallel training envs (``SubprocVecEnv`` when > 1)."""
    group_size: int = 4
    """GRPO's G: trajectories sampled per state."""
    grpo_lr: float = 1e-4
    """GRPO learning rate."""
    beta: float = 0.04
    """GRPO KL weight to the SFT reference."""
    threads: int = 1
    """Torch CPU threads per process (1: the measured best on shared CPUs)."""


@dataclass
class EvaluateConfig:
    """The evaluation on held-out scenes (stage ``eval``)."""

    planners: List[str] = field(default_factory=lambda: ["pdm_closed_like", "safe_oracle"])
    """Reference planners in the table (``agents.baselines.BASELINES``; ``safe_oracle`` knows the logged future)."""
    open_loop: bool = True
    """One scored decision per held-out scene (NAVSIM-style PDMS)."""
    closed_loop: bool = True
    """One closed-loop episode per held-out scene (collision rate, route completion, driving score)."""


@dataclass
class RunConfig:
    """The pipeline ``collect -> mine -> sft -> grpo -> eval`` (:mod:`experiments.stages`)."""

    env: SourceConfig = MISSING
    """Scene source (group ``env``)."""
    agent: AgentConfig = MISSING
    """Learning policy (group ``agent``)."""
    algo: AlgoConfig = MISSING
    """Learned methods (group ``algo``)."""
    reward: RewardConfig = MISSING
    """Env reward (group ``reward``)."""
    train: TrainConfig = MISSING
    """Budgets (group ``train``)."""
    stages: List[str] = field(default_factory=lambda: ["collect", "mine", "sft", "grpo", "eval"])
    """Stages to run (a finished stage of the same run folder is skipped: rerun to resume)."""
    seed: int = 0
    """Run seed (model initialisation, data order, sampling); sweep with ``-m seed=0,1,2``."""
    out_dir: Optional[str] = None
    """Run folder (default: Hydra's, ``outputs/<date>/<time>``; reuse one to resume)."""
    progress: bool = True
    """Show progress bars."""
    tensorboard: bool = True
    """Log every stage under ``<out_dir>/tb`` (``tensorboard --logdir outputs``)."""
    render: RenderConfig = field(default_factory=RenderConfig)
    mine: MineConfig = field(default_factory=MineConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)


def register_configs() -> None:
    """Register the structured configs with Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=RunConfig)
    cs.store(group="env", name="bank", node=SourceConfig)
    cs.store(group="env", name="deepaccident", node=DeepAccidentSourceConfig)
    cs.store(group="env", name="carla", node=CarlaSourceConfig)
    cs.store(group="agent", name="vla", node=VLAAgentConfig)
    cs.store(group="agent", name="mlp", node=MLPAgentConfig)
    cs.store(group="algo", name="all", node=AlgoConfig)
    for method in METHODS:
        cs.store(group="algo", name=method, node=AlgoConfig(methods=[method]))
    cs.store(group="reward", name="sp_pdms", node=RewardConfig)
    cs.store(group="reward", name="pdms", node=RewardConfig(reward_score="pdms"))
    cs.store(group="train", name="default", node=TrainConfig)
    cs.store(group="train", name="paper", node=TrainConfig(sft_steps=800, rl_budget=1024, rl_n_steps=64, n_envs=2,
                                                           group_size=8))

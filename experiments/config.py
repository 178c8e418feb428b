"""Typed Hydra configuration of the pipeline (with :mod:`experiments.run`, the only place that knows about Hydra).

Config groups (``python -m experiments.run <group>=<option> <field>=<value>``), each backed by a dataclass here;
``_target_`` names the object a group builds (``hydra.utils.instantiate``):

* ``env``: the scene source: ``bank`` (built-in **synthetic** scenario bank: training and held-out seeds),
  ``deepaccident`` (a local DeepAccident folder: training and held-out splits), ``carla`` (episodes recorded on live
  CARLA 0.9.16 servers, :mod:`experiments.carla`);
* ``agent``: the learning policy: ``vla`` (the VLA of :mod:`agents.vla`, built from ``_target_``
  :class:`agents.vla.model.VLAConfig`) or ``mlp`` (the Gaussian trajectory policy of :mod:`agents.rl.grpo`): one
  option per agent of :mod:`experiments.registry` (each agent's node is defined with it, :mod:`experiments.agents`);
* ``algo``: which methods run: ``all`` (default: positive-only SFT, negative-enhanced SFT, SB3 PPO, vanilla GRPO,
  anchor-GRPO), or one of ``sft_positive``, ``sft_negative``, ``ppo``, ``grpo``, ``anchor_grpo`` (with what it
  needs): one option per learned method of the registry (:mod:`experiments.methods`);
* ``reward``: the one reward (``_target_`` :class:`envs.sim.reward.RewardConfig`, instantiated once and used by the replay
  env, the CARLA env and GRPO's group score): ``progress`` (default: the closed-loop step reward is route progress
  first; SP-PDMS in open loop and GRPO's group score), ``sp_pdms`` (the step reward is the SP-PDMS score) or ``pdms``
  (NAVSIM's EP);
* ``train``: the learning stages' settings, nested and typed: ``train.sft`` (:class:`agents.sft.trainer.SFTConfig`),
  ``train.bc`` (:class:`agents.rl.bc.BCConfig`, the MLP agent's SFT analogue), ``train.grpo``
  (:class:`agents.rl.grpo.config.GRPOConfig`), ``train.ppo`` (:class:`agents.rl.ppo.PPOBaselineConfig`), each with
  ``_target_`` and every field of its class on the command line (``train.grpo.clip_range=0.1``), plus the budgets;
  presets ``default`` (the whole method in about 10 minutes on 2 CPU cores) or ``paper``.

The nested nodes are generated from the library dataclasses (:func:`schema`): their fields, types and defaults are
defined once, in the library; a preset states only what it changes. :func:`build` turns a node into the library
object, whose own checks validate every field before any stage starts (:mod:`experiments.run`).

Committed experiment files (``experiments/conf/experiment/*.yaml``, ``+experiment=<name>``) hold the paper's runs;
``-m seed=0,1,2`` sweeps seeds and aggregates them into one table (:mod:`experiments.aggregate`). Every field has a
one-line docstring.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from agents.rl.bc import BCConfig
from agents.rl.grpo.config import GRPOConfig
from agents.rl.ppo import PPOBaselineConfig
from agents.sft.trainer import SFTConfig
from envs.sim.reward import RewardConfig as _RewardConfig
from experiments.registry import AgentConfig, agent_names, get_agent, method_names
from experiments.schema import schema


@dataclass
class SourceConfig:
    """A scene source (the ``env`` group)."""

    name: str = "bank"
    """``bank`` (built-in synthetic accident scenario bank), ``deepaccident`` or ``carla``."""
    num_scenes: int = 60
    """bank: training scenes (a balanced mix of every scenario type, some normal driving)."""
    seed: int = 0
    """bank: training generator seed (same seed, same scenes); carla: first training episode's reset seed."""
    eval_num_scenes: int = 16
    """bank: held-out scenes for the evaluation."""
    eval_seed: int = 1000
    """bank: held-out generator seed (never trained on; must differ from ``seed``); carla: first held-out episode's
    reset seed (the held-out seed range may not overlap the training one)."""
    scenario_types: Optional[List[str]] = None
    """bank: restrict to these scenario types (default: all)."""
    outcomes: str = "collision"
    """bank: ``collision`` (every accident scene's log collides) or ``varied`` (outcome-varied typologies: benign /
    near-miss / collision decided by the geometry, ``envs.scenes.bank.outcomes``)."""
    outcome_mix: Optional[List[float]] = None
    """bank, ``outcomes=varied``: wanted (benign, near_miss, collision) shares (null: 0.35 / 0.30 / 0.35)."""
    difficulty: float = 0.5
    """bank, ``outcomes=varied``: hazard difficulty in [0, 1] (0.5: the mix as given; higher: more collisions,
    closer near-misses)."""
    expert: str = "logged"
    """bank, ``outcomes=varied``: the ego of near-miss / benign scenes keeps its speed plan (``logged``) or reacts
    to its hazard (``reacting``: brakes for a seen, projected conflict; the outcome solved against it,
    ``envs.scenes.bank.react``, docs/scenes.md#reacting-expert)."""
    roads: str = "classic"
    """bank: ``classic`` (the six fixed layouts) or ``families`` (parametric road-geometry families,
    ``envs.scenes.road_families``; docs/scenes.md)."""
    road_families: Optional[List[str]] = None
    """bank, ``roads=families``: training families, names or one split ``[train]`` / ``[held_out]`` / ``[all]``
    (null: ``train``, every family but the held-out ``curve``)."""
    eval_road_families: Optional[List[str]] = None
    """bank, ``roads=families``: held-out evaluation families (null: as ``road_families``; ``[held_out]``: the
    family never trained on, to measure generalisation to unseen road geometry)."""
    background_density: float = 1.0
    """bank: scale of the background traffic per scene (1.0: 3-12 agents wanted; 0: none)."""
    start_steering: str = "log"
    """Replay env, closed loop (training rollouts and the evaluation): the steering angle an episode starts from,
    ``log`` (the logged path's, so a start mid-turn keeps turning) or ``zero`` (straight wheels, the behaviour before
    2026-12-07): ``envs.replay_env.EnvConfig.start_steering``."""
    frame_sampling: str = "even"
    """How the sampled decisions of every scene (the SFT data's expert rows, training and held-out) are chosen
    (``counterfactual.frame_labels.FRAME_SAMPLING``): ``even`` (default: up to ``train.expert_frames`` safe frames
    evenly spread), ``hazard_window`` or ``hazard_dense`` (every safe frame of the designated hazard's window plus one
    outside it, one frame in a scene without a hazard; ``env=world_v2``'s, docs/safety_labels.md)."""
    root: Optional[str] = None
    """deepaccident: the dataset root folder (with train.txt / val.txt / test.txt); carla: the recordings folder
    (``train/`` and ``eval/``; default ``<out>/carla``)."""
    split: Optional[str] = None
    """deepaccident: training split, ``train``, ``val``, ``test`` or null (every scenario folder)."""
    eval_split: Optional[str] = None
    """deepaccident: held-out split (null: the training split's scenes are evaluated too, and said so)."""
    vec_backend: str = "local"
    """Where the GRPO / PPO training envs (``train.n_envs``) run: ``local`` (``DummyVecEnv`` for one,
    ``SubprocVecEnv`` for more) or ``ray`` (Ray actors, ``env.envs_per_worker`` envs each, :class:`envs.vec.RayVecEnv`,
    on this machine or the cluster of ``env.ray_address``; a worker that dies is restarted and its episodes
    truncated)."""
    ray_address: Optional[str] = None
    """``vec_backend=ray``: the Ray cluster to join (``auto``, ``HOST:PORT``, ``ray://HOST:10001``; null: start a
    local Ray)."""
    envs_per_worker: int = 1
    """``vec_backend=ray``: envs each Ray actor owns and steps in one call (``train.n_envs`` envs on
    ``ceil(n_envs / envs_per_worker)`` actors; one round trip carries that many env steps, same rollouts as 1)."""

    def __post_init__(self) -> None:
        from counterfactual.frame_labels import FRAME_SAMPLING
        from envs.replay_env import START_STEERING

        if self.start_steering not in START_STEERING:
            raise ValueError(f"env.start_steering: expected one of {list(START_STEERING)}, got {self.start_steering!r}")
        if self.frame_sampling not in FRAME_SAMPLING:
            raise ValueError(f"env.frame_sampling: expected one of {list(FRAME_SAMPLING)}, got {self.frame_sampling!r}")


@dataclass
class DeepAccidentSourceConfig(SourceConfig):
    """A local DeepAccident download (no map: PDMS is replaced by the map-free score, and said so)."""

    name: str = "deepaccident"
    root: Optional[str] = MISSING
    split: Optional[str] = "train"
    eval_split: Optional[str] = "val"
    frame_convention: str = "auto"
    """deepaccident: ``auto`` (the scenarios' V2X views decide, ``docs/deepaccident.md``), ``one_frame`` or ``mixed``
    (forced: a scenario whose views disagree under it is refused)."""


@dataclass
class CarlaSourceConfig(SourceConfig):
    """Episodes driven on CARLA 0.9.16 servers (``docker compose up carla``) and recorded (:mod:`experiments.carla`):
    training episodes with reset seeds ``seed, seed + 1, ...``, held-out ones with ``eval_seed, ...``; every field is
    checked before anything runs (:func:`experiments.carla.validate_carla`)."""

    name: str = "carla"
    hosts: List[str] = field(default_factory=lambda: ["localhost:2000"])
    """CARLA servers ``host:port`` (ports 1..65535), one worker each, recording in parallel (worker ``i`` uses
    ``hosts[i]`` and Traffic Manager port ``traffic_manager_port + i``)."""
    backend: str = "carla"
    """``carla`` (the client library, the ``[carla]`` extra) or ``standin`` (the in-process stand-in, for tests)."""
    town: Optional[str] = "Town03"
    """Town to load (null: keep the server's)."""
    num_episodes: int = 4
    """Training episodes to drive and record (>= 1; into ``<root>/train``)."""
    eval_num_episodes: int = 2
    """Held-out episodes (>= 1; reset seeds from ``eval_seed``, into ``<root>/eval``), evaluated as replays."""
    episode_time: float = 15.0
    """Episode length including the 2 s warm-up [s] (>= 2.5: the warm-up plus one 0.5 s decision)."""
    num_background: int = 8
    """Background vehicles on the Traffic Manager."""
    policy: str = "pdm_closed_like"
    """Baseline that drives the episodes (``agents.baselines.BASELINES``)."""
    connect_timeout: float = 3.0
    """Start-up check: TCP probe and version query timeout per server [s]; every other RPC is bounded by three
    times it (``CarlaEnvConfig.client_timeout``)."""
    tick_timeout: float = 5.0
    """Bound of every ``world.tick`` [s] (``CarlaEnvConfig.tick_timeout``)."""
    sensor_timeout: float = 2.0
    """Wait for the current frame's sensor data [s] (``CarlaEnvConfig.sensor_timeout``)."""
    load_world_timeout: float = 120.0
    """Bound of loading ``town`` [s] (``CarlaEnvConfig.load_world_timeout``; a first load often takes a minute)."""
    traffic_manager_port: int = 8000
    """Base Traffic Manager port (worker ``i`` uses ``traffic_manager_port + i``; all within 1..65535)."""
    episode_retries: int = 2
    """Retries of an episode that failed on a server error or time-out (same seed) before it is skipped with a
    warning (>= 0; the number skipped is in the collect summary)."""


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
    backend: str = "serial"
    """``serial`` (in this process) or ``ray``: scene shards mined on Ray tasks (:mod:`counterfactual.distributed`;
    the cluster of ``env.ray_address``, else a local Ray); the pairs are the serial run's, in the same order."""
    workers: int = 2
    """``backend=ray``: shards mined at once (one CPU each)."""
    near_miss_rule: str = "ttc"
    """Which near-misses become anchor pairs (:attr:`counterfactual.miner.MinerConfig.near_miss_rule`): ``ttc``
    (default: only a scorer failure makes a negative; near-miss moments rarely yield a pair) or ``clearance`` (a
    pass closer than the clearance margin every positive must keep is a near-miss and its driven trajectory a
    negative; ``env=world_v2`` sets it)."""

    def __post_init__(self) -> None:
        from counterfactual.distributed import MINE_BACKENDS
        from counterfactual.miner import NEAR_MISS_RULES

        if self.near_miss_rule not in NEAR_MISS_RULES:
            raise ValueError(f"mine.near_miss_rule: expected one of {list(NEAR_MISS_RULES)}, got {self.near_miss_rule!r}")

        if self.backend not in MINE_BACKENDS:
            raise ValueError(f"mine.backend: expected one of {list(MINE_BACKENDS)}, got {self.backend!r}")
        if self.workers < 1:
            raise ValueError(f"mine.workers: expected an int >= 1, got {self.workers}")


@dataclass
class AlgoConfig:
    """Which learned methods run (group ``algo``)."""

    methods: List[str] = field(default_factory=lambda: method_names("learned"))
    """Learned methods (registered in :mod:`experiments.registry`; default: every one, in table order); GRPO rows
    start from the negative-enhanced SFT policy."""


RewardConfig = schema(_RewardConfig)
"""The ``reward`` group's node (``_target_: envs.sim.reward.RewardConfig``; its fields and defaults are the library's)."""
SFTNode, BCNode, GRPONode, PPONode = (schema(c) for c in (SFTConfig, BCConfig, GRPOConfig, PPOBaselineConfig))


@dataclass
class TrainConfig:
    """The learning stages (group ``train``): the nested library configs and the budgets shared by the RL rows."""

    sft: SFTNode = field(default_factory=lambda: SFTNode(max_steps=250))
    """VLA SFT (:class:`agents.sft.trainer.SFTConfig`; ``seed``, ``progress`` and ``tensorboard`` are set from the
    run's ``seed`` / ``progress`` / ``tensorboard``), the same for both data views."""
    bc: BCNode = field(default_factory=lambda: BCNode(steps=250))
    """MLP agent: behaviour cloning, the SFT analogue (:class:`agents.rl.bc.BCConfig`)."""
    grpo: GRPONode = field(default_factory=lambda: GRPONode(learning_rate=1e-4, n_steps=16, batch_size=16,
                                                           group_size=4, log_images_every=4))
    """Vanilla GRPO and anchor-GRPO (:class:`agents.rl.grpo.config.GRPOConfig`; ``anchors`` is set by the method:
    off for ``grpo``, on for ``anchor_grpo``)."""
    ppo: PPONode = field(default_factory=lambda: PPONode(n_steps=16, batch_size=16))
    """The SB3 PPO baseline (:class:`agents.rl.ppo.PPOBaselineConfig`)."""
    expert_frames: int = 4
    """Safe expert-log decisions per training scene in the SFT data."""
    rl_budget: int = 64
    """Environment steps per GRPO / PPO run (equal for every RL method)."""
    n_envs: int = 1
    """Parallel training envs (``SubprocVecEnv`` when > 1)."""
    threads: int = 1
    """Torch CPU threads per process (1: the measured best on shared CPUs)."""
    online_mining: bool = False
    """anchor-GRPO also mines anchor pairs from its own closed-loop crashes during training
    (:class:`counterfactual.online.CollisionMiningWrapper`)."""

    def __post_init__(self) -> None:
        for name in ("expert_frames", "rl_budget", "n_envs", "threads"):
            value = getattr(self, name)
            if isinstance(value, int) and value < 1:
                raise ValueError(f"train.{name}: expected >= 1, got {value}")


@dataclass
class EvaluateConfig:
    """The evaluation on held-out scenes (stage ``eval``)."""

    planners: List[str] = field(default_factory=lambda: ["pdm_closed_like", "safe_oracle"])
    """Reference planners in the table (``agents.baselines.BASELINES``; ``safe_oracle`` knows the logged future)."""
    open_loop: bool = True
    """One scored decision per held-out scene (NAVSIM-style PDMS)."""
    closed_loop: bool = True
    """One closed-loop episode per held-out scene (collision rate, route completion, driving score)."""
    blank_bev: bool = False
    """Also a row ``<method> (blank BEV)`` per label-stating method: its language / risk accuracy with an all-zero
    BEV (the "does it read the scene" ablation; one more greedy pass over the held-out decisions per row)."""
    compare: List[List[str]] = field(default_factory=list)
    """Pairs ``[a, b]`` of table rows (e.g. ``[[sft_positive, sft_negative]]``) whose paired difference ``b - a`` on
    the same held-out scenes, with a bootstrap 95% interval per column, is printed after a multirun
    (:mod:`experiments.compare`; any runs: ``python -m experiments.compare RUN_DIR... --a A --b B``)."""
    bootstrap: int = 10000
    """Bootstrap resamples of the ``compare`` intervals (>= 100)."""
    decisions: str = "greedy"
    """How the learned rows drive (open and closed loop): ``greedy`` (the policy's mode; the default) or ``sampled``
    (one sample of the distribution GRPO trains per decision: the VLA's tokens at ``evaluate.temperature``, the MLP's
    Gaussian at its std; seeded from ``seed``, so a rerun repeats). The language / risk accuracy stays greedy.
    Planners are deterministic either way. See docs/grpo_ablation.md, "Greedy or sampled decisions"."""
    temperature: float = 1.0
    """Sampling temperature of ``decisions=sampled`` (token policies)."""

    def __post_init__(self) -> None:
        from agents.base import DECISIONS

        if self.decisions not in DECISIONS:
            raise ValueError(f"evaluate.decisions: expected one of {DECISIONS}, got {self.decisions!r}")
        if not self.temperature > 0:
            raise ValueError(f"evaluate.temperature: expected > 0, got {self.temperature!r}")
        for pair in self.compare:
            if len(pair) != 2 or pair[0] == pair[1]:
                raise ValueError(f"evaluate.compare: each entry must be two different rows [a, b], got {list(pair)}")
        if self.bootstrap < 100:
            raise ValueError(f"evaluate.bootstrap: expected >= 100 resamples, got {self.bootstrap}")


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
    """The reward (group ``reward``, ``_target_: envs.sim.reward.RewardConfig``)."""
    train: TrainConfig = MISSING
    """Learning-stage configs and budgets (group ``train``)."""
    imports: List[str] = field(default_factory=list)
    """Python modules imported before the run, e.g. ``imports=[mypkg.my_method]``: each may register methods or agents
    (:mod:`experiments.registry`) that ``algo.methods`` / ``evaluate.planners`` then name."""
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


WORLD_V2 = SourceConfig(outcomes="varied", roads="families", eval_road_families=["all"], frame_sampling="hazard_dense")
"""``env=world_v2``: the bank of issue #28's world v2 (SYNTHETIC): outcome-varied typologies (benign / near-miss /
collision decided by the geometry, a minority of collisions) on parametric road families; training on every family
but the held-out ``curve``, evaluation on scenes of every family (the held-out one included); sampled decisions by
the ``hazard_dense`` rule (every safe frame of the hazard's window, one frame of a scene without a hazard: the label
honesty of issue #28, docs/safety_labels.md#decision-composition-the-hazard_dense-rule)."""


def register_configs() -> None:
    """Register the structured configs with Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=RunConfig)
    cs.store(group="env", name="bank", node=SourceConfig)
    cs.store(group="env", name="world_v2", package="_global_",
             node={"env": WORLD_V2, "mine": {"near_miss_rule": "clearance"}})
    cs.store(group="env", name="deepaccident", node=DeepAccidentSourceConfig)
    cs.store(group="env", name="carla", node=CarlaSourceConfig)
    for name in agent_names():
        cs.store(group="agent", name=name, node=get_agent(name).config)
    cs.store(group="algo", name="all", node=AlgoConfig)
    for method in method_names("learned"):
        cs.store(group="algo", name=method, node=AlgoConfig(methods=[method]))
    cs.store(group="reward", name="progress", node=RewardConfig)
    cs.store(group="reward", name="sp_pdms", node=RewardConfig(kind="score"))
    cs.store(group="reward", name="pdms", node=RewardConfig(kind="score", reward_score="pdms"))
    cs.store(group="train", name="default", node=TrainConfig)
    # paper: about 1 hour of CPU per seed with +experiment=paper (README, "Paper preset": measured per stage at a
    # smaller scale and extrapolated; GRPO's 2 x 4,096 VLA env steps are two thirds of it)
    cs.store(group="train", name="paper", node=TrainConfig(
        sft=SFTNode(max_steps=1600), bc=BCNode(steps=800),
        grpo=GRPONode(learning_rate=1e-4, n_steps=64, batch_size=32, group_size=8, log_images_every=4),
        ppo=PPONode(n_steps=64, batch_size=64), rl_budget=4096, n_envs=2))

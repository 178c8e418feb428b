"""The main job end to end on a tiny synthetic bank, and the baseline policies."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hydra import compose, initialize_config_module

from agents.base import policy_input
from agents.baselines import (
    ConstantVelocityPolicy,
    LogReplayPolicy,
    ReferencePlannerPolicy,
    StandStillPolicy,
    make_baseline,
)
from counterfactual.dataset import load_anchor_pairs, read_provenance
from envs.scenes.bank import ScenarioBank
from envs.replay_env import EnvConfig, ReplayEnv
from agents.evaluation import evaluate_open_loop, results_table
from experiments.run import run


def _cfg(*overrides: str):
    with initialize_config_module(config_module="experiments.conf", version_base=None):
        return compose(config_name="config", overrides=list(overrides))


def test_default_config_is_embedded():
    cfg = _cfg()
    assert cfg.env.name == "bank" and cfg.env.num_scenes > 0 and cfg.env.eval_seed != cfg.env.seed
    assert cfg.agent.name == "vla" and list(cfg.algo.methods) == ["sft_positive", "sft_negative", "ppo", "grpo",
                                                                     "anchor_grpo"]
    assert list(cfg.stages) == ["collect", "mine", "sft", "grpo", "eval"] and cfg.reward.reward_score == "sp_pdms"
    assert list(cfg.evaluate.planners) == ["pdm_closed_like", "safe_oracle"]
    with pytest.raises(Exception, match="carla|env"):
        _cfg("env=not_a_source")


def test_baseline_only_pipeline_writes_outputs(tmp_path, capsys):
    """No learned method (``algo.methods=[]``): scenes, renders, pairs and the planners' table."""
    cfg = _cfg(
        "env.num_scenes=4",
        "env.eval_num_scenes=4",
        "env.scenario_types=[rear_end,normal]",
        "render.num_scenes=2",
        "render.size=96",
        "mine.lead_times=[2.0]",
        "algo.methods=[]",
        "evaluate.planners=[log_replay,pdm_closed_like]",
        "progress=false",
        f"out_dir={tmp_path}",
    )
    ctx = run(cfg, tmp_path)
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out and "PDMS (open loop)" in out and "collision %" in out
    assert (tmp_path / "render" / "contact_sheet.png").stat().st_size > 0
    pairs = load_anchor_pairs(tmp_path / "pairs_train.parquet")
    assert len(pairs) == ctx.outputs["mine"]["num_pairs_train"] >= 2  # rear-end scenes, one lead time each
    assert all(p.negative_scores["collision"] for p in pairs)
    prov = read_provenance(tmp_path / "pairs_train.parquet")
    assert prov["miner_config"]["moments"]["lead_times"] == [2.0] and prov["source"].startswith("bank")
    saved = json.loads((tmp_path / "results.json").read_text())
    by_policy = {r["method"]: r for r in saved["rows"]}
    assert set(by_policy) == {"log_replay", "pdm_closed_like"}
    # The log drives into the rear-end in every accident scene and into nothing in normal scenes (closed loop).
    held = ScenarioBank(4, seed=1000, scenario_types=["rear_end", "normal"])
    accident_share = np.mean([held[i].meta.is_accident for i in range(len(held))])
    assert 0 < accident_share < 1
    assert by_policy["log_replay"]["collision_rate"] == pytest.approx(accident_share)
    for r in by_policy.values():
        assert 0.0 <= r["pdms"] <= 1.0 and r["language_accuracy"] is None and "n/a" in r["note"]
    assert list((tmp_path / "tb").iterdir())


def test_deepaccident_folder_pipeline_replays_the_crashes(tmp_path):
    """A DeepAccident-layout folder (bank scenes written by ``python -m envs.scenes.deepaccident``, train and val splits):
    the pipeline runs on it, and the closed-loop log replay collides in the held-out accident scenes."""
    from envs.scenes.deepaccident.__main__ import main as write_folder

    root = tmp_path / "da"
    assert write_folder(["--out", str(root), "--num-scenes", "4", "--seed", "0", "--split", "train",
                         "--scenario-types", "rear_end,normal"]) == 0
    assert write_folder(["--out", str(root), "--num-scenes", "4", "--seed", "1000", "--split", "val",
                         "--scenario-types", "rear_end,normal"]) == 0
    out = tmp_path / "run"
    run(_cfg("env=deepaccident", f"env.root={root}", "algo.methods=[]", "evaluate.planners=[log_replay]",
             "render.num_scenes=1", "mine.lead_times=[2.0]", "progress=false", f"out_dir={out}"), out)
    row = json.loads((out / "results.json").read_text())["rows"][0]
    held = ScenarioBank(4, seed=1000, scenario_types=["rear_end", "normal"])
    accident_share = np.mean([held[i].meta.is_accident for i in range(len(held))])
    assert row["method"] == "log_replay" and row["collision_rate"] == pytest.approx(accident_share)
    assert "map-free" in (out / "results.md").read_text()


def test_baselines_produce_valid_actions():
    env = ReplayEnv("bank", mode="open_loop", config=EnvConfig(bev=None), num_scenes=3, seed=1)
    obs, info = env.reset(seed=0, options={"scene_index": 0})
    for policy in (ConstantVelocityPolicy(), LogReplayPolicy(), ReferencePlannerPolicy(), StandStillPolicy()):
        action = policy.act(policy_input(env, obs, info, privileged=policy.requires_privileged))
        assert action.shape == (8, 3) and action.dtype == np.float32
        assert env.action_space.contains(action)
    np.testing.assert_array_equal(LogReplayPolicy().act(policy_input(env, obs, info, True)), env.logged_action())
    for policy in (LogReplayPolicy(), ReferencePlannerPolicy()):  # privileged policies refuse a plain input
        with pytest.raises(ValueError, match="privileged PolicyInput"):
            policy.act(policy_input(env, obs, info))
    cv = ConstantVelocityPolicy().act(policy_input(env, obs))
    np.testing.assert_allclose(np.diff(cv[:, 0]), 0.5 * obs["ego_state"][0], rtol=1e-5)
    assert np.all(cv[:, 1:] == 0)
    with pytest.raises(ValueError, match="unknown baseline 'x'"):
        make_baseline("x")


def test_results_table_marks_missing_language_metrics():
    env = ReplayEnv("bank", mode="open_loop", config=EnvConfig(bev=None), num_scenes=2, seed=0)
    result = evaluate_open_loop(ConstantVelocityPolicy(), env, progress=False)
    table = results_table([result])
    assert "n/a" in table and "constant_velocity" in table
    assert 0.0 <= result.score <= 1.0 and result.num_scenes == 2
    assert result.distinct_decisions == 2  # constant velocity on two scenes with different speeds


def test_distinct_decisions_count_a_policy_that_ignores_its_input():
    """``EvalResult.distinct_decisions``: a policy that gives one fixed trajectory for every scene counts 1."""
    from agents.base import Policy

    class Fixed(Policy):
        name = "fixed"

        def act(self, inp):
            return np.tile(np.array([[1.0, 0.0, 0.0]], dtype=np.float32), (8, 1)) * np.arange(1, 9)[:, None]

    env = ReplayEnv("bank", mode="open_loop", config=EnvConfig(bev=None), num_scenes=4, seed=0)
    assert evaluate_open_loop(Fixed(), env, progress=False).distinct_decisions == 1


def test_nested_typed_configs_reach_the_stages_and_one_reward_reaches_grpo(tmp_path):
    """``train.sft`` / ``train.grpo`` / ``train.ppo`` are the library configs (``_target_``, every field on the command
    line); ``reward.w_collision=2`` changes the env's reward, which is also GRPO's group score (one weighting), and
    ``train.grpo.clip_range=0.1`` reaches the GRPO model the pipeline builds."""
    import subprocess
    import sys

    import numpy as np

    from agents.rl.grpo.config import GRPOConfig
    from agents.rl.ppo import PPOBaselineConfig
    from agents.sft.trainer import SFTConfig
    from envs.sim.reward import RewardConfig
    from experiments.builders import env_config
    from experiments.pipeline import Context
    from experiments.registry import get_agent
    from experiments.run import typed_config

    job = subprocess.run([sys.executable, "-m", "experiments.run", "--cfg", "job", "train.grpo.clip_range=0.1"],
                         capture_output=True, text=True, timeout=120)
    assert job.returncode == 0, job.stderr
    for node in ("  sft:\n    _target_: agents.sft.trainer.SFTConfig", "  grpo:\n    _target_: agents.rl.grpo.config",
                 "  ppo:\n    _target_: agents.rl.ppo.PPOBaselineConfig", "reward:\n  _target_: envs.sim.reward"):
        assert node in job.stdout, job.stdout
    assert "clip_range: 0.1" in job.stdout

    typed = typed_config(_cfg("agent=mlp", "agent.bev=none", "env.num_scenes=2", "train.grpo.clip_range=0.1",
                              "train.grpo.n_steps=2", "train.grpo.batch_size=2", "reward.w_collision=2", "reward.w_score=0.5",
                              "seed=3", "tensorboard=false"))
    assert isinstance(typed.reward, RewardConfig) and typed.reward.w_collision == 2.0
    assert isinstance(typed.train.grpo, GRPOConfig) and typed.train.grpo.clip_range == 0.1
    assert isinstance(typed.train.ppo, PPOBaselineConfig)
    assert isinstance(typed.train.sft, SFTConfig) and typed.train.sft.seed == 3  # run-level fields set from the run
    assert env_config(Context(tmp_path, typed)).reward is typed.reward  # instantiated once, shared
    from counterfactual.dataset import write_anchor_pairs

    ctx = Context(tmp_path, typed, outputs={"mine": {"pairs_train": write_anchor_pairs([], tmp_path / "p.parquet")}})
    model = get_agent("mlp").rl_model(ctx, False, None)
    assert model.config.clip_range == 0.1
    env = model.get_env()
    env.reset()
    assert env.get_attr("config")[0].reward is typed.reward  # the replay env under GRPO holds the run's one reward
    terms = env.env_method("score_group", np.zeros((2, 8, 3)))[0]
    assert np.all(terms["score"] > 0)
    np.testing.assert_allclose(model.group_reward(terms), 0.5 * terms["score"] + 2.0 * terms["collision"])
    env.close()
    with pytest.raises(SystemExit, match=r"train\.grpo: GRPOConfig\.group_size"):
        typed_config(_cfg("train.grpo.group_size=1"))
    with pytest.raises(SystemExit, match=r"reward: RewardConfig\.reward_score"):
        typed_config(_cfg("reward.reward_score=progress"))
    with pytest.raises(SystemExit, match=r"evaluate\.decisions: expected one of \('greedy', 'sampled'\)"):
        typed_config(_cfg("evaluate.decisions=best_of_g"))
    with pytest.raises(SystemExit, match=r"evaluate\.temperature: expected > 0"):
        typed_config(_cfg("evaluate.decisions=sampled", "evaluate.temperature=0"))


PLUGIN = """
import json

from agents.baselines import ConstantVelocityPolicy
from experiments.registry import Method, register_method


def train(ctx):
    path = ctx.path("rl", "test_dummy.json")
    path.write_text(json.dumps({"speed": "constant"}))
    return {"test_dummy": path}


def load(ctx):
    assert json.loads(ctx.outputs["grpo"]["test_dummy"].read_text()) == {"speed": "constant"}
    return ConstantVelocityPolicy()


register_method(Method("test_dummy", "learned", load, train=train, states_label=False,
                       note="a method registered by a test"))
"""


def test_a_method_registered_in_a_test_trains_and_appears_in_the_results_table(tmp_path, monkeypatch):
    """Adding a method is one module with one registration (here a user module named by ``imports=[...]``): no stage,
    config or results code knows ``test_dummy``; the ``grpo`` stage runs its training function, the ``eval`` stage
    loads and drives it, and the table has its row."""
    import sys

    from experiments.registry import method_names, unregister_method

    (tmp_path / "plugin").mkdir()
    (tmp_path / "plugin" / "safealign_test_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path / "plugin"))
    out = tmp_path / "run"
    overrides = ["env.num_scenes=2", "env.eval_num_scenes=2", "env.scenario_types=[rear_end]", "render.enabled=false",
                 "mine.lead_times=[2.0]", "algo.methods=[test_dummy]", "evaluate.planners=[stand_still]",
                 "progress=false", "tensorboard=false", f"out_dir={out}"]
    with pytest.raises(SystemExit, match=r"algo\.methods: unknown \['test_dummy'\]"):
        run(_cfg(*overrides), out)  # not registered: refused before any stage runs
    with pytest.raises(SystemExit, match=r"imports: cannot import 'no_such_module_x'"):
        run(_cfg(*overrides, "imports=[no_such_module_x]"), out)
    try:
        run(_cfg(*overrides, "imports=[safealign_test_plugin]"), out)
        assert "test_dummy" in method_names("learned")
    finally:
        unregister_method("test_dummy")
        sys.modules.pop("safealign_test_plugin", None)
    table = (out / "results.md").read_text()
    assert "| test_dummy | 1 |" in table and "a method registered by a test; states no safety label" in table
    rows = {r["method"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    assert set(rows) == {"stand_still", "test_dummy"}
    assert rows["test_dummy"]["kind"] == "learned" and 0.0 <= rows["test_dummy"]["route_completion"] <= 1.0
    assert rows["test_dummy"]["route_completion"] > rows["stand_still"]["route_completion"]


@pytest.mark.parametrize("experiment", ["paper", "ablation_mlp", "grpo_vla", "sft_compare"])
def test_every_experiment_file_builds_a_typed_configuration(experiment):
    """The comparison studies are experiment files of the one pipeline: each composes and validates."""
    from experiments.run import typed_config, validate
    from omegaconf import OmegaConf

    cfg = _cfg(f"+experiment={experiment}")
    validate(OmegaConf.to_container(cfg, resolve=True))
    typed = typed_config(cfg)
    assert typed.train.rl_budget >= 1 and typed.env.num_scenes >= 32


def test_seed_sweep_aggregates_into_mean_and_std(tmp_path):
    """``-m seed=0,1,2`` runs the same pipeline per seed; :func:`experiments.results.aggregate` makes one table."""
    from experiments.results import aggregate

    for seed, rate in ((0, 0.2), (1, 0.4)):
        run_dir = tmp_path / f"s{seed}"
        run_dir.mkdir()
        rows = [{"method": "anchor_grpo", "kind": "learned", "note": "n", "pdms": 0.5, "collision_rate": rate,
                 "route_completion": 0.7, "driving_score": 0.6, "language_accuracy": None, "risk_accuracy": None},
                {"method": "safe_oracle", "kind": "planner", "note": "p", "pdms": 0.9, "collision_rate": 0.0,
                 "route_completion": 1.0, "driving_score": 1.0, "language_accuracy": None, "risk_accuracy": None}]
        (run_dir / "results.json").write_text(json.dumps({"seed": seed, "rows": rows}))
    md, csv_text, data = aggregate([tmp_path / "s0", tmp_path / "s1", tmp_path / "missing"])
    lines = md.splitlines()
    assert data["seeds"] == [0, 1] and data["missing"] == [str(tmp_path / "missing")]
    oracle, anchor = (i for i, line in enumerate(lines) if line.startswith(("| safe_oracle", "| anchor_grpo")))
    assert oracle < anchor  # planners first, then the learned rows (registry order)
    assert "| anchor_grpo | 2 | 50.0 +- 0.0 | 30.0 +- 14.1 |" in md and "n/a" in lines[anchor]
    assert csv_text.splitlines()[0].startswith("method,runs,")


def test_online_mining_reaches_anchor_grpo_only(tmp_path):
    """``train.online_mining=true`` wraps anchor-GRPO's training env in the online miner, not vanilla GRPO's."""
    from counterfactual.dataset import write_anchor_pairs
    from counterfactual.online import CollisionMiningWrapper
    from experiments.pipeline import Context
    from experiments.registry import get_agent
    from experiments.run import typed_config

    typed = typed_config(_cfg("agent=mlp", "agent.bev=none", "env.num_scenes=2", "train.online_mining=true",
                              "tensorboard=false"))
    ctx = Context(tmp_path, typed, outputs={"mine": {"pairs_train": write_anchor_pairs([], tmp_path / "p.parquet")}})
    for anchors in (True, False):
        model = get_agent("mlp").rl_model(ctx, anchors, None)
        env = model.get_env()
        assert env.env_is_wrapped(CollisionMiningWrapper)[0] is anchors
        env.close()


def test_the_vla_model_node_has_every_field_and_the_run_seed():
    """``agent.model`` is generated from :class:`agents.vla.model.VLAConfig`: every field on the command line, built
    into the library object with the run's seed, its own checks naming the field's path."""
    from agents.vla.model import VLAConfig
    from experiments.run import typed_config

    typed = typed_config(_cfg("agent.model.text_layers=4", "seed=5"))
    assert isinstance(typed.agent.model, VLAConfig)
    assert typed.agent.model.text_layers == 4 and typed.agent.model.seed == 5
    with pytest.raises(SystemExit, match=r"agent\.model: VLAConfig: text_hidden_size must divide by text_heads"):
        typed_config(_cfg("agent.model.text_heads=3"))
    with pytest.raises(SystemExit, match=r"agent\.bev: expected 'semantic64' or 'none'"):
        typed_config(_cfg("agent=mlp", "agent.bev=semantic32"))


def test_outcome_varied_bank_runs_through_the_pipeline(tmp_path):
    """``env.outcomes=varied`` reaches the scene sources of every stage: the summary and the table say so, and the
    held-out scenes hold benign or near-miss variants (no logged collision) beside collisions."""
    from envs.scenes.bank import ScenarioBank

    cfg = _cfg("env.outcomes=varied", "env.num_scenes=6", "env.eval_num_scenes=8", "render.enabled=false",
               "mine.lead_times=[2.0]", "algo.methods=[]", "evaluate.planners=[stand_still]", "evaluate.open_loop=false",
               "progress=false", "tensorboard=false", f"out_dir={tmp_path}")
    run(cfg, tmp_path)
    assert "outcome-varied" in (tmp_path / "results.md").read_text()
    held = ScenarioBank(8, seed=1000, outcomes="varied")
    outcomes = {held[i].meta.extra.get("outcome") for i in range(len(held)) if held.scenario_type(i) != "normal"}
    assert "collision" in outcomes and outcomes & {"benign", "near_miss"}
    manifest = json.loads((tmp_path / "scenes.json").read_text())
    stated = [o.get("outcome") for o in manifest["eval"] if o["scenario_type"] != "normal"]
    assert stated and all(o in ("benign", "near_miss", "collision") for o in stated), manifest["eval"]


def test_road_families_reach_the_pipeline_with_a_held_out_family(tmp_path):
    """``env.roads=families`` with ``env.eval_road_families=[held_out]``: training scenes on the training families
    only, evaluation scenes on the held-out family only; the table says so."""
    cfg = _cfg("env.roads=families", "env.eval_road_families=[held_out]", "env.background_density=0.5",
               "env.num_scenes=6", "env.eval_num_scenes=6", "render.enabled=false",
               "mine.lead_times=[2.0]", "algo.methods=[]", "evaluate.planners=[stand_still]", "evaluate.open_loop=false",
               "progress=false", "tensorboard=false", f"out_dir={tmp_path}")
    run(cfg, tmp_path)
    text = (tmp_path / "results.md").read_text()
    assert "parametric road families" in text and "held-out ['curve']" in text and "background density 0.5" in text
    manifest = json.loads((tmp_path / "scenes.json").read_text())
    assert manifest["eval"] and all(o.get("road_families") == ["curve"] for o in manifest["eval"]), manifest["eval"]


def test_world_v2_preset_is_the_varied_bank_on_road_families():
    """``env=world_v2`` composes to the bank with outcome-varied typologies on the road families (training without the
    held-out family, evaluation on every family) and the scene sources built from it say so."""
    from pathlib import Path

    from experiments.builders import sources
    from experiments.pipeline import Context
    from experiments.run import typed_config

    cfg = _cfg("env=world_v2", "env.num_scenes=4", "env.eval_num_scenes=4")
    assert cfg.env.name == "bank" and cfg.env.outcomes == "varied" and cfg.env.roads == "families"
    assert _cfg("env=world_v2", "train.sft.label_balance=hazard").train.sft.label_balance == "hazard"
    assert list(cfg.env.eval_road_families) == ["all"] and cfg.env.road_families is None
    assert cfg.mine.near_miss_rule == "clearance" and _cfg().mine.near_miss_rule == "ttc"  # close passes mined
    with pytest.raises(SystemExit, match="mine.near_miss_rule"):
        typed_config(_cfg("mine.near_miss_rule=gap"))
    train, held, text = sources(Context(out=Path("."), cfg=cfg))
    assert "outcome-varied" in text and "parametric road families" in text
    assert "curve" not in train.collection.road_families and "curve" in held.collection.road_families


def test_reacting_expert_reaches_the_scene_sources():
    """``env.expert=reacting`` (opt-in) opens both bank sources with the reacting expert and says so; it needs
    ``env.outcomes=varied``; ``env=world_v2`` keeps the logged expert."""
    from pathlib import Path

    from experiments.builders import sources
    from experiments.pipeline import Context

    train, held, text = sources(Context(out=Path("."), cfg=_cfg("env=world_v2", "env.expert=reacting",
                                                                 "env.num_scenes=4", "env.eval_num_scenes=4")))
    assert train.collection.expert == held.collection.expert == "reacting" and "reacting expert" in text
    assert _cfg("env=world_v2").env.expert == "logged"
    with pytest.raises(SystemExit, match="needs env.outcomes=varied"):
        sources(Context(out=Path("."), cfg=_cfg("env.expert=reacting")))


@pytest.mark.parametrize("n_envs", [1, 2])
def test_training_env_runs_on_the_runs_training_scenes(tmp_path, n_envs):
    """The GRPO / PPO training env is built on the run's training source with every bank option (here outcome-varied
    typologies on road families), in process and in ``SubprocVecEnv`` workers (the source pickles as how it was
    opened): its scenes are the ones the miner mined, so logged anchor pairs can match (a regression: the bank was
    re-opened from ``num_scenes`` / ``seed`` alone, the default bank under the same scene ids)."""
    import numpy as np

    from experiments.builders import group_env, sources
    from experiments.pipeline import Context
    from experiments.run import typed_config

    typed = typed_config(_cfg("env=world_v2", "agent=mlp", "agent.bev=none", "env.num_scenes=3",
                              "env.eval_num_scenes=2", f"train.n_envs={n_envs}"))
    ctx = Context(out=tmp_path, cfg=typed)
    train = sources(ctx)[0]
    venv = group_env(ctx, normalized=True)
    try:
        for env_source in venv.env_method("get_wrapper_attr", "source"):
            assert env_source.description == train.description
            for i in range(len(train)):
                assert env_source[i].scene_id == train[i].scene_id
                assert np.array_equal(env_source[i].ego_poses, train[i].ego_poses)
    finally:
        venv.close()


def test_train_expert_frames_reaches_the_mlp_agents_behaviour_cloning(tmp_path, monkeypatch):
    """``train.expert_frames`` is the one setting of expert decisions per scene: SFT rows and BC samples alike."""
    import agents.rl.bc as bc
    from counterfactual.dataset import write_anchor_pairs
    from experiments.pipeline import Context
    from experiments.registry import get_agent
    from experiments.run import typed_config

    seen: list[int] = []

    class Stop(Exception):
        pass

    def spy(*args, expert_frames_per_scene=4, **kwargs):
        seen.append(expert_frames_per_scene)
        raise Stop

    monkeypatch.setattr(bc, "build_bc_data", spy)
    typed = typed_config(_cfg("agent=mlp", "agent.bev=none", "env.num_scenes=2", "train.expert_frames=1",
                              "tensorboard=false"))
    ctx = Context(tmp_path, typed, outputs={"mine": {"pairs_train": write_anchor_pairs([], tmp_path / "p.parquet")}})
    with pytest.raises(Stop):
        get_agent("mlp").train_sft(ctx, ["positive"])
    assert seen == [1]


def test_start_steering_reaches_the_training_and_evaluation_envs(tmp_path):
    """``env.start_steering`` (default ``log``) is the closed loop's start steering of the run's env config (training
    rollouts, learned rows' evaluation) and of the planners' evaluation env; a bad value fails before anything runs,
    naming the field."""
    from experiments.builders import env_config, start_steering
    from experiments.pipeline import Context
    from experiments.run import typed_config

    for value in ("log", "zero"):
        typed = typed_config(_cfg("agent=mlp", "agent.bev=none", f"env.start_steering={value}", "tensorboard=false"))
        ctx = Context(tmp_path, typed)
        assert env_config(ctx).start_steering == value and start_steering(ctx) == value
    default = typed_config(_cfg("agent=mlp", "tensorboard=false")).env.start_steering
    assert default == EnvConfig().start_steering == "log"
    with pytest.raises(SystemExit, match="env.start_steering: expected one of .*'wheels'"):
        typed_config(_cfg("env.start_steering=wheels"))

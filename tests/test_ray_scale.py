"""Rollouts and mining on Ray (issue #31): :class:`envs.vec.RayVecEnv` against SB3's ``DummyVecEnv`` call for call,
a worker killed mid-episode (restarted, its episode truncated with a reason, stepping and GRPO / PPO training go
on), several envs per actor (``envs_per_worker``: the ``DummyVecEnv``'s rollouts, GRPO's same weights, a dead actor
truncating each of its envs' episodes), CARLA envs bound to their own server and Traffic Manager port, and
``counterfactual.mine --backend ray`` giving the serial run's pairs file row for row.

One module-scoped local Ray (2 CPUs, a 100 MB object store, no dashboard) serves every test here; under
pytest-xdist each xdist worker that runs this module starts its own (``address="local"``: never an existing
cluster). Small sizes: the module takes well under a minute once the scorer's numba kernels are cached.
"""

from __future__ import annotations

import gc
import time
import warnings

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from agents.rl.env import GroupEnvConfig, call_each, make_group_vec_env  # noqa: E402
from envs.scenes.bank import ScenarioBank  # noqa: E402
from envs.vec import RayVecEnv  # noqa: E402
from envs.vec.ray_vec_env import WORKER_RESTART, WorkerRestartError  # noqa: E402
from envs.wrappers import kinematic_trajectories  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024 ** 2,
             log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield
    gc.collect()


@pytest.fixture(scope="module")
def scene():
    return ScenarioBank(4, seed=0, scenario_types=["rear_end"])[0]


@pytest.fixture(scope="module")
def ray_venv(local_ray, scene):
    """Two replay envs on Ray actors (half a CPU each), shared by the tests below (each resets it; starting actors
    costs seconds on a loaded machine); the worker-death test, which spends its restart budget, uses it last."""
    venv = _venv(scene, "ray")
    yield venv
    venv.close()
    assert venv.closed


def _venv(scene, backend: str, n_envs: int = 2, **ray_options):
    options = {"num_cpus_per_worker": 0.5, **ray_options} if backend == "ray" else None
    return make_group_vec_env(GroupEnvConfig(source=[scene]), n_envs=n_envs, seed=0, backend=backend,
                              ray_options=options)


def _kill(actor) -> None:
    """``ray.kill`` and wait until the actor is gone (the kill is asynchronous: a call sent at once may still run)."""
    ray.kill(actor)
    for _ in range(400):
        try:
            ray.get(actor.pid.remote(), timeout=30)
        except ray.exceptions.RayActorError:
            return
        time.sleep(0.05)
    raise AssertionError("ray.kill: the actor is still alive after 20 s")


def _actions(n: int, steps: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.3, 0.3, (steps, n, 8, 2)).astype(np.float32)


def _assert_obs_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# ------------------------------------------------------------------------------------------------ mining
def _rows(table) -> list:
    """The table's rows as plain values, NaN replaced by a marker (so that equal files compare equal)."""
    def plain(v):
        if isinstance(v, float) and v != v:
            return "NaN"
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list):
            return [plain(x) for x in v]
        return v

    return [plain(r) for r in table.to_pylist()]


def test_mining_on_ray_writes_the_serial_pairs_file_row_for_row(local_ray, tmp_path, capsys):
    from counterfactual.dataset import read_anchor_table
    from counterfactual.mine import main

    common = ["--source", "bank", "--num-scenes", "6", "--seed", "3", "--lead-times", "1,2", "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "serial.parquet")]) == 0
    serial_out = capsys.readouterr().out
    assert main([*common, "--out", str(tmp_path / "ray.parquet"), "--backend", "ray", "--workers", "2"]) == 0
    ray_out = capsys.readouterr().out
    serial, distributed = (_rows(read_anchor_table(tmp_path / f"{n}.parquet")) for n in ("serial", "ray"))
    assert len(serial) > 0
    assert serial == distributed  # same rows, same order, same values (NaN where the serial file has NaN)
    assert serial_out.split("\n")[:-2] == ray_out.split("\n")[:-2]  # the same summary table


def test_the_pipelines_mine_stage_on_ray_writes_the_serial_pairs(local_ray, tmp_path):
    """``mine.backend=ray``: the pipeline's mine stage writes the serial stage's pairs files row for row."""
    from hydra import compose, initialize_config_module

    from counterfactual.dataset import read_anchor_table
    from experiments.config import register_configs
    from experiments.pipeline import Context
    from experiments.run import typed_config
    from experiments.stages import mine

    register_configs()
    files = {}
    for backend in ("serial", "ray"):
        with initialize_config_module(config_module="experiments.conf", version_base=None):
            cfg = compose(config_name="config", overrides=["env.num_scenes=5", "env.eval_num_scenes=3",
                                                           "mine.lead_times=[1.0,2.0]", f"mine.backend={backend}",
                                                           "mine.workers=2", "progress=false"])
        out = mine(Context(out=tmp_path / backend, cfg=typed_config(cfg)))
        files[backend] = {split: _rows(read_anchor_table(out[f"pairs_{split}"])) for split in ("train", "eval")}
    assert files["serial"]["train"] and files["serial"] == files["ray"]
    with initialize_config_module(config_module="experiments.conf", version_base=None):
        with pytest.raises(SystemExit, match="mine.backend: expected one of"):
            typed_config(compose(config_name="config", overrides=["mine.backend=spark"]))


def test_mining_shards_cover_every_scene_once():
    from counterfactual.distributed import shards

    for n, workers, size in ((0, 2, None), (1, 4, None), (17, 2, None), (17, 3, 5), (8, 1, 8)):
        got = [i for r in shards(n, workers, size) for i in r]
        assert got == list(range(n))
    sizes = [len(r) for r in shards(96, 2)]  # guided: a quarter of the unsent scenes each, down to MIN_SHARD
    assert sizes[:4] == [24, 18, 14, 10] and sizes == sorted(sizes, reverse=True) and sizes[-1] <= 2
    assert [len(r) for r in shards(5, 4)] == [2, 2, 1]
    with pytest.raises(ValueError, match="shard_size"):
        shards(4, 1, 0)


# ------------------------------------------------------------------------------------------------ the contract
def test_ray_vec_env_matches_dummy_vec_env_call_for_call(ray_venv, scene):
    """Same seeds, same actions: RayVecEnv returns what DummyVecEnv returns (obs, rewards, dones, terminal
    observations, TimeLimit flags, reset infos) and answers the per-env calls the same way."""
    from stable_baselines3.common.monitor import Monitor

    from envs.wrappers import NormalizedTrajectoryAction

    dummy, venv = _venv(scene, "dummy"), ray_venv
    venv.seed(0)
    try:
        assert isinstance(venv, RayVecEnv) and venv.num_envs == 2
        assert len(set(venv.worker_pids())) == 2  # one actor (process) per env
        assert venv.observation_space == dummy.observation_space and venv.action_space == dummy.action_space
        _assert_obs_equal(venv.reset(), dummy.reset())
        episodes_ended = 0
        for actions in _actions(2, 12):
            o1, r1, d1, i1 = venv.step(actions)
            o2, r2, d2, i2 = dummy.step(actions)
            _assert_obs_equal(o1, o2)
            np.testing.assert_array_equal(r1.astype(np.float32), r2)  # DummyVecEnv's buffer is float32 (not
            # SubprocVecEnv's, whose np.stack this mirrors)
            np.testing.assert_array_equal(d1, d2)
            for a, b, done in zip(i1, i2, d1):
                assert a["TimeLimit.truncated"] == b["TimeLimit.truncated"]
                assert a["termination_reason"] == b["termination_reason"]
                assert ("terminal_observation" in a) == ("terminal_observation" in b) == bool(done)
                if done:
                    _assert_obs_equal(a["terminal_observation"], b["terminal_observation"])
                    assert "episode" in a  # Monitor's episode statistics
            episodes_ended += int(d1.sum())
            for a, b, done in zip(venv.reset_infos, dummy.reset_infos, d1):
                if done:  # the new episode's reset info (kept by DummyVecEnv, not SubprocVecEnv, for the others)
                    assert a.keys() == b.keys() and a["decision_context"]["frame"] == b["decision_context"]["frame"]
        assert episodes_ended > 0  # auto-reset was exercised
        # seeds and options are used once, by the next reset
        venv.seed(7)
        dummy.seed(7)
        _assert_obs_equal(venv.reset(), dummy.reset())
        # per-env calls
        assert venv.env_is_wrapped(Monitor) == [True, True]
        assert venv.env_is_wrapped(NormalizedTrajectoryAction, indices=[1]) == [True]
        assert venv.has_attr("max_speed") and not venv.has_attr("no_such_attribute")
        assert venv.get_attr("max_speed") == dummy.get_attr("max_speed") == [20.0, 20.0]
        venv.set_attr("max_speed", 12.0, indices=[1])
        assert venv.get_attr("max_speed") == [20.0, 12.0]
        ctx = venv.env_method("decision_context", indices=[0])[0]
        assert ctx["scene_id"] == scene.scene_id
        trajs = kinematic_trajectories(np.random.default_rng(0).uniform(-1, 1, (5, 8, 2)), 20.0, 0.6)
        venv.reset()
        dummy.reset()
        got = call_each(venv, "score_group", [(trajs,), (trajs[:3],)])
        want = call_each(dummy, "score_group", [(trajs,), (trajs[:3],)])
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a["reward"], b["reward"])
        with pytest.warns(UserWarning, match="render mode is None"):
            assert venv.get_images() == [None, None]  # render_mode None: as SB3's vector envs
        venv.set_attr("max_speed", 20.0)
    finally:
        dummy.close()


# ------------------------------------------------------------------------------------------------ worker death
def test_grpo_and_ppo_train_on_ray_workers_through_a_worker_death(ray_venv):
    """GRPO (its group scoring through call_each) and SB3 PPO run unchanged on a RayVecEnv; an actor killed during
    GRPO training is restarted and the run reaches its step budget."""
    from stable_baselines3.common.callbacks import BaseCallback

    from agents.rl.grpo import GRPO, GRPOConfig
    from agents.rl.ppo import PPOBaselineConfig, make_ppo

    class KillOnce(BaseCallback):
        killed = False

        def _on_step(self) -> bool:
            if self.num_timesteps >= 4 and not self.killed:
                _kill(self.training_env.actors[1])
                type(self).killed = True
            return True

    venv = ray_venv
    before = list(venv.restarts)
    model = GRPO("MultiInputPolicy", venv, GRPOConfig(n_steps=2, batch_size=4, n_epochs=1), seed=0)
    with pytest.warns(RuntimeWarning, match="env 1's worker died"):
        model.learn(12, callback=KillOnce())
    assert model.num_timesteps == 12 and venv.restarts == [before[0], before[1] + 1]
    ppo = make_ppo(venv, PPOBaselineConfig(n_steps=4, batch_size=8, n_epochs=1), seed=0)
    ppo.learn(16)
    assert ppo.num_timesteps == 16


def test_a_killed_worker_is_restarted_and_its_episode_truncated(ray_venv, scene):
    venv = ray_venv
    before = list(venv.restarts)
    obs = venv.reset()
    obs, *_ = venv.step(np.zeros((2, 8, 2), np.float32))
    old_pid = venv.worker_pids()[0]
    _kill(venv.actors[0])  # mid-episode
    with pytest.warns(RuntimeWarning, match="env 0's worker died"):
        new_obs, rewards, dones, infos = venv.step(np.zeros((2, 8, 2), np.float32))
    assert dones[0] and rewards[0] == 0.0
    info = infos[0]
    assert info["TimeLimit.truncated"] is True and info["termination_reason"] == WORKER_RESTART
    assert info[WORKER_RESTART]["env_index"] == 0 and info[WORKER_RESTART]["restarts"] == before[0] + 1
    assert "ActorDiedError" in info[WORKER_RESTART]["reason"]
    _assert_obs_equal(info["terminal_observation"], {k: v[0] for k, v in obs.items()})  # the last one seen
    assert "decision_context" in venv.reset_infos[0]  # the new episode's reset info, as after an auto-reset
    assert infos[1]["termination_reason"] != WORKER_RESTART  # the other env stepped normally
    assert venv.restarts == [before[0] + 1, before[1]] and venv.worker_pids()[0] != old_pid
    for actions in _actions(2, 3):  # and stepping goes on
        venv.step(actions)
    # a death seen between steps (here by env_method): restarted at once, the call retried on the new env, the
    # truncation reported by the next step (that env's action is not applied)
    _kill(venv.actors[1])
    with pytest.warns(RuntimeWarning, match="env 1's worker died"):
        assert venv.env_method("decision_context", indices=[1])[0]["scene_id"] == scene.scene_id
    _, _, dones, infos = venv.step(np.zeros((2, 8, 2), np.float32))
    assert dones[1] and infos[1]["termination_reason"] == WORKER_RESTART
    assert venv.restarts == [before[0] + 1, before[1] + 1]
    # past max_restarts: a clear error naming the env (this spends env 0's budget: the venv's last use)
    venv.max_restarts = venv.restarts[0]
    _kill(venv.actors[0])
    with pytest.raises(WorkerRestartError, match=f"env 0's worker died {venv.restarts[0] + 1} times"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        venv.step(np.zeros((2, 8, 2), np.float32))


# ------------------------------------------------------------------------------------------ several envs per worker
@pytest.fixture(scope="class")
def venv(local_ray, scene):
    """4 envs on 2 Ray actors (``envs_per_worker=2``, half a CPU each), for the class that uses it."""
    venv = _venv(scene, "ray", n_envs=4, envs_per_worker=2)
    yield venv
    venv.close()


class TestSeveralEnvsPerWorker:
    """``envs_per_worker=2`` on 2 actors (4 envs): the rollouts of a ``DummyVecEnv`` over the same envs and seeds, the
    per-env calls answered by the right env, GRPO trains on it as on the ``DummyVecEnv``, and a dead actor restarts
    both its envs with their episodes truncated. One venv for the class (closed after it: the module's Ray has 2
    CPUs, the shared ``ray_venv`` holds one)."""

    def test_matches_dummy_vec_env_and_answers_per_env_calls(self, venv, scene):
        dummy = _venv(scene, "dummy", n_envs=4)
        try:
            assert venv.num_envs == 4 and venv.num_workers == 2 and venv.worker_index == [0, 0, 1, 1]
            pids = venv.worker_pids()
            assert pids[0] == pids[1] != pids[2] == pids[3]  # envs 0, 1 in one actor; 2, 3 in the other
            venv.seed(5)
            dummy.seed(5)
            _assert_obs_equal(venv.reset(), dummy.reset())
            ended = 0
            for actions in _actions(4, 14, seed=3):
                o1, r1, d1, i1 = venv.step(actions)
                o2, r2, d2, i2 = dummy.step(actions)
                _assert_obs_equal(o1, o2)
                np.testing.assert_array_equal(r1.astype(np.float32), r2)
                np.testing.assert_array_equal(d1, d2)
                for a, b, done in zip(i1, i2, d1):
                    assert a["termination_reason"] == b["termination_reason"]
                    assert a["TimeLimit.truncated"] == b["TimeLimit.truncated"]
                    assert a["decision_context"]["frame"] == b["decision_context"]["frame"]
                    if done:
                        _assert_obs_equal(a["terminal_observation"], b["terminal_observation"])
                for a, b, done in zip(venv.reset_infos, dummy.reset_infos, d1):
                    if done:
                        assert a["decision_context"]["frame"] == b["decision_context"]["frame"]
                ended += int(d1.sum())
            assert ended > 0  # auto-reset inside the workers was exercised
            # per-env calls reach the right env (slot 1 of worker 1 is env 3)
            venv.set_attr("max_speed", 12.0, indices=[3])
            assert venv.get_attr("max_speed") == [20.0, 20.0, 20.0, 12.0]
            assert venv.get_attr("max_speed", indices=[3, 0]) == [12.0, 20.0]
            venv.set_attr("max_speed", 20.0, indices=[3])
            frames = [c["frame"] for c in venv.env_method("decision_context")]
            assert frames == [c["frame"] for c in dummy.env_method("decision_context")]
            assert venv.env_method("decision_context", indices=[2])[0]["frame"] == frames[2]
            trajs = kinematic_trajectories(np.random.default_rng(0).uniform(-1, 1, (5, 8, 2)), 20.0, 0.6)
            args = [(trajs[:n],) for n in (5, 1, 3, 2)]  # a different group per env: the answers keep their order
            got, want = call_each(venv, "score_group", args), call_each(dummy, "score_group", args)
            assert [len(g["reward"]) for g in got] == [5, 1, 3, 2]
            for a, b in zip(got, want):
                np.testing.assert_array_equal(a["reward"], b["reward"])
            poses = [c["pose"] for c in call_each(venv, "decision_context", [(), ()], indices=[3, 1])]
            for pose, i in zip(poses, (3, 1)):
                np.testing.assert_array_equal(pose, dummy.env_method("decision_context", indices=[i])[0]["pose"])
            assert not np.array_equal(poses[0], poses[1])  # different envs (different actions so far)
        finally:
            dummy.close()

    def test_grpo_trains_on_it_as_on_a_dummy_vec_env(self, venv, scene):
        """Same envs, seeds and model seed: GRPO's first update gives the same weights on both (the rollouts are
        the same, group scoring included)."""
        import torch

        from agents.rl.grpo import GRPO, GRPOConfig

        dummy = _venv(scene, "dummy", n_envs=4)
        try:
            weights = []
            for env in (venv, dummy):
                model = GRPO("MultiInputPolicy", env, GRPOConfig(n_steps=2, batch_size=8, n_epochs=1), seed=0)
                initial = torch.nn.utils.parameters_to_vector(model.policy.parameters()).detach().clone()
                model.learn(8)
                assert model.num_timesteps == 8
                weights.append(torch.nn.utils.parameters_to_vector(model.policy.parameters()).detach())
                assert not torch.equal(weights[-1], initial)  # it did train
            torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=0)
        finally:
            dummy.close()

    def test_a_dead_actor_restarts_all_its_envs_and_truncates_each_episode(self, venv, scene):
        before = list(venv.restarts)
        venv.set_attr("max_speed", 15.0, indices=[3])  # set again on the restarted env
        obs = venv.reset()
        obs, *_ = venv.step(np.zeros((4, 8, 2), np.float32))
        _kill(venv.actors[1])  # envs 2 and 3, mid-episode
        with pytest.warns(RuntimeWarning, match="envs 2-3's worker died"):
            _, rewards, dones, infos = venv.step(np.zeros((4, 8, 2), np.float32))
        assert list(dones) == [False, False, True, True] and rewards[2] == rewards[3] == 0.0
        for i in (2, 3):
            info = infos[i]
            assert info["TimeLimit.truncated"] is True and info["termination_reason"] == WORKER_RESTART
            assert info[WORKER_RESTART]["env_index"] == i and info[WORKER_RESTART]["worker_index"] == 1
            assert info[WORKER_RESTART]["restarts"] == before[i] + 1
            assert "ActorDiedError" in info[WORKER_RESTART]["reason"]
            _assert_obs_equal(info["terminal_observation"], {k: v[i] for k, v in obs.items()})  # env i's last one
            assert "decision_context" in venv.reset_infos[i]
        assert all(infos[i]["termination_reason"] != WORKER_RESTART for i in (0, 1))
        assert venv.restarts == [before[0], before[1], before[2] + 1, before[3] + 1]
        assert venv.get_attr("max_speed") == [20.0, 20.0, 20.0, 15.0]
        # a death seen between steps (by call_each): the call retried on the new actor, both truncations reported
        # by the next step
        _kill(venv.actors[0])
        with pytest.warns(RuntimeWarning, match="envs 0-1's worker died"):
            ctx = call_each(venv, "decision_context", [(), ()], indices=[1, 2])
        assert ctx[0]["scene_id"] == ctx[1]["scene_id"] == scene.scene_id
        _, _, dones, infos = venv.step(np.zeros((4, 8, 2), np.float32))
        assert list(dones[:2]) == [True, True] and all(infos[i]["termination_reason"] == WORKER_RESTART
                                                      for i in (0, 1))
        assert venv.restarts == [before[0] + 1, before[1] + 1, before[2] + 1, before[3] + 1]


def test_deferred_reward_terms_stay_in_the_worker_until_read_and_equal_the_dummy_vec_envs(local_ray, scene):
    """``deferred_terms``: every mode gives the ``DummyVecEnv``'s ``info["rewards"]``, bit for bit, when read
    (``pdms``, ``sp_pdms`` ... included); ``on_read`` computes in the workers only the terms the driver reads,
    ``with_step`` all of them with the step, ``auto`` with the step after a step whose terms were read; terms read
    too late (the worker no longer holds them) read as NaN with a warning."""
    from envs.sim.reward import EP_TERMS
    from envs.sim.terms import DeferredTerms
    from envs.vec.ray_vec_env import HELD_STEPS

    # prepare_episodes on here (the other tests run with it off): equal rollouts either way
    venv = _venv(scene, "ray", n_envs=4, envs_per_worker=2, prepare_episodes=True)
    dummy = _venv(scene, "dummy", n_envs=4)
    try:
        venv.seed(11)
        dummy.seed(11)
        venv.reset()
        dummy.reset()
        actions = iter(_actions(4, 40, seed=5))
        counts = venv.worker_terms_counts()
        for mode, read in (("on_read", [True, False, True, False, False, True]), ("with_step", [False, True]),
                           ("auto", [False, True, True, False, True])):
            venv.deferred_terms = mode
            for read_now in read:
                action = next(actions)
                _, _, _, got = venv.step(action)
                _, _, _, want = dummy.step(action)
                for a, b in zip(got, want):
                    assert isinstance(a["rewards"], DeferredTerms) and a["rewards"].pending
                    if read_now:
                        assert a["rewards"] == b["rewards"]
                        assert all(np.isfinite(a["rewards"][k]) for k in EP_TERMS)
            new = venv.worker_terms_counts()
            step = {key: new[key] - counts[key] for key in new}
            counts = new
            if mode == "on_read":  # 4 envs x 6 steps held; the 3 read steps' terms computed, the others never
                assert step == {"with_step": 0, "held": 24, "on_read": 12}
            elif mode == "with_step":
                assert step == {"with_step": 8, "held": 0, "on_read": 0}
            else:  # step 1 with the step (the step before it was read), 2 held (1 unread) and read, 3 and 4 with
                # the step (2 and 3 read), 5 held (4 unread) and read
                assert step == {"with_step": 12, "held": 8, "on_read": 8}
        # terms read more than HELD_STEPS vector steps later are gone from the worker: NaN, with a warning
        venv.deferred_terms = "on_read"
        _, _, _, first = venv.step(next(actions))
        for _ in range(HELD_STEPS):
            venv.step(next(actions))
        with pytest.warns(RuntimeWarning, match=r"terms \[.*'pdms'.*\] of env 2 at vector step \d+ are gone"):
            assert np.isnan(first[2]["rewards"]["pdms"])
        assert np.isfinite(first[2]["rewards"]["route_progress"])  # the eager terms came with the step
    finally:
        venv.close()
        dummy.close()


def test_prepare_episode_computes_the_first_steps_reference_and_changes_nothing_returned(scene):
    """``ReplayEnv.prepare_episode`` (what a Ray worker runs while it would wait) fills the episode's reference
    progress cache; the episode's steps return what they return without it."""
    from envs.replay_env import ReplayEnv

    envs = [ReplayEnv([scene], "closed_loop") for _ in range(2)]
    for env in envs:
        env.reset(seed=3)
    assert not envs[0]._rc_references
    envs[0].prepare_episode()
    assert list(envs[0]._rc_references) == [(scene.scene_id, envs[0]._start)]
    for action in np.random.default_rng(0).uniform(-0.5, 0.5, (4, 8, 3)):
        (o1, r1, t1, u1, i1), (o2, r2, t2, u2, i2) = (env.step(np.cumsum(action, 0) + [2, 0, 0]) for env in envs)
        _assert_obs_equal(o1, o2)
        assert (r1, t1, u1, i1["rewards"]) == (r2, t2, u2, i2["rewards"])
        if t1 or u1:
            break


def test_the_pipeline_builds_its_training_env_on_ray_and_ppo_trains_on_it(local_ray, tmp_path):
    """``env.vec_backend=ray``: the GRPO / PPO env of :func:`experiments.builders.group_env` is a RayVecEnv (two envs
    on one actor, ``env.envs_per_worker=2``: a CPU of the test's Ray is held by the shared env above)."""
    from hydra import compose, initialize_config_module

    from agents.rl.ppo import make_ppo
    from experiments.builders import group_env
    from experiments.pipeline import Context
    from experiments.run import typed_config, validate
    from omegaconf import OmegaConf

    from experiments.config import register_configs

    register_configs()
    with initialize_config_module(config_module="experiments.conf", version_base=None):
        cfg = compose(config_name="config", overrides=["agent=mlp", "env.num_scenes=2", "env.vec_backend=ray",
                                                       "train.n_envs=2", "env.envs_per_worker=2", "train.ppo.n_steps=4",
                                                       "train.ppo.batch_size=4"])
    validate(OmegaConf.to_container(cfg, resolve=True))
    typed = typed_config(cfg)
    venv = group_env(Context(out=tmp_path, cfg=typed), normalized=True)
    try:
        assert isinstance(venv, RayVecEnv) and venv.num_envs == 2 and venv.num_workers == 1
        ppo = make_ppo(venv, typed.train.ppo, seed=0)
        ppo.learn(8)
        assert ppo.num_timesteps == 8
    finally:
        venv.close()


def test_compose_ray_profile_runs_a_head_and_scalable_workers():
    """docker-compose.yml: the head listens where the workers join; the documented run composes as a Hydra config
    with the Ray backend."""
    from pathlib import Path

    import yaml
    from hydra import compose, initialize_config_module

    from experiments.config import register_configs

    register_configs()
    root = Path(__file__).resolve().parents[1]
    services = yaml.safe_load((root / "docker-compose.yml").read_text())["services"]
    head, worker = services["ray-head"], services["ray-worker"]
    assert head["profiles"] == worker["profiles"] == ["ray"]
    assert head["image"] == worker["image"] == services["trainer"]["image"]
    assert head["command"][:3] == ["ray", "start", "--head"] and "--port=6379" in head["command"]
    assert worker["command"][:2] == ["ray", "start"] and "--address=ray-head:6379" in worker["command"]
    assert "--block" in head["command"] and "--block" in worker["command"] and "ray-head" in worker["depends_on"]
    readme = (root / "README.md").read_text()
    line = next(x for x in readme.splitlines() if "docker compose exec" in x and "ray-head" in x)
    run = line.split("experiments.run", 1)[1].replace("\\", " ").split()
    rest = readme.split(line, 1)[1].split("```", 1)[0].replace("\\", " ").split()
    with initialize_config_module(config_module="experiments.conf", version_base=None):
        cfg = compose(config_name="config", overrides=[*run, *rest])
    assert cfg.env.vec_backend == "ray" and cfg.env.ray_address == "auto" and list(cfg.env.hosts) == [
        "carla:2000", "carla-2:2010"]


def test_the_readmes_envs_per_worker_command_composes_and_validates():
    """README "Ray": the several-envs-per-actor command is a valid run configuration (16 envs, 8 per actor)."""
    from pathlib import Path

    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from experiments.config import register_configs
    from experiments.run import validate

    register_configs()
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    line = next(x for x in readme.splitlines() if x.startswith("python -m experiments.run") and "envs_per_worker" in x)
    overrides = line.split("#", 1)[0].split()[3:]
    with initialize_config_module(config_module="experiments.conf", version_base=None):
        cfg = compose(config_name="config", overrides=overrides)
    validate(OmegaConf.to_container(cfg, resolve=True))
    assert cfg.env.vec_backend == "ray" and cfg.env.envs_per_worker == 8 and cfg.train.n_envs == 16


def test_carla_envs_on_ray_workers_each_bound_to_their_server_and_traffic_manager_port(local_ray):
    """``carla_env_fns`` on Ray actors: worker ``i`` drives ``hosts[i]`` with Traffic Manager port base + i (here
    stand-in servers, started inside each actor: the stand-in lives in the client's process)."""
    from envs.carla import CarlaEnvConfig, carla_env_fns

    config = CarlaEnvConfig(backend="standin", hosts=("127.0.0.1:2100", "127.0.0.1:2110"), town="Standin_straight",
                            bev=None, reference=None, num_background=1, episode_time=3.0, map_radius=40.0,
                            record_after_end=0.0, traffic_manager_port=8100)

    def with_standin(fn):
        def make():
            from envs.carla import standin

            host, port = fn.args[0].address
            standin.serve(host, port, town="Standin_straight")
            return fn()
        return make

    venv = RayVecEnv([with_standin(fn) for fn in carla_env_fns(config)], num_cpus_per_worker=0.5)
    try:
        assert [c.address for c in venv.get_attr("config")] == [("127.0.0.1", 2100), ("127.0.0.1", 2110)]
        assert [c.tm_port for c in venv.get_attr("config")] == [8100, 8101]
        venv.seed(0)
        venv.reset()
        actions = np.stack(venv.env_method("logged_action"))
        _, _, dones, infos = venv.step(actions)
        assert all("termination_reason" in info for info in infos)
    finally:
        venv.close()


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_backend_options_are_named():
    from counterfactual.distributed import mine_source
    from envs.scenes.sources import open_source

    with pytest.raises(ValueError, match="backend must be one of"):
        make_group_vec_env(GroupEnvConfig(num_scenes=1), backend="threads")
    with pytest.raises(ValueError, match="ray_options given for backend 'dummy'"):
        make_group_vec_env(GroupEnvConfig(num_scenes=1), ray_options={"address": "auto"})
    with pytest.raises(ValueError, match="num_cpus_per_worker must be > 0"):
        RayVecEnv([lambda: None], num_cpus_per_worker=0)
    with pytest.raises(ValueError, match="max_restarts must be an int >= 0"):
        RayVecEnv([lambda: None], max_restarts=-1)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match=f"envs_per_worker must be an int >= 1, got {bad!r}"):
            RayVecEnv([lambda: None], envs_per_worker=bad)
    with pytest.raises(ValueError, match="deferred_terms must be one of .*got 'sometimes'"):
        RayVecEnv([lambda: None], deferred_terms="sometimes")
    with pytest.raises(ValueError, match="env_fns is empty"):
        RayVecEnv([])
    with pytest.raises(ValueError, match="ray address: expected None, 'local', 'auto', 'HOST:PORT'.*got 6379"):
        RayVecEnv([lambda: None], address=6379)
    source = open_source("bank", num_scenes=1, seed=0)
    with pytest.raises(ValueError, match="mining backend: expected one of"):
        mine_source(source, backend="dask")
    with pytest.raises(ValueError, match="workers: expected an int >= 1"):
        mine_source(source, backend="ray", workers=0)


def test_the_pipeline_names_a_bad_vec_backend():
    from experiments.run import validate

    cfg = {"env": {"name": "bank", "seed": 0, "eval_seed": 1, "vec_backend": "threads", "ray_address": None},
           "algo": {"methods": []}, "evaluate": {"planners": []}, "agent": {"name": "mlp"}}
    with pytest.raises(SystemExit, match="env.vec_backend: expected 'local' or 'ray', got 'threads'"):
        validate(cfg)
    cfg["env"].update(vec_backend="local", ray_address="auto")
    with pytest.raises(SystemExit, match="env.ray_address='auto' needs env.vec_backend=ray"):
        validate(cfg)
    cfg["env"].update(ray_address=None, envs_per_worker=4)
    with pytest.raises(SystemExit, match="env.envs_per_worker=4 needs env.vec_backend=ray"):
        validate(cfg)
    cfg["env"].update(vec_backend="ray", envs_per_worker=0)
    with pytest.raises(SystemExit, match="env.envs_per_worker: expected an int >= 1, got 0"):
        validate(cfg)


def test_an_env_that_cannot_be_built_is_an_error_naming_its_cause(local_ray):
    def broken():
        raise ValueError("CarlaEnvConfig.town: no such town 'Town99'")

    with pytest.raises(ray.exceptions.RayActorError, match="no such town 'Town99'"):
        RayVecEnv([broken], num_cpus_per_worker=0.5)


def test_worker_restart_episodes_stay_out_of_the_driving_metrics():
    """An episode cut by a worker's death says nothing about the policy: not a non-collision episode, counted apart."""
    from agents.rl.metrics import DrivingMetrics

    class Logger:
        def __init__(self):
            self.values = {}

        def record(self, key, value):
            self.values[key] = value

    m = DrivingMetrics()
    metrics = {"route_completion": 0.5, "driving_score": 0.5, "stopped_share": 0.0}
    m.update([{"termination_reason": "collision", "driving_metrics": metrics},
              {"termination_reason": "worker_restart", "TimeLimit.truncated": True},
              {"termination_reason": "route_complete", "driving_metrics": metrics}], [True, True, True])
    log = Logger()
    m.record(log)
    assert log.values["rollout/collision_rate"] == 0.5 and log.values["rollout/worker_restarts"] == 1

"""Results do not depend on the machine's knobs: the torch CPU thread count and the numba cache location.

Where they may differ, and the tolerance stated for it:

* **torch threads**: intra-op parallelism can change the order of floating-point reductions (a matmul's or a sum's
  partial sums), which changes float32 results in their last bits, and training amplifies such differences step
  by step. At the sizes used here torch does not split the work and the runs are bit-equal; the test allows
  ``atol = 1e-5`` on the parameters after a short run, the documented tolerance (README, "Determinism").
* **numba cache**: a cached kernel is the same machine code as a freshly compiled one (same target, same
  ``fastmath`` setting), so a cold cache, a warm cache and another cache folder give bit-equal scores. Tested
  exactly, in separate processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import torch
from torch.nn.utils import parameters_to_vector

from agents.rl.grpo import GRPO, GRPOConfig
from tests.test_grpo import TOY, toy_vec_env

TORCH_THREAD_ATOL = 1e-5  # on parameters after a short run (README, "Determinism")


def _toy_parameters(threads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The toy GRPO policy's parameters ``(P,)`` before and after a 64-step run on ``threads`` torch threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = GRPO("MlpPolicy", toy_vec_env(2, seed=5), GRPOConfig(**TOY), seed=5)
        start = parameters_to_vector(model.policy.parameters()).detach().clone()
        model.learn(64)
        return start, parameters_to_vector(model.policy.parameters()).detach()
    finally:
        torch.set_num_threads(previous)


def test_torch_thread_count_changes_training_within_tolerance():
    (start, one), (_, two) = _toy_parameters(1), _toy_parameters(2)
    assert not torch.allclose(one, start, atol=1e-3)  # the run trained: the comparison is not between two inits
    torch.testing.assert_close(one, two, atol=TORCH_THREAD_ATOL, rtol=0.0)


SCORE = """
import json, sys
import numpy as np
from envs.scenes.bank import ScenarioBank
from envs.sim.scoring import problem_from_scene
from rewards.scorer import score_group

bank = ScenarioBank(4, seed=11)
rng = np.random.default_rng(0)
out = []
for i in range(len(bank)):
    scene = bank[i]
    problem = problem_from_scene(scene, scene.num_frames // 3)
    speed = rng.uniform(0.0, 15.0, (8, 1))
    t = np.arange(1, 9) * 0.5
    cand = np.zeros((8, 8, 3))
    cand[..., 0] = speed * t
    cand[..., 1] = rng.normal(0.0, 0.5, (8, 1)) * t
    r = score_group(problem, cand)
    out.append([r.pdms.tolist(), r.ep.tolist(), r.ttc.tolist(), r.progress.tolist()])
json.dump(out, sys.stdout)
"""


def _scores(cache: str) -> list:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache}
    out = subprocess.run([sys.executable, "-c", SCORE], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_numba_cache_location_does_not_change_scores(tmp_path):
    """Cold cache in folder A, the same cache warm, a cold cache in folder B: bit-equal scores."""
    cold = _scores(str(tmp_path / "a"))
    assert any((tmp_path / "a").rglob("*.nbi"))  # the kernels were cached there
    warm = _scores(str(tmp_path / "a"))
    other = _scores(str(tmp_path / "b"))
    values = np.asarray(cold, dtype=float)
    assert values.size > 100 and np.isfinite(values).mean() > 0.9
    np.testing.assert_array_equal(values, np.asarray(warm, dtype=float))
    np.testing.assert_array_equal(values, np.asarray(other, dtype=float))

import numpy as np, gymnasium, envs
from rewards import kernels
import rewards.kernels as K
from rewards.reference_planner import _project_kernel
env = gymnasium.make("SafeAlign/Replay-ClosedLoop-v0")
obs, info = env.reset(seed=0)
for _ in range(6):
    obs, r, term, trunc, info = env.step(env.unwrapped.logged_action())
    env.unwrapped.score_group(np.stack([env.unwrapped.logged_action()] * 3))
    if term or trunc:
        env.reset()
exec(open("/tmp/fp/fingerprint.py").read().replace("sys.argv[1]", "'/tmp/fp/x.npz'"))
for name in K.__all__:
    f = getattr(K, name)
    if hasattr(f, "signatures"):
        print(name, len(f.signatures), [str(s)[:0] for s in f.signatures] and "")
        if len(f.signatures) > 1:
            for s in f.signatures: print("   ", s)
print("_project_kernel", len(_project_kernel.signatures))

"""Behaviour cloning of the Gaussian trajectory policy: the fast-study stand-in for the VLA's two SFT modes.

The VLA's SFT (:mod:`agents.sft`) trains positive-only and negative-enhanced policies on the anchor dataset; the
Gaussian trajectory policy cannot read a negative as input or state a label, so its analogues are:

* ``"positive"`` (positive-only): regress the policy's mean onto the normalised action of the safe target
  (:func:`envs.wrappers.normalize_trajectories`) on the same decisions as the VLA's positive view (safe expert-log
  frames, :func:`agents.sft.data.expert_frames`, and every pair's verified positive at its decision frame):
  ``L_pos = mean_i ||mu(o_i) - a_i^+||^2``;
* ``"negative"`` (negative-enhanced, an **MLP analogue**, not the paper's method): the same, plus a hinge that pushes
  the mean at least ``negative_margin`` away from each pair's negative action (normalised units, L2 over the 16
  dimensions): ``L_neg = mean_j max(0, m_j - ||mu(o_j) - a_j^-||)^2``, ``L = L_pos + negative_weight * L_neg``
  (pairs without a positive contribute only ``L_neg``); ``m_j = min(negative_margin, ||a_j^+ - a_j^-||)`` for
  pairs with a positive (``margin_cap="positive"``, the default), ``negative_margin`` otherwise or with
  ``margin_cap="none"``.

The log-std is left at its initial value (GRPO needs the exploration). Observations are built with
:func:`envs.observation.build_observation` from the logged ego at each decision frame, with the env's observation
configuration (what the closed-loop env shows at the same state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from agents.rl.grpo.policies import TrajectoryGaussianPolicy
from counterfactual.dataset import AnchorPair
from envs.observation import ObservationConfig, Route, build_observation
from envs.scenes.scene import Scene
from envs.sim.scoring import PRESENT_FUTURES
from envs.wrappers import normalize_trajectories

BC_MODES = ("positive", "negative")
"""Behaviour-cloning views (positive-only, negative-enhanced analogue)."""

MARGIN_CAPS = ("none", "positive")
"""Choices of :attr:`BCConfig.margin_cap`."""

DEMONSTRATIONS = ("log", "teacher")
"""Choices of :attr:`BCConfig.demonstrations`."""


@dataclass
class BCConfig:
    """Behaviour-cloning settings."""

    steps: int = 300
    """Optimizer steps."""
    batch_size: int = 64
    """Samples per step."""
    learning_rate: float = 1e-3
    """Adam learning rate."""
    negative_weight: float = 1.0
    """Weight of the negative hinge (``"negative"`` mode)."""
    negative_margin: float = 1.0
    """Margin of the negative hinge [normalised action units, L2 over 16 dims]."""
    margin_cap: str = "positive"
    """``"positive"`` (default since 2026-12-07): a pair with a verified positive uses ``min(negative_margin,
    ||a+ - a-||)``, so the hinge never pushes the mean past the pair's own safe target (on the world-v2 bank ~40% of
    the pairs' positives lie within 1.0 of their negative); pairs without a positive keep ``negative_margin``.
    ``"none"`` (before): every pair's hinge uses ``negative_margin``. Measured in docs/grpo_ablation.md."""

    demonstrations: str = "log"
    """The expert rows' targets: ``"log"`` (default) the safe expert-log frames with the log's own trajectory;
    ``"teacher"`` the logged states every :attr:`teacher_stride` from the closed-loop start while a full 4 s of log
    remains, each with the env's group-score best response there (:meth:`envs.replay_env.ReplayEnv.best_response`,
    the logged path at the fraction of its speed the group score rates highest; left out where that plan collides),
    so the states before a logged crash are taught to brake (:func:`teacher_decisions`). Pairs' rows are unchanged.
    docs/grpo_ablation.md, "Behaviour cloning the teacher"."""
    teacher_stride: float = 0.2
    """``demonstrations="teacher"``: time between the taught states of a scene [s]."""
    teacher_futures: str = "log"
    """``demonstrations="teacher"``: the other agents' futures the teacher's best response is scored against, one of
    :data:`envs.sim.scoring.PRESENT_FUTURES`: ``"log"`` (default) their logged futures (privileged: what it teaches
    at a state is partly unknowable from that state); ``"cv"`` constant velocity, ``"ctra"`` constant turn rate and
    acceleration of the last 0.5 s (present and past only: the teacher's choice is a function of the present state).
    Used for the teacher's rows and its DAgger rounds alike. docs/grpo_ablation.md, "A teacher that reads only the
    present"."""
    dagger_rounds: int = 0
    """``demonstrations="teacher"``: DAgger-style rounds after the first fit (0: none): the fitted policy drives the
    training env closed loop (its mean, :attr:`dagger_steps` env steps), the teacher's best response at every state
    it reaches joins the data (:func:`dagger_data`), and the policy is fitted again on everything so far."""
    dagger_steps: int = 256
    """Env steps (over all training envs) the policy drives per DAgger round."""

    def __post_init__(self) -> None:
        if self.margin_cap not in MARGIN_CAPS:
            raise ValueError(f"BCConfig.margin_cap must be one of {MARGIN_CAPS}, got {self.margin_cap!r}")
        if self.demonstrations not in DEMONSTRATIONS:
            raise ValueError(f"BCConfig.demonstrations must be one of {DEMONSTRATIONS}, got {self.demonstrations!r}")
        if self.teacher_futures not in PRESENT_FUTURES:
            raise ValueError(f"BCConfig.teacher_futures must be one of {PRESENT_FUTURES}, got {self.teacher_futures!r}")
        if not self.teacher_stride > 0:
            raise ValueError(f"BCConfig.teacher_stride: expected > 0 [s], got {self.teacher_stride!r}")
        for name in ("dagger_rounds", "dagger_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "dagger_rounds" else 1):
                raise ValueError(f"BCConfig.{name}: expected an int >= {0 if name == 'dagger_rounds' else 1}, got "
                                 f"{value!r}")
        if self.teacher_futures != "log" and self.demonstrations != "teacher":
            raise ValueError(f"BCConfig.teacher_futures={self.teacher_futures!r} is the teacher's; it needs "
                             f"demonstrations='teacher' (got {self.demonstrations!r})")
        if self.dagger_rounds and self.demonstrations != "teacher":
            raise ValueError("BCConfig.dagger_rounds: DAgger relabels the policy's own states with the teacher; it needs "
                             f"demonstrations='teacher' (got {self.demonstrations!r})")


@dataclass
class BCData:
    """Rendered samples: observations (dict of stacked arrays), targets and negatives as normalised actions."""

    observations: dict[str, np.ndarray]
    """``{key: (N, ...)}`` as the env returns them (BEV HWC)."""
    targets: np.ndarray
    """``(N, 8, 2)`` normalised safe actions (NaN where none)."""
    negatives: np.ndarray
    """``(N, 8, 2)`` normalised negative actions (NaN where none)."""
    kinds: list[str]
    """``"expert"`` or ``"pair"`` per sample."""

    def __len__(self) -> int:
        return len(self.kinds)


def teacher_decisions(scenes: Sequence[Scene], env_config: Any = None, stride: float = 0.2,
                      fractions: Sequence[float] | None = None,
                      futures: str = "log") -> list[tuple[int, int, np.ndarray]]:
    """The teacher's decisions on ``scenes`` (:attr:`BCConfig.demonstrations` ``"teacher"``): ``[(scene index, frame,
    trajectory (8, 3) [m, m, rad])]`` at the logged states every ``stride`` [s] from each scene's closed-loop start
    frame while the log holds the full 4 s horizon, the trajectory the env's
    :meth:`~envs.replay_env.ReplayEnv.best_response` there (``fractions``: its default family; ``futures``: the
    other agents' futures it is scored against, :attr:`BCConfig.teacher_futures`); states whose best plan collides
    (under those futures) are left out. ``env_config``: the :class:`~envs.replay_env.EnvConfig` whose scorer and
    reward judge (default ``EnvConfig()``; its BEV is not rendered). Deterministic."""
    import dataclasses

    from envs.replay_env import EnvConfig, ReplayEnv
    from envs.sim.scoring import BEST_RESPONSE_FRACTIONS

    config = dataclasses.replace(env_config or EnvConfig(), bev=None)
    env = ReplayEnv(list(scenes), "closed_loop", config)
    fractions = BEST_RESPONSE_FRACTIONS if fractions is None else fractions
    out: list[tuple[int, int, np.ndarray]] = []
    horizon = config.pdm.horizon
    for i in range(len(scenes)):
        _, info = env.reset(seed=i, options={"scene_index": i})  # the start frame of an evaluation of scene i
        step = max(1, int(round(stride / scenes[i].dt)))
        t = env.t
        while info.get("logged_horizon", horizon) >= horizon - 1e-9:
            best = env.best_response(fractions, futures)
            if not best["is_collision"]:
                out.append((i, t, np.asarray(best["trajectory"], dtype=np.float64)))
            t += step
            try:
                _, info = env.reset(options={"scene_index": i, "t": t})
            except ValueError:  # past the env's last start frame for this scene
                break
    return out


def build_bc_data(scenes: Iterable[Scene], pairs: Sequence[AnchorPair], observation: ObservationConfig,
                  max_speed: float, max_yaw_rate: float, expert_frames_per_scene: int = 4,
                  frame_sampling: str = "even", demonstrations: str = "log", teacher_stride: float = 0.2,
                  env_config: Any = None, teacher_futures: str = "log") -> BCData:
    """Samples of ``scenes`` (safe expert frames; with ``demonstrations="teacher"`` the teacher's decisions,
    :func:`teacher_decisions` with ``teacher_stride``, ``env_config`` and ``teacher_futures``) and ``pairs`` (their
    decision frames; scenes re-created from ``pair.observation_ref``); ``frame_sampling`` chooses the expert frames
    (``SampleConfig.frame_sampling``: ``"even"``, ``"hazard_window"`` or ``"hazard_dense"``). Deterministic."""
    from agents.sft.data import SampleConfig, expert_frames, pair_scenes
    from envs.sim.scoring import trajectory_from_log

    if demonstrations not in DEMONSTRATIONS:
        raise ValueError(f"build_bc_data: demonstrations must be one of {DEMONSTRATIONS}, got {demonstrations!r}")
    select = SampleConfig(expert_frames_per_scene=expert_frames_per_scene, frame_sampling=frame_sampling)
    obs_rows: list[dict[str, Any]] = []
    targets, negatives, kinds = [], [], []
    nan = np.full((8, 3), np.nan)
    scenes = list(scenes)
    if demonstrations == "teacher":
        routes: dict[int, Route] = {}
        for i, t, trajectory in teacher_decisions(scenes, env_config, teacher_stride, futures=teacher_futures):
            route = routes.setdefault(i, Route.from_scene(scenes[i]))
            obs_rows.append(build_observation(scenes[i], t, config=observation, route=route))
            targets.append(trajectory)
            negatives.append(nan)
            kinds.append("expert")
    else:
        for scene in scenes:
            route = Route.from_scene(scene)
            for t in expert_frames(scene, select):
                obs_rows.append(build_observation(scene, t, config=observation, route=route))
                targets.append(trajectory_from_log(scene, t))
                negatives.append(nan)
                kinds.append("expert")
    for pair, scene, route in pair_scenes(pairs):
        obs_rows.append(build_observation(scene, int(pair.decision_frame), config=observation, route=route))
        targets.append(nan if pair.positive is None else pair.positive)
        negatives.append(pair.negative)
        kinds.append("pair")
    if not obs_rows:
        raise ValueError("build_bc_data: no samples (no safe expert frame and no pair)")

    def norm(trajs: list[np.ndarray]) -> np.ndarray:
        arr = np.asarray(trajs, dtype=np.float64)
        out = normalize_trajectories(np.nan_to_num(arr), max_speed, max_yaw_rate).astype(np.float32)
        out[np.isnan(arr).any(axis=(1, 2))] = np.nan
        return out

    observations = {k: np.stack([np.asarray(o[k]) for o in obs_rows]) for k in obs_rows[0]}
    return BCData(observations, norm(targets), norm(negatives), kinds)


def dagger_data(model: Any, steps: int, max_speed: float, max_yaw_rate: float,
                fractions: Sequence[float] | None = None, futures: str = "log") -> BCData:
    """The teacher's labels at the states the model's policy reaches (:attr:`BCConfig.dagger_rounds`): ``model``
    (an SB3 algorithm with its training VecEnv, e.g. the pipeline's GRPO model) drives its env with its mean
    (``predict(deterministic=True)``) for ``steps`` steps over all envs; at every state the env's
    :meth:`~envs.replay_env.ReplayEnv.best_response` (``fractions``: its default family; ``futures``:
    :attr:`BCConfig.teacher_futures`) is the target, left out where its plan collides. Observations are stored as
    the env returns them before SB3's image transposition (BEV HWC, as :func:`build_bc_data`'s). Deterministic for
    a seeded env."""
    from stable_baselines3.common.vec_env import VecTransposeImage

    from agents.rl.env import call_each
    from envs.sim.scoring import BEST_RESPONSE_FRACTIONS

    env = model.get_env()
    if env is None:
        raise ValueError("dagger_data: the model has no env to drive")
    fractions = tuple(BEST_RESPONSE_FRACTIONS if fractions is None else fractions)
    transposed = set(getattr(env, "image_space_keys", ())) if isinstance(env, VecTransposeImage) else set()
    obs = env.reset()
    rows: list[dict[str, Any]] = []
    targets: list[np.ndarray] = []
    n = env.num_envs
    for _ in range(max(1, steps // n)):
        best = call_each(env, "best_response", [(fractions, futures)] * n)
        for i, b in enumerate(best):
            if not b["is_collision"]:
                rows.append({k: np.moveaxis(v[i], 0, -1) if k in transposed else np.asarray(v[i])
                             for k, v in obs.items()})
                targets.append(np.asarray(b["trajectory"], dtype=np.float64))
        action, _ = model.predict(obs, deterministic=True)
        obs, _, _, _ = env.step(action)
    if not rows:
        raise ValueError("dagger_data: the teacher's plan collided at every state reached")
    observations = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
    norm = normalize_trajectories(np.asarray(targets), max_speed, max_yaw_rate).astype(np.float32)
    return BCData(observations, norm, np.full_like(norm, np.nan), ["dagger"] * len(rows))


def merge_bc_data(a: BCData, b: BCData) -> BCData:
    """``a`` followed by ``b`` (the same observation keys and shapes)."""
    if set(a.observations) != set(b.observations):
        raise ValueError(f"merge_bc_data: observation keys differ: {sorted(a.observations)} / {sorted(b.observations)}")
    return BCData({k: np.concatenate([a.observations[k], b.observations[k]]) for k in a.observations},
                  np.concatenate([a.targets, b.targets]), np.concatenate([a.negatives, b.negatives]),
                  [*a.kinds, *b.kinds])


def train_bc(policy: TrajectoryGaussianPolicy, data: BCData, mode: str, config: BCConfig | None = None,
             seed: int = 0) -> list[float]:
    """Fit the policy's mean (module docstring; ``config`` default :class:`BCConfig()`); returns the loss per step.
    The log-std is not trained."""
    config = BCConfig() if config is None else config
    if mode not in BC_MODES:
        raise ValueError(f"train_bc: mode must be one of {BC_MODES}, got {mode!r}")
    rng = np.random.default_rng(seed)
    has_pos = ~np.isnan(data.targets).any(axis=(1, 2))
    has_neg = ~np.isnan(data.negatives).any(axis=(1, 2))
    use = has_pos | (has_neg if mode == "negative" else False)
    index = np.flatnonzero(use)
    margins = np.full(len(data), float(config.negative_margin))
    if config.margin_cap == "positive":  # min(m, ||a+ - a-||) where the pair has a positive
        gap = np.sqrt(((np.nan_to_num(data.targets) - np.nan_to_num(data.negatives)) ** 2).sum(axis=(1, 2)))
        capped = has_pos & has_neg
        margins[capped] = np.minimum(margins[capped], gap[capped])
    params = [p for name, p in policy.named_parameters() if name != "log_std"]
    opt = torch.optim.Adam(params, lr=config.learning_rate)
    policy.set_training_mode(True)
    losses = []
    for _ in range(config.steps):
        batch = rng.choice(index, size=min(config.batch_size, len(index)), replace=False)
        obs = {k: v[batch] for k, v in data.observations.items()}
        mean = policy.distribution(policy.obs_to_tensor(obs)[0]).mean.reshape(len(batch), 8, 2)
        loss = mean.new_zeros(())
        pos = torch.as_tensor(has_pos[batch])
        if bool(pos.any()):  # L_pos = mean ||mu - a+||^2
            target = torch.as_tensor(np.nan_to_num(data.targets[batch]))
            loss = loss + ((mean - target) ** 2).sum(dim=(1, 2))[pos].mean()
        neg = torch.as_tensor(has_neg[batch])
        if mode == "negative" and bool(neg.any()):  # L_neg = mean max(0, m_j - ||mu - a-||)^2
            negative = torch.as_tensor(np.nan_to_num(data.negatives[batch]))
            dist = torch.sqrt(((mean - negative) ** 2).sum(dim=(1, 2)) + 1e-12)
            margin = torch.as_tensor(margins[batch], dtype=dist.dtype)
            loss = loss + config.negative_weight * (torch.relu(margin - dist) ** 2)[neg].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    policy.set_training_mode(False)
    return losses

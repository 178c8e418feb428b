"""The policy interface (NAVSIM-style): a policy maps a :class:`PolicyInput` to one trajectory.

* :class:`PolicyInput`: what a policy may look at: the observation dict (:func:`envs.observation.build_observation`),
  its text prompt, and, for **privileged** policies only, the scorer's view of the state (``ScoringProblem``: ego
  state, the other agents' logged future, the map) and the logged scene with the current frame.
* :class:`Policy`: ``act(inp) -> (8, 3) float32`` ego-frame rear-axle poses [m, m, rad] at 0.5 s over 4 s (the
  action space of :mod:`envs.spaces`), a ``name`` for results tables, and ``requires_privileged``. Evaluation
  builds privileged inputs only for policies that declare it, so a learned policy can never read the future.

:func:`policy_input` builds the input from a (possibly wrapped) :class:`~envs.replay_env.ReplayEnv` or any env with
the same ``current_problem`` / ``scene`` / ``t`` accessors (``CarlaEnv``).
"""

from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import numpy as np

from envs.observation import text_prompt
from envs.scenes.scene import Scene
from rewards.types import ScoringProblem


@dataclass(frozen=True, eq=False)
class PolicyInput:
    """One decision's input.

    Attributes:
        observation: the observation dict (``"bev"``?, ``"ego_state"``, ``"command"``, ``"history"``, and
            ``"ego_velocity"`` / ``"agents"`` with ``EnvConfig.prompt_state``).
        prompt: the text prompt of the observation (:func:`envs.observation.text_prompt`).
        problem: privileged: the scorer's view (current ego state incl. its world pose, agents' logged future,
            map), or None.
        scene: privileged: the logged scene, or None.
        t: privileged: the current frame of ``scene``, or None.
    """

    observation: Mapping[str, Any]
    prompt: str = ""
    problem: ScoringProblem | None = None
    scene: Scene | None = None
    t: int | None = None

    @property
    def privileged(self) -> bool:
        """Whether the privileged fields are filled."""
        return self.problem is not None and self.scene is not None and self.t is not None

    def require_privileged(self, who: str) -> tuple[ScoringProblem, Scene, int]:
        """``(problem, scene, t)``; ``ValueError`` naming ``who`` when the input is not privileged."""
        if not self.privileged:
            raise ValueError(f"{who}: needs a privileged PolicyInput (problem, scene, t); build it with "
                             "agents.base.policy_input(env, obs, privileged=True)")
        return self.problem, self.scene, int(self.t)  # type: ignore[return-value]


DECISIONS = ("greedy", "sampled")
"""How a learned policy decides (:meth:`Policy.set_decisions`): its mode (the default), or one sample of the
distribution it trains (the token policy at a temperature, the Gaussian at its std)."""


class Policy(abc.ABC):
    """A driving policy: ``act(PolicyInput) -> (8, 3) float32`` trajectory in the ego frame.

    Subclasses set :attr:`name` and, if they read the scene's future or the scorer's view,
    ``requires_privileged = True``. Stochastic learned policies set :attr:`can_sample` and honour
    :attr:`decisions` in ``act`` (sampling inside :meth:`decision_rng`, so sampled evaluations repeat exactly).
    """

    name: str = "policy"
    """Label in results tables."""
    requires_privileged: bool = False
    """True for policies that read ``PolicyInput.problem`` / ``scene`` (planners with oracle knowledge)."""
    can_sample: bool = False
    """Whether ``act`` can draw a sampled decision (``set_decisions("sampled")``)."""
    decisions: str = "greedy"
    """``greedy`` (the mode; the default) or ``sampled`` (:data:`DECISIONS`)."""
    temperature: float = 1.0
    """Sampling temperature of ``sampled`` decisions (token policies; the Gaussian policy samples at its own std)."""

    @abc.abstractmethod
    def act(self, inp: PolicyInput) -> np.ndarray:
        """The trajectory ``(8, 3)`` float32 [m, m, rad] for one input (greedy: deterministic)."""

    def reset(self) -> None:
        """Called at the start of every episode (stateless policies ignore it)."""

    def set_decisions(self, mode: str, temperature: float = 1.0, seed: int = 0) -> None:
        """Decide greedily (``greedy``) or by one sample of the policy's distribution (``sampled``, at
        ``temperature``; the ``k``-th sampled decision since this call draws from a generator seeded with
        ``(seed, k)``, so an evaluation in a fixed order repeats exactly). ``ValueError`` for an unknown mode, a
        temperature <= 0, or ``sampled`` on a policy that cannot sample (a planner)."""
        if mode not in DECISIONS:
            raise ValueError(f"decisions: expected one of {DECISIONS}, got {mode!r}")
        if not temperature > 0:
            raise ValueError(f"temperature: expected > 0, got {temperature!r}")
        if mode == "sampled" and not self.can_sample:
            raise ValueError(f"decisions='sampled': policy {self.name!r} ({type(self).__name__}) has no sampled "
                             "decision (deterministic planner)")
        self.decisions, self.temperature = mode, float(temperature)
        self._sample_seed, self._samples_drawn = int(seed), 0

    @contextlib.contextmanager
    def decision_rng(self) -> Iterator[None]:
        """Run the body with torch's CPU generator seeded for the next sampled decision (the global state is
        restored afterwards): seed ``(seed, k)`` of :meth:`set_decisions`, ``k`` counting sampled decisions."""
        import torch

        k = getattr(self, "_samples_drawn", 0)
        self._samples_drawn = k + 1
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(np.random.SeedSequence([getattr(self, "_sample_seed", 0), k]).generate_state(1)[0]))
            yield


def policy_input(env: Any, obs: Mapping[str, Any], info: Mapping[str, Any] | None = None,
                 privileged: bool = False) -> PolicyInput:
    """The :class:`PolicyInput` of an environment's current state.

    Args:
        env: a ``ReplayEnv`` / ``CarlaEnv`` or a Gymnasium wrapper around one.
        obs: the observation the env just returned.
        info: the env's info (its ``"prompt"`` is used when present; otherwise the prompt is built from ``obs``).
        privileged: fill ``problem`` / ``scene`` / ``t`` from the env (only for policies that declare
            ``requires_privileged``).
    """
    base = getattr(env, "unwrapped", env)
    prompt = (info or {}).get("prompt")
    if prompt is None:
        interval = getattr(getattr(base, "config", None), "history_interval", 0.5)
        prompt = text_prompt(obs, interval)
    if not privileged:
        return PolicyInput(observation=obs, prompt=prompt)
    return PolicyInput(observation=obs, prompt=prompt, problem=base.current_problem(), scene=base.scene, t=base.t)

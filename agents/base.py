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
from dataclasses import dataclass
from typing import Any, Mapping

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


class Policy(abc.ABC):
    """A driving policy: ``act(PolicyInput) -> (8, 3) float32`` trajectory in the ego frame.

    Subclasses set :attr:`name` and, if they read the scene's future or the scorer's view,
    ``requires_privileged = True``.
    """

    name: str = "policy"
    """Label in results tables."""
    requires_privileged: bool = False
    """True for policies that read ``PolicyInput.problem`` / ``scene`` (planners with oracle knowledge)."""

    @abc.abstractmethod
    def act(self, inp: PolicyInput) -> np.ndarray:
        """The trajectory ``(8, 3)`` float32 [m, m, rad] for one input (deterministic for evaluation)."""

    def reset(self) -> None:
        """Called at the start of every episode (stateless policies ignore it)."""


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

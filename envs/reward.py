"""The environments' reward: a linear combination of named scorer terms (HighwayEnv / Waymax style).

``reward = w_score * score + w_collision * collision`` where

* ``score`` is, when the scene has a map, **SP-PDMS** (default, ``EnvConfig.reward_score="sp_pdms"``): the PDM score
  with EP normalised against the **safe-progress reference** (the largest progress a careful proposal achieves
  safely against the logged agents, :func:`rewards.scorer.safe_progress_for`), so standing still earns EP 0 wherever
  moving safely was possible; or the NAVSIM-faithful ``pdms`` (``reward_score="pdms"``), whose EP reference is the
  PDM-Closed-like planner: on accident-heavy data that reference often collides, its masked progress is 0 and EP is
  1 for any candidate, which makes stopping free (measured: ``benchmarks/bench_degenerate.py``). Both are always
  reported (``pdms``, ``ep`` and ``sp_pdms``, ``sp_ep``). Without a map (DeepAccident) PDMS, DAC, DDC and EP
  are unavailable (NaN), and ``score`` is the **map-free score** (:func:`rewards.pdm.map_free_score` without a
  progress measure: ``NC * (w_ttc TTC + w_c C) / (w_ttc + w_c)``, with NAVSIM's weights 5 and 2
  ``NC * (5 TTC + 2 C) / 7``), reported under its own name ``map_free_score``, never as ``pdms``;
* ``collision`` is the scorer's collision term (``-PDMConfig.collision_penalty`` for a candidate with any ego
  collision in its 4 s horizon, at fault or not, else 0).

Closed loop adds ``w_terminal_collision * terminal_collision`` where ``terminal_collision`` is ``-1`` on the step in
which the simulated ego actually collides (see :mod:`envs.replay_env`).
"""

from __future__ import annotations

import numpy as np

from rewards.config import PDMConfig
from rewards.pdm import map_free_score

REWARD_TERMS = ("nc", "dac", "ddc", "ttc", "ep", "comfort", "pdms", "sp_ep", "sp_pdms", "collision", "map_free_score",
                "score", "reward")
"""The float terms a step reports in ``info["rewards"]`` (map-dependent ones are NaN without a map)."""
REWARD_SCORES = ("sp_pdms", "pdms")
"""Scores the reward can use where the scene has a map (see the module docstring)."""


def reward_terms(result, pdm_config: PDMConfig, w_score: float, w_collision: float, safe_progress: float | None = None,
                 reward_score: str = "sp_pdms") -> dict[str, np.ndarray]:
    """Every named term of a scored group and the resulting reward.

    Args:
        result: a ``rewards.pdm.PDMResult`` for G candidates (EP normalised against the NAVSIM-faithful reference).
        pdm_config: the scorer configuration used.
        w_score: weight of ``score`` (SP-PDMS or PDMS, or the map-free score without a map).
        w_collision: weight of the collision term.
        safe_progress: the safe-progress reference [m] (None: SP-PDMS normalises EP among the group).
        reward_score: ``"sp_pdms"`` or ``"pdms"`` (:data:`REWARD_SCORES`).

    Returns:
        ``{name: (G,) float64}`` with the scorer's terms (``nc, dac, ddc, ttc, ep, comfort, pdms, collision`` ...),
        ``map_free_score``, ``score``, ``reward``, and ``(G,)`` arrays ``is_collision`` (bool),
        ``at_fault_collision`` (bool), ``collision_time`` [s] (NaN without a collision) and ``colliding_agent_id``
        (int64, -1 without a collision). Plain numpy, picklable.
    """
    if reward_score not in REWARD_SCORES:
        raise ValueError(f"reward_score: expected one of {REWARD_SCORES}, got {reward_score!r}")
    terms = {name: np.asarray(value, dtype=np.float64) for name, value in result.terms(pdm_config).items()}
    sp = result.renormalized(safe_progress, pdm_config)
    terms["sp_ep"] = np.asarray(sp.ep, dtype=np.float64)
    terms["sp_pdms"] = np.asarray(sp.pdms, dtype=np.float64)
    mfs = map_free_score(terms["nc"], terms["ttc"], terms["comfort"], pdm_config)
    chosen = terms[reward_score]
    score = np.where(np.isnan(chosen), mfs, chosen)
    out = dict(terms)
    out["map_free_score"] = mfs
    out["score"] = score
    out["reward"] = w_score * score + w_collision * terms["collision"]
    out["is_collision"] = np.asarray(result.collision, dtype=bool)
    out["at_fault_collision"] = np.asarray(result.at_fault_collision, dtype=bool)
    out["collision_time"] = np.asarray(result.collision_time, dtype=np.float64)
    out["colliding_agent_id"] = np.asarray(result.colliding_agent_id, dtype=np.int64)
    return out

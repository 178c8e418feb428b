"""The environments' reward: a linear combination of named scorer terms (HighwayEnv / Waymax style).

``reward = w_score * score + w_collision * collision`` where

* ``score`` is the PDM score (``pdms``) when the scene has a map; without a map (DeepAccident) PDMS, DAC, DDC and EP
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

REWARD_TERMS = ("nc", "dac", "ddc", "ttc", "ep", "comfort", "pdms", "collision", "map_free_score", "score", "reward")
"""The float terms a step reports in ``info["rewards"]`` (map-dependent ones are NaN without a map)."""


def reward_terms(result, pdm_config: PDMConfig, w_score: float, w_collision: float) -> dict[str, np.ndarray]:
    """Every named term of a scored group and the resulting reward.

    Args:
        result: a ``rewards.pdm.PDMResult`` for G candidates.
        pdm_config: the scorer configuration used.
        w_score: weight of ``score`` (PDMS, or the map-free score without a map).
        w_collision: weight of the collision term.

    Returns:
        ``{name: (G,) float64}`` with the scorer's terms (``nc, dac, ddc, ttc, ep, comfort, pdms, collision`` ...),
        ``map_free_score``, ``score``, ``reward``, and ``(G,)`` arrays ``is_collision`` (bool),
        ``at_fault_collision`` (bool), ``collision_time`` [s] (NaN without a collision) and ``colliding_agent_id``
        (int64, -1 without a collision). Plain numpy, picklable.
    """
    terms = {name: np.asarray(value, dtype=np.float64) for name, value in result.terms(pdm_config).items()}
    mfs = map_free_score(terms["nc"], terms["ttc"], terms["comfort"], pdm_config)
    pdms = terms["pdms"]
    score = np.where(np.isnan(pdms), mfs, pdms)
    out = dict(terms)
    out["map_free_score"] = mfs
    out["score"] = score
    out["reward"] = w_score * score + w_collision * terms["collision"]
    out["is_collision"] = np.asarray(result.collision, dtype=bool)
    out["at_fault_collision"] = np.asarray(result.at_fault_collision, dtype=bool)
    out["collision_time"] = np.asarray(result.collision_time, dtype=np.float64)
    out["colliding_agent_id"] = np.asarray(result.colliding_agent_id, dtype=np.int64)
    return out

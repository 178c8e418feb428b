"""Closed-loop driving metrics of a CARLA episode, CARLA leaderboard convention (``../shared/specs/driving-score.md``).

* **Route completion** RC [%]: the ego's progress along its route divided by the distance the scenario's nominal
  plan (the non-reacting expert, :mod:`envs.carla.scenarios`) covers in the full episode time, capped at 100 %.
* **Infraction penalty** IP: 1.0 multiplied by :data:`INFRACTION_PENALTIES` once per infraction instance
  (collision with a pedestrian 0.50, a vehicle 0.60, anything else 0.65; running a red light 0.70).
* **Driving score** DS = RC x IP of the episode (average DS over episodes, not mean RC x mean IP).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

INFRACTION_PENALTIES = {
    "collision_pedestrian": 0.50,
    "collision_vehicle": 0.60,
    "collision_layout": 0.65,
    "red_light": 0.70,
}
"""Leaderboard penalty coefficient per infraction instance."""


def collision_kind(type_id: str) -> str:
    """Infraction name of a collision with an actor of CARLA type ``type_id``."""
    if type_id.startswith("walker."):
        return "collision_pedestrian"
    if type_id.startswith("vehicle."):
        return "collision_vehicle"
    return "collision_layout"


def driving_metrics(progress: float, target: float, infractions: Iterable[str]) -> dict[str, float | dict]:
    """``{"route_completion", "infraction_penalty", "driving_score", "infractions"}`` of one episode.

    Args:
        progress: route progress driven [m].
        target: route distance of a complete episode [m] (> 0).
        infractions: one name of :data:`INFRACTION_PENALTIES` per instance.
    """
    if not target > 0:
        raise ValueError(f"driving_metrics: target distance must be > 0, got {target!r}")
    counts = Counter(infractions)
    unknown = sorted(set(counts) - set(INFRACTION_PENALTIES))
    if unknown:
        raise ValueError(f"driving_metrics: unknown infractions {unknown}; known: {sorted(INFRACTION_PENALTIES)}")
    rc = 100.0 * min(1.0, max(0.0, progress) / target)
    ip = 1.0
    for name, n in counts.items():
        ip *= INFRACTION_PENALTIES[name] ** n
    return {"route_completion": rc, "infraction_penalty": ip, "driving_score": rc * ip, "infractions": dict(counts)}

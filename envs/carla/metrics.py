"""CARLA collision events to the shared closed-loop driving metrics (:mod:`envs.sim.metrics`).

``CarlaEnv`` counts infractions per instance (collision with a walker, a vehicle, anything else; red lights) and
reports :func:`envs.sim.metrics.driving_metrics` at episode end, with route completion against the distance the
scenario's nominal plan (the non-reacting expert, :mod:`envs.carla.scenarios`) covers in the episode time.
"""

from __future__ import annotations


def collision_kind(type_id: str) -> str:
    """Infraction name (:data:`envs.sim.metrics.INFRACTIONS`) of a collision with an actor of CARLA type ``type_id``."""
    if type_id.startswith("walker."):
        return "pedestrian"
    if type_id.startswith("vehicle."):
        return "vehicle"
    return "static"

"""Built-in SYNTHETIC accident scenario bank: a seeded procedural generator of :class:`~envs.scenes.scene.Scene` logs
modelled on DeepAccident's accident typologies (built on NHTSA pre-crash scenario types), plus normal driving.

Public API:

* :data:`SCENARIO_TYPES`, :data:`ACCIDENT_TYPES`, :data:`VARIANTS`
* :func:`generate_scene` ``(scenario_type, seed, *, variant=None, scene_id=None) -> Scene``
* :class:`ScenarioBank` ``(num_scenes, seed=0, scenario_types=None, normal_fraction=0.25, outcomes="collision",
  outcome_mix=None, difficulty=0.5, roads="classic", road_families=None, background_density=1.0, expert="logged")``
  (``outcomes="varied"``: benign / near-miss / collision variants of every accident typology, decided by the
  geometry, :mod:`envs.scenes.bank.outcomes`; ``expert="reacting"``: their near-miss / benign ego reacts to its
  hazard, :mod:`envs.scenes.bank.react`; ``roads="families"``: parametric road geometry,
  :mod:`envs.scenes.road_families`, chosen per typology by :mod:`envs.scenes.bank.roads`)

Modules: ``motion`` (profiles, poses), ``actors`` (agents, sizes, overlap bookkeeping), ``core`` (contact and
avoidability checks), ``ranges`` (the accident typologies' parameter ranges, shared with the CARLA scenarios),
``road_accidents`` / ``junction_accidents`` / ``normal`` (scenario builders), ``outcomes`` (outcome-varied mode),
``react`` (the reacting expert),
``background`` (traffic), ``roads`` (classic layout or road family per typology), ``generator`` and ``collection``.
Road geometry lives in :mod:`envs.scenes.layouts` and :mod:`envs.scenes.road_families`.
"""

from envs.scenes.bank.collection import ScenarioBank
from envs.scenes.bank.core import CHECK_DECEL, CHECK_LEAD_FRAMES, COLLISION_WINDOW
from envs.scenes.bank.generator import ACCIDENT_TYPES, SCENARIO_TYPES, VARIANTS, generate_scene
from envs.scenes.bank.motion import DT, NUM_FRAMES

__all__ = [
    "ACCIDENT_TYPES",
    "CHECK_DECEL",
    "CHECK_LEAD_FRAMES",
    "COLLISION_WINDOW",
    "DT",
    "NUM_FRAMES",
    "SCENARIO_TYPES",
    "VARIANTS",
    "ScenarioBank",
    "generate_scene",
]

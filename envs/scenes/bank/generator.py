"""``generate_scene``: one synthetic scene of a given scenario type from a seed.

Scenario types follow DeepAccident's accident typologies (themselves built on NHTSA pre-crash scenario types):
by default (``outcome=None``; :mod:`envs.scenes.bank.outcomes` for the outcome-varied mode) in every accident type
the ego "expert" log collides with the scenario's risk agent at ``meta.collision_frame``
(first frame whose oriented ego and agent boxes overlap, by :func:`rewards.geometry.boxes_overlap`; frame 50-61 of
101 at 10 Hz) and touches nobody before; the accident is avoidable
(braking at 6 m/s^2 from 2 s before contact, or for ``head_on_drift`` steering back into the lane, is
collision-free). ``normal`` scenes have no overlap at all. All data is SYNTHETIC (``meta.source == "synthetic"``).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from envs.scenes.bank import junction_accidents as junction
from envs.scenes.bank import road_accidents as road
from envs.scenes.bank.actors import Actor
from envs.scenes.bank.background import add_background
from envs.scenes.bank.core import Core, Retry
from envs.scenes.bank.motion import DT, NUM_FRAMES, velocities
from envs.scenes.bank.normal import NORMAL_VARIANTS, normal
from envs.scenes.bank.outcomes import DEFAULT_DIFFICULTY, OUTCOMES, check_difficulty, vary
from envs.scenes.bank.react import EXPERTS
from envs.scenes.bank.roads import NORMAL_VARIANT_FAMILIES, TYPOLOGY_FAMILIES, Roads
from envs.scenes.layouts import get_layout
from envs.scenes.scene import AgentClass, Scene, SceneMeta

_BUILDERS: dict[str, Callable[..., Core]] = {
    "rear_end": road.rear_end,
    "cut_in": road.cut_in,
    "red_light_runner_left": junction.red_light_runner_left,
    "red_light_runner_right": junction.red_light_runner_right,
    "unprotected_left_turn": junction.unprotected_left_turn,
    "right_turn_vru": junction.right_turn_vru,
    "pedestrian_occluded": road.pedestrian_occluded,
    "head_on_drift": road.head_on_drift,
    "merge_conflict": road.merge_conflict,
    "normal": normal,
}

SCENARIO_TYPES = tuple(_BUILDERS)
"""All scenario types; every one but ``"normal"`` is an accident type."""
ACCIDENT_TYPES = tuple(t for t in SCENARIO_TYPES if t != "normal")
"""Scenario types whose ego log collides."""
VARIANTS: dict[str, tuple[str, ...]] = {
    **{t: ("default",) for t in ACCIDENT_TYPES},
    "right_turn_vru": ("pedestrian", "cyclist"),
    "merge_conflict": ("ego_merges", "ramp_vehicle_merges"),
    "normal": NORMAL_VARIANTS,
}
"""Variants per scenario type (drawn uniformly from the seed unless given)."""
CONFLICT_LABELS = {
    "rear_end": "lead_vehicle_decelerating",
    "cut_in": "vehicle_changing_lanes_same_direction",
    "red_light_runner_left": "straight_crossing_paths",
    "red_light_runner_right": "straight_crossing_paths",
    "unprotected_left_turn": "left_turn_across_path_opposite_direction",
    "right_turn_vru": "right_turn_vs_vulnerable_road_user",
    "pedestrian_occluded": "pedestrian_crossing_from_behind_obstruction",
    "head_on_drift": "opposite_direction_drifting",
    "merge_conflict": "vehicle_merging",
    "normal": "none",
}
"""``meta.extra["conflict"]`` per scenario type: the NHTSA-style pre-crash scenario label (``"none"`` for normal)."""
MAX_ATTEMPTS = 200
"""Parameter draws per scene before giving up (a failed draw is retried from the same random stream)."""
BACKGROUND_RANGE = (3, 12)
"""Number of background agents wanted per scene (inclusive range; fewer when draws keep colliding)."""
MAX_BACKGROUND_DENSITY = 3.0
"""Largest ``background_density`` accepted (wanted agents scale with it; placement gets crowded beyond)."""


def check_background_density(density: float) -> float:
    """``density`` as a float in [0, :data:`MAX_BACKGROUND_DENSITY`]; ``ValueError`` naming it otherwise."""
    if isinstance(density, bool) or not isinstance(density, (int, float, np.floating)) or not (
        0.0 <= density <= MAX_BACKGROUND_DENSITY
    ):
        raise ValueError(f"background_density must be a number in [0, {MAX_BACKGROUND_DENSITY}], got {density!r}")
    return float(density)


def feasible_variants(scenario_type: str, roads: Roads | None) -> tuple[str, ...]:
    """Variants of ``scenario_type`` that run on the allowed families (all of them in the classic mode)."""
    if roads is None or scenario_type != "normal":
        return VARIANTS[scenario_type]
    return tuple(v for v in VARIANTS["normal"] if roads.allowed(NORMAL_VARIANT_FAMILIES[v]))


def check_roads_for(scenario_type: str, roads: Roads | None) -> None:
    """``ValueError`` naming the type and families when ``scenario_type`` runs on none of ``roads.families``."""
    if roads is not None and not (roads.allowed(TYPOLOGY_FAMILIES[scenario_type])
                                  and feasible_variants(scenario_type, roads)):
        raise ValueError(f"scenario type {scenario_type!r} runs on none of road_families={roads.families} "
                         f"(it runs on {TYPOLOGY_FAMILIES[scenario_type]})")


def check_scenario_type(scenario_type: str) -> str:
    """Return ``scenario_type`` if known, else raise ``ValueError`` listing :data:`SCENARIO_TYPES`."""
    if scenario_type not in _BUILDERS:
        raise ValueError(f"unknown scenario type {scenario_type!r}; known types: {', '.join(SCENARIO_TYPES)}")
    return scenario_type


def generate_scene(
    scenario_type: str,
    seed: int,
    *,
    variant: str | None = None,
    scene_id: str | None = None,
    outcome: str | None = None,
    difficulty: float = DEFAULT_DIFFICULTY,
    road_families: Sequence[str] | None = None,
    background_density: float = 1.0,
    expert: str = "logged",
) -> Scene:
    """Generate one SYNTHETIC scene (10 s at 10 Hz, 101 frames) of ``scenario_type`` from ``seed``.

    Args:
        scenario_type: one of :data:`SCENARIO_TYPES`.
        seed: non-negative integer; the same (type, seed, variant) gives identical scenes, and passing the
            variant a seed draws by itself (``meta.extra["variant"]``) gives the same scene as passing None.
        variant: one of ``VARIANTS[scenario_type]``; drawn from the seed when None.
        scene_id: defaults to ``"synthetic/<type>/seed<seed>"``.
        outcome: None (default: accident types always collide, the scene is that of the default bank) or the
            wanted outcome of the outcome-varied mode, one of :data:`~envs.scenes.bank.outcomes.OUTCOMES`
            (:func:`envs.scenes.bank.outcomes.vary`; the geometry decides and ``meta.extra["outcome"]`` says what it
            is; ``normal`` scenes just get ``outcome == "benign"``).
        difficulty: hazard difficulty in [0, 1] of the varied mode (how close a near-miss / benign hazard passes).
        road_families: None (default: the classic layouts) or the parametric road families
            (:data:`envs.scenes.road_families.FAMILIES`) the scene may be built on; the family and its parameters
            are drawn from the seed (``meta.extra["road_family"]``, ``["road_params"]``; the allowed list in
            ``["road_families"]``). A ``normal`` scene's variant is then drawn among the variants that run on these
            families.
        background_density: scale of the number of background agents wanted (1.0: the default 3-12 per scene;
            other values are recorded in ``meta.extra["background_density"]``).
        expert: ``"logged"`` (default: the ego keeps its speed plan) or ``"reacting"`` (needs ``outcome``: a
            near-miss / benign scene's ego reacts to its hazard and the outcome is solved against it,
            :mod:`envs.scenes.bank.react`; recorded in ``meta.extra["expert"]`` and, for those scenes,
            ``["reaction"]``; collision and normal scenes are the logged expert's).

    Returns:
        A validated :class:`~envs.scenes.scene.Scene` with ``meta.source == "synthetic"``; scenes whose log collides
        set ``meta.colliding_agent_id`` and ``meta.collision_frame`` (every accident type unless ``outcome`` is
        given). With ``outcome`` given, ``meta.extra`` also holds ``outcome``, ``outcome_wanted``,
        ``outcome_redraws``, ``min_gap_m`` [m], ``outcome_params``, ``difficulty``, ``hazard_agent_id`` and
        ``hazard_agent_class`` (accident types).
    """
    check_scenario_type(scenario_type)
    if variant is not None and variant not in VARIANTS[scenario_type]:
        raise ValueError(f"unknown variant {variant!r} of {scenario_type!r}; known: {VARIANTS[scenario_type]}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if outcome is not None and outcome not in OUTCOMES:
        raise ValueError(f"outcome must be None or one of {OUTCOMES}, got {outcome!r}")
    if expert not in EXPERTS:
        raise ValueError(f"expert must be one of {EXPERTS}, got {expert!r}")
    if expert != "logged" and outcome is None:
        raise ValueError(f"expert={expert!r} needs an outcome (the outcome-varied bank); the default bank's ego "
                         "is the logged, inattentive one")
    difficulty = check_difficulty(difficulty)
    background_density = check_background_density(background_density)
    roads = None if road_families is None else Roads(tuple(road_families))
    check_roads_for(scenario_type, roads)
    if roads is not None and variant is not None and variant not in feasible_variants(scenario_type, roads):
        raise ValueError(f"variant {variant!r} of {scenario_type!r} runs on none of road_families={roads.families}")
    rng = np.random.default_rng(int(seed))
    drawn = str(rng.choice(feasible_variants(scenario_type, roads)))  # always drawn: an explicit variant keeps the stream
    variant = drawn if variant is None else variant
    road_facts: dict = {}
    if roads is not None:
        road_facts["road_families"] = list(roads.families)
    if background_density != 1.0:
        road_facts["background_density"] = background_density
    if roads is not None:  # one family per scene, uniform over the allowed ones (its parameters: per draw)
        fams = roads.allowed(NORMAL_VARIANT_FAMILIES[variant] if scenario_type == "normal"
                             else TYPOLOGY_FAMILIES[scenario_type])
        roads = Roads((fams[int(rng.integers(len(fams)))],))
    builder = _BUILDERS[scenario_type]
    for _ in range(MAX_ATTEMPTS):
        try:
            core = builder(rng, variant) if roads is None else builder(rng, variant, roads)
        except Retry:
            continue
        if outcome in (None, "collision") or scenario_type == "normal" or core.family is not None:
            break  # (a draw with no uncrashed variant is redrawn when a near-miss / benign scene is wanted)
    else:  # pragma: no cover - the builders' parameter ranges make this practically unreachable
        raise RuntimeError(f"{scenario_type} (seed {seed}): no valid parameters in {MAX_ATTEMPTS} draws")
    facts: dict = {}
    if outcome is not None and scenario_type == "normal":
        facts = {"outcome": "benign", "difficulty": difficulty}
    elif outcome is not None:
        core, facts = vary(core, outcome, rng, difficulty, expert)
        facts["difficulty"] = difficulty
    if expert != "logged":
        facts["expert"] = expert
    layout = get_layout(core.layout)
    num_bg = int(rng.integers(BACKGROUND_RANGE[0], BACKGROUND_RANGE[1] + 1))
    if background_density != 1.0:
        num_bg = int(round(num_bg * background_density))
    background = add_background(rng, layout, [core.ego, *core.avoid], core.actors, num_bg)
    scene_id = scene_id or f"synthetic/{scenario_type}/seed{int(seed)}"
    return _assemble(scene_id, scenario_type, int(seed), core, background, rng, {**facts, **road_facts})


def _assemble(
    scene_id: str,
    scenario_type: str,
    seed: int,
    core: Core,
    background: list[Actor],
    rng: np.random.Generator,
    facts: dict | None = None,
) -> Scene:
    """Stack the agents (ids drawn at random from 1..999, rows sorted by id) and build the scene."""
    layout = get_layout(core.layout)
    actors = [*core.actors, *background]
    n = len(actors)
    ids = rng.choice(np.arange(1, 1000), size=n, replace=False)
    order = np.argsort(ids)
    poses = np.stack([actors[i].poses for i in order]) if n else np.zeros((0, NUM_FRAMES, 3))
    accident = core.collision_frame is not None
    risk = actors[0] if accident else None
    extra = {
        "generator": "envs.scenes.bank (synthetic)",
        "seed": seed,
        "layout": core.layout,
        "variant": core.variant,
        "conflict": CONFLICT_LABELS[scenario_type],
        "description": core.conflict.split(": ", 1)[-1],
        "ego_route": core.route,
        "num_background": len(background),
        **({"road_family": layout.family, "road_params": dict(layout.params)} if layout.family else {}),
        **core.extra,
        **(facts or {}),
    }
    if facts and scenario_type != "normal":  # outcome-varied mode: the hazard is present whatever the outcome
        extra["hazard_agent_id"] = int(ids[0])
        extra["hazard_agent_class"] = AgentClass(actors[0].cls).name.lower()
    if risk is not None:
        extra["risk_agent_class"] = AgentClass(risk.cls).name.lower()
        extra["ego_speed_at_contact"] = round(float(np.hypot(*velocities(core.ego.poses)[core.collision_frame])), 3)
    ego_poses = core.ego.poses
    return Scene(
        scene_id=scene_id,
        dt=DT,
        ego_poses=ego_poses,
        ego_velocities=velocities(ego_poses),
        agent_ids=ids[order],
        agent_classes=np.array([int(actors[i].cls) for i in order], dtype=np.int8),
        agent_sizes=np.array([[actors[i].length, actors[i].width] for i in order]).reshape(n, 2),
        agent_poses=poses,
        agent_velocities=velocities(poses),
        agent_valid=np.ones((n, NUM_FRAMES), dtype=bool),
        map=get_layout(core.layout).scene_map(core.route, NUM_FRAMES),
        meta=SceneMeta(
            source="synthetic",
            scenario_type=scenario_type,
            colliding_agent_id=int(ids[0]) if accident else None,
            collision_frame=core.collision_frame,
            extra=extra,
        ),
    )

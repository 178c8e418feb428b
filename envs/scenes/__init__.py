"""Scene data and where it comes from: the :class:`~envs.scenes.scene.Scene` type (a time-indexed log at a fixed step,
world frame), the one source registry and typed origins (:mod:`envs.scenes.sources`), road layouts
(:mod:`envs.scenes.layouts`), the built-in **synthetic** accident scenario bank (:mod:`envs.scenes.bank`), the
DeepAccident reader / writer (:mod:`envs.scenes.deepaccident`), and closed-loop rollouts in scene form
(:mod:`envs.scenes.rollout`)."""

from envs.scenes import road_families as _road_families  # noqa: E402,F401  registers the family layouts with get_layout

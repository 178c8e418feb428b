"""Scorer configuration. Defaults equal NAVSIM v1.1 (see ``docs/navsim-pdm.md``).

Sources of the defaults (public NAVSIM v1.1 / nuPlan files):
* weights, thresholds, horizons: ``navsim/planning/simulation/planner/pdm_planner/scoring/pdm_scorer.py``
  (``PDMScorerConfig``) and ``navsim/evaluate/pdm_score.py``;
* comfort bounds: ``.../scoring/pdm_comfort_metrics.py``;
* trajectory sampling (8 poses at 0.5 s): ``navsim/agents/abstract_agent.py`` / ``TrajectorySampling``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class ComfortBounds:
    """nuPlan comfort bounds (strict inequalities), from ``pdm_comfort_metrics.py``."""

    min_lon_accel: float = -4.05
    """Lower bound on longitudinal acceleration [m/s^2]."""
    max_lon_accel: float = 2.40
    """Upper bound on longitudinal acceleration [m/s^2]."""
    max_abs_lat_accel: float = 4.89
    """Bound on |lateral acceleration| [m/s^2]."""
    max_abs_jerk: float = 8.37
    """Bound on |jerk| of the acceleration magnitude [m/s^3]."""
    max_abs_lon_jerk: float = 4.13
    """Bound on |longitudinal jerk| [m/s^3]."""
    max_abs_yaw_rate: float = 0.95
    """Bound on |yaw rate| [rad/s]."""
    max_abs_yaw_accel: float = 1.93
    """Bound on |yaw acceleration| [rad/s^2]."""


@dataclass(frozen=True)
class PDMConfig:
    """Weights and thresholds of the PDM score; every default equals NAVSIM v1.1.

    ``PDMS = NC * DAC * (w_ep EP + w_ttc TTC + w_c C + w_ddc DDC) / (w_ep + w_ttc + w_c + w_ddc)``;
    with ``ddc_multiplicative`` DDC instead multiplies like NC and DAC (an EPDMS-style preset, off by default):
    ``PDMS = NC * DAC * DDC * (w_ep EP + w_ttc TTC + w_c C) / (w_ep + w_ttc + w_c)`` (``ddc_weight`` is then unused).
    """

    # --- trajectory sampling / simulation
    num_poses: int = 8
    """Poses per candidate trajectory (NAVSIM: 8)."""
    pose_interval: float = 0.5
    """Time between candidate poses [s] (NAVSIM: 0.5 s, so 4 s horizon)."""
    sim_dt: float = 0.1
    """Simulation / scoring step [s] (NAVSIM: 0.1 s, 41 states including t=0)."""
    tracking: bool = True
    """Track the interpolated trajectory with a controller + kinematic bicycle model before scoring (as NAVSIM
    does). False scores the interpolated poses directly (faster; velocities then come from finite differences)."""
    jerk_penalty_form: str = "navsim"
    """Regulariser of the tracker's velocity fit (``rewards.tracking.JERK_PENALTY_FORMS``): ``"navsim"`` is what
    NAVSIM v1.1 executes (its ``_make_banded_difference_matrix`` overwrites its own +1 band, so the penalty acts on
    the accelerations themselves, not on their differences); ``"jerk"`` is the penalty its docstring describes
    (differences of consecutive accelerations)."""

    # --- weighted terms
    ep_weight: float = 5.0
    """Weight of ego progress."""
    ttc_weight: float = 5.0
    """Weight of time-to-collision."""
    comfort_weight: float = 2.0
    """Weight of comfort."""
    ddc_weight: float = 0.0
    """Weight of driving-direction compliance (0 in v1.1: computed and reported only); unused when
    ``ddc_multiplicative``."""
    ddc_multiplicative: bool = False
    """EPDMS-style preset: DDC multiplies the score like NC and DAC instead of being averaged (off in v1.1)."""

    # --- thresholds
    progress_threshold: float = 5.0
    """Minimum largest progress [m] for EP normalisation (below it EP = 1 unless masked)."""
    ddc_horizon: float = 1.0
    """Window for oncoming progress [s]."""
    ddc_compliance_threshold: float = 2.0
    """Oncoming progress below this [m] -> DDC 1."""
    ddc_violation_threshold: float = 6.0
    """Oncoming progress below this [m] (and >= the compliance threshold) -> DDC 0.5, else 0."""
    ttc_stopped_speed: float = 0.005
    """Ego speed [m/s] below which TTC is not checked."""
    collision_stopped_speed: float = 0.05
    """Speed [m/s] at or below which ego / object counts as stopped in the collision classifier."""
    ttc_offsets: tuple[int, ...] = (0, 3, 6, 9)
    """Projection offsets of the TTC check, in simulation steps (0, 0.3, 0.6, 0.9 s)."""
    ttc_ahead_angle_deg: float = 30.0
    """Object 'ahead' when its relative angle from the ego rear axle is below this [deg]."""
    behind_angle_deg: float = 150.0
    """Object 'behind' when its relative angle from the ego rear axle is above this [deg]."""
    static_collision_score: float = 0.5
    """NC value for an at-fault collision with a static object."""
    comfort: ComfortBounds = field(default_factory=ComfortBounds)
    """Comfort bounds (nuPlan)."""

    # --- RL reward terms beside PDMS (not part of NAVSIM)
    collision_penalty: float = 1.0
    """Magnitude of the RL collision term: ``-collision_penalty`` for a candidate with any ego collision."""

    # --- PDM-Closed-like reference planner (for EP normalisation)
    reference_speed_fractions: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
    """IDM target speeds as fractions of the speed limit (NAVSIM PDM-Closed: 5 values)."""
    reference_lateral_offsets: tuple[float, ...] = (-1.0, 0.0, 1.0)
    """Lateral centreline offsets of the reference proposals [m] (NAVSIM PDM-Closed: -1, 0, 1)."""

    # --- careful planner and safe-progress reference (not part of NAVSIM; rewards.reference_planner)
    careful_brake_decels: tuple[float, ...] = (1.5, 3.0, 4.5, 6.0, 8.0)
    """Braking proposals of the careful planner: constant decelerations to a stop along the route [m/s^2]."""
    careful_hold_fractions: tuple[float, ...] = (0.3, 0.6)
    """Yield proposals: slow to this fraction of the current speed at ``careful_hold_decel``, then hold it [-]."""
    careful_hold_decel: float = 2.0
    """Deceleration of the yield proposals [m/s^2]."""
    safe_progress_margin: float = 0.5
    """Safe-progress reference: a proposal counts as safe only with at least this gap to every agent box over its
    horizon [m] (as the anchor positives' clearance margin), so tracking drift in the closed loop keeps it safe."""

    def __post_init__(self) -> None:
        for name in ("ep_weight", "ttc_weight", "comfort_weight", "ddc_weight", "collision_penalty"):
            if getattr(self, name) < 0:
                raise ValueError(f"PDMConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.ep_weight + self.ttc_weight + self.comfort_weight + self.averaged_ddc_weight <= 0:
            raise ValueError(
                "PDMConfig: the weighted terms' weights sum to 0 (ep_weight + ttc_weight + comfort_weight"
                + ("; ddc_weight does not count with ddc_multiplicative=True)" if self.ddc_multiplicative
                   else " + ddc_weight)")
            )
        if self.jerk_penalty_form not in ("navsim", "jerk"):
            raise ValueError(
                f"PDMConfig.jerk_penalty_form: expected 'navsim' or 'jerk', got {self.jerk_penalty_form!r}")
        if self.num_poses < 1 or self.pose_interval <= 0 or self.sim_dt <= 0:
            raise ValueError("PDMConfig: num_poses, pose_interval and sim_dt must be positive")
        ratio = self.pose_interval / self.sim_dt
        if abs(ratio - round(ratio)) > 1e-9:
            raise ValueError(f"PDMConfig: pose_interval {self.pose_interval} must be a multiple of sim_dt {self.sim_dt}")

    @property
    def averaged_ddc_weight(self) -> float:
        """Weight of DDC inside the weighted average: ``ddc_weight``, or 0 when DDC multiplies instead."""
        return 0.0 if self.ddc_multiplicative else float(self.ddc_weight)

    @property
    def horizon(self) -> float:
        """Trajectory horizon [s] (4.0 by default)."""
        return self.num_poses * self.pose_interval

    @property
    def num_sim_steps(self) -> int:
        """Simulated states including t=0 (41 by default)."""
        return int(round(self.horizon / self.sim_dt)) + 1

    @property
    def num_observation_steps(self) -> int:
        """Steps of other agents' future needed: the horizon plus the largest TTC offset (50 by default)."""
        return self.num_sim_steps + max(self.ttc_offsets)

    @classmethod
    def navsim_v1(cls, **overrides) -> "PDMConfig":
        """NAVSIM v1.1 defaults (with optional overrides)."""
        return replace(cls(), **overrides)

    @classmethod
    def epdms_like(cls, **overrides) -> "PDMConfig":
        """EPDMS-style preset: DDC multiplies (the terms NAVSIM v2 adds are not modelled)."""
        return replace(cls(), ddc_multiplicative=True, **overrides)

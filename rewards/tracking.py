"""Ego simulation of candidate trajectories: interpolation to the scoring step, LQR tracking, kinematic bicycle.

NAVSIM v1.1 (``navsim/evaluate/pdm_score.py``) turns a planner output of 8 ego-frame rear-axle poses at 0.5 s into
41 world-frame states at 0.1 s in three stages, all reproduced here (the loops are compiled with numba, see
:mod:`rewards.kernels`):

1. **Interpolation** (``transform_trajectory`` / ``get_trajectory_as_array``): the current ego state is prepended and
   the 9 poses are interpolated linearly in time (x, y) with the heading unwrapped first and wrapped back to
   ``[-pi, pi)`` afterwards (nuPlan ``InterpolatedTrajectory`` + ``AngularInterpolator`` in
   ``nuplan/common/geometry/compute.py``). Interpolation is a fixed ``(41, 9)`` weight matrix.
2. **Tracking** (``navsim/.../pdm_planner/simulation/batch_lqr.py``, ``batch_lqr_utils.py``, after nuPlan's
   ``nuplan/planning/simulation/controller/tracker/lqr.py``): velocity and curvature profiles are fitted to the
   interpolated poses by regularised least squares (jerk penalty 1e-4, see "Jerk penalty" below; curvature-rate
   penalty 1e-2, initial curvature penalty 1e-10); each step a one-step longitudinal LQR (q=10, r=1, horizon
   10 steps) gives the acceleration and a one-step lateral LQR on (lateral error, heading error, steering angle)
   with Q=diag(1, 10, 0), R=1 gives the steering rate; below 0.2 m/s (reference and current) a P stopping
   controller (gain 0.5) is used.
3. **Motion model** (``navsim/.../simulation/batch_kinematic_bicycle.py``, after nuPlan's
   ``nuplan/planning/simulation/controller/motion_model/kinematic_bicycle.py``): first-order lags on acceleration
   (0.2 s) and steering angle (0.05 s), forward Euler integration, steering clipped to +-pi/3, lateral velocity and
   lateral acceleration set to 0.

Same maths as NAVSIM, reorganised for speed (results equal up to floating-point rounding):

* the velocity least-squares normal matrix does not depend on the poses (the displacement direction is a unit
  vector), so its regularised inverse is precomputed once; NAVSIM builds and ``pinv``-s it per proposal;
* the curvature fit is solved for the curvature profile itself (a one-to-one reparametrisation of NAVSIM's
  unknowns, so the same minimiser), which makes the normal matrix tridiagonal: one banded solve for all candidates
  instead of a ``pinv`` per proposal;
* the 10-step lateral LQR prediction is written with cumulative sums instead of 10 chained 3x3 matrix products;
* the time loop runs per candidate in compiled code (:func:`rewards.kernels.simulate_tracked`), the tridiagonal
  solve in ``dgtsv``'s operation order, the velocity operator product summed in a fixed order, ``cos / sin / tan``
  from the C library: the tests hold the states to 1e-7 of a direct matrix-chain transcription of NAVSIM.

**Jerk penalty** (``JERK_PENALTY_FORMS``, ``PDMConfig.jerk_penalty_form``). NAVSIM v1.1's
``batch_lqr_utils._make_banded_difference_matrix(n)`` is documented to return the difference matrix
``[x_2 - x_1, ..., x_N - x_{N-1}]`` but executes ``banded[:, 1:] = eye`` then ``banded[:, :-1] = -eye``: the second
assignment overwrites the first everywhere except the last column, so the matrix is ``[-I | e_n]`` and the
"jerk" penalty acts on ``-a_0 .. -a_{M-4}`` and ``a_{M-2} - a_{M-3}`` (mostly an acceleration-magnitude penalty).
``"navsim"`` (default) reproduces what NAVSIM executes; ``"jerk"`` is the documented intent. On bank scenes the two
give states that differ by centimetres (``python -m benchmarks.bench_jerk_penalty``).

The tracker starts from :attr:`rewards.types.EgoState.steering_angle` (NAVSIM: the logged tire steering angle). Known
difference from NAVSIM: our scene sources log no steering angle, so it is 0 (straight wheels) unless a caller sets it
(the closed loop of :mod:`envs.sim.simulation` carries it across re-plans, and :mod:`envs.replay_env` starts a
closed-loop episode from the logged path's steering, ``EnvConfig.start_steering``).

With ``PDMConfig.tracking == False`` the interpolated poses are returned directly; velocities and accelerations then
come from finite differences (``np.gradient``, central inside, one-sided at the end) of the rear-axle positions,
rotated into each state's body frame; state 0 keeps the ego's own velocity and acceleration. Interpolation and
finite differences are compiled too and bit-identical to their numpy forms (checked in ``tests/test_tracking.py``).

State columns (:data:`SX` ... :data:`SAY`) follow NAVSIM's ``StateIndex`` (``pdm_enums.py``): rear-axle x, y, heading
in the world frame, then velocity and acceleration in the body frame (x longitudinal, y lateral).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from rewards import kernels
from rewards.config import PDMConfig
from rewards.geometry import VehicleParameters
from rewards.types import EgoState, checked_group

SX, SY, SYAW, SVX, SVY, SAX, SAY = range(7)
"""Columns of a simulated state ``(..., 7)``: x, y, yaw [m, m, rad] of the rear axle (world frame), vx, vy [m/s],
ax, ay [m/s^2] in the body frame."""
NUM_STATE_COLUMNS = 7

# --- tracker / motion-model parameters: navsim/.../simulation/batch_lqr.py and batch_kinematic_bicycle.py (v1.1),
# which copy nuPlan's LQRTracker / KinematicBicycleModel defaults.
Q_LONGITUDINAL = 10.0
R_LONGITUDINAL = 1.0
Q_LATERAL = (1.0, 10.0, 0.0)  # lateral error, heading error, steering angle
R_LATERAL = 1.0
TRACKING_HORIZON = 10  # steps
JERK_PENALTY = 1e-4
JERK_PENALTY_FORMS = ("navsim", "jerk")
"""Forms of the velocity fit's regulariser: what NAVSIM v1.1 executes, and the jerk penalty it documents."""
CURVATURE_RATE_PENALTY = 1e-2
INITIAL_CURVATURE_PENALTY = 1e-10  # batch_lqr_utils.py
STOPPING_PROPORTIONAL_GAIN = 0.5
STOPPING_VELOCITY = 0.2  # [m/s]
MAX_STEERING_ANGLE = np.pi / 3  # [rad]
ACCEL_TIME_CONSTANT = 0.2  # [s]
STEERING_ANGLE_TIME_CONSTANT = 0.05  # [s]


def _validate_candidates(candidates: np.ndarray, config: PDMConfig) -> np.ndarray:
    """Return ``candidates`` as float64 ``(G, num_poses, 3)``; ``ValueError`` naming the argument otherwise."""
    return checked_group("candidates", candidates, (config.num_poses, 3))

@lru_cache(maxsize=8)
def interpolation_weights(num_poses: int, pose_interval: float, sim_dt: float) -> np.ndarray:
    """Linear-interpolation weights ``(T, num_poses + 1)`` from the knots ``[ego, pose_1..pose_n]`` to ``T`` steps.

    Knot ``k`` sits at ``k * pose_interval`` [s]; output step ``i`` at ``i * sim_dt`` [s]
    (``T = num_poses * pose_interval / sim_dt + 1``). Read-only.
    """
    ratio = int(round(pose_interval / sim_dt))
    num_steps = num_poses * ratio + 1
    w = np.zeros((num_steps, num_poses + 1))
    for i in range(num_steps):
        k, r = divmod(i, ratio)
        if k >= num_poses:
            w[i, num_poses] = 1.0
        else:
            frac = r / ratio
            w[i, k] = 1.0 - frac
            w[i, k + 1] += frac
    w.setflags(write=False)
    return w


def interpolate_candidates(ego: EgoState, candidates: np.ndarray, config: PDMConfig) -> np.ndarray:
    """World-frame rear-axle poses ``(G, T, 3)`` [m, m, rad] at ``sim_dt``: the current pose, then the candidates.

    Knots ``[ego, pose_1..pose_n]`` are placed at ``k * pose_interval``; x, y are interpolated linearly with the
    weights of :func:`interpolation_weights`, the heading after ``np.unwrap`` over the knots, then wrapped
    (compiled loop :func:`rewards.kernels.interpolate`, bit-identical to the weight-matrix form).

    Args:
        ego: current ego state (its pose is the frame of ``candidates``).
        candidates: ``(G, num_poses, 3)`` ego-frame rear-axle poses [m, m, rad] at ``pose_interval``.
        config: sampling parameters.
    """
    cand = _validate_candidates(candidates, config)
    ratio = int(round(config.pose_interval / config.sim_dt))
    h0 = ego.pose[2]
    return kernels.interpolate(np.ascontiguousarray(cand), ego.pose, float(np.cos(h0)), float(np.sin(h0)), ratio)


def banded_difference_matrix(number_rows: int, form: str = "navsim") -> np.ndarray:
    """``(n, n + 1)`` regulariser of the accelerations in the velocity fit (``n = number_rows``).

    ``"navsim"``: NAVSIM v1.1 ``batch_lqr_utils._make_banded_difference_matrix`` as executed, ``[-I_n | e_n]``
    (its ``banded[:, 1:] = eye`` is overwritten by ``banded[:, :-1] = -eye`` except in the last column);
    ``"jerk"``: the difference matrix its docstring describes, row i = ``x_{i+1} - x_i``.
    """
    if form not in JERK_PENALTY_FORMS:
        raise ValueError(f"jerk_penalty_form: expected one of {JERK_PENALTY_FORMS}, got {form!r}")
    banded = np.zeros((number_rows, number_rows + 1))
    idx = np.arange(number_rows)
    if form == "jerk":
        banded[idx, idx + 1] = 1.0
        banded[idx, idx] = -1.0
    else:
        banded[idx, idx] = -1.0
        if number_rows:
            banded[number_rows - 1, number_rows] = 1.0
    return banded


@lru_cache(maxsize=8)
def _velocity_fit_operator(num_poses: int, dt: float, form: str = "navsim") -> np.ndarray:
    """``(M, M)`` operator mapping projected displacements ``(..., M)`` to ``[v_0, a_0 .. a_{M-2}]``.

    ``batch_lqr_utils._fit_initial_velocity_and_acceleration_profile`` solves
    ``min ||y - A x||^2 + jerk_penalty ||R x||^2`` where displacement ``k`` is modelled as
    ``dt * v_k * (cos h_k, sin h_k)`` with ``v_k = v_0 + dt * sum_{j<k} a_j`` and ``R = [0 | B]`` with ``B`` the
    ``(M - 2, M - 1)`` :func:`banded_difference_matrix` of ``form``. Because ``(cos, sin)`` is a unit vector,
    ``A^T A = L^T L`` with the pose-independent ``L`` (speed-per-step map) and ``A^T y = L^T p`` with
    ``p_k = d_k . (cos h_k, sin h_k)``; so ``x = (L^T L + jerk R^T R)^-1 L^T p`` (same ``pinv`` as NAVSIM).
    ``M = num_poses`` (number of displacements). Read-only.
    """
    m = num_poses
    lower = np.zeros((m, m))
    lower[:, 0] = dt
    for k in range(m):
        lower[k, 1 : k + 1] = dt * dt
    reg = np.concatenate([np.zeros((m - 2, 1)), banded_difference_matrix(m - 2, form)], axis=1)
    op = np.linalg.pinv(lower.T @ lower + JERK_PENALTY * reg.T @ reg) @ lower.T
    op.setflags(write=False)
    return op


def fit_velocity_curvature(poses: np.ndarray, dt: float, jerk_penalty_form: str = "navsim"
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Velocity and curvature profiles ``(G, M)`` fitted to poses ``(G, M + 1, 3)`` sampled every ``dt`` [s].

    Returns ``(velocity [m/s], curvature [1/m])`` at the first ``M`` poses, as NAVSIM's
    ``get_velocity_curvature_profiles_with_derivatives_from_poses``.

    Velocity: ``x = op @ p`` with the precomputed operator of :func:`_velocity_fit_operator` and the displacements
    projected on the heading; ``v_0 = x_0``, ``v_k = x_0 + dt * sum_{j<k} x_{j+1}``. Curvature: the fit is solved for
    the curvature profile itself (same minimiser as NAVSIM's ``[k0, rates]`` least squares, whose unknowns map
    one-to-one onto it): minimise ``sum_k (hd_k - v_k dt kappa_k)^2 + (curvature_rate_penalty / dt^2)
    sum_k (kappa_{k+1} - kappa_k)^2 + initial_penalty kappa_0^2``, a tridiagonal system per candidate (compiled:
    :func:`rewards.kernels.fit_profiles`). ``jerk_penalty_form``: see :func:`banded_difference_matrix`.
    """
    poses = np.ascontiguousarray(poses, dtype=np.float64)
    h = poses[..., 2]
    op_t = _velocity_fit_operator_t(poses.shape[1] - 1, float(dt), jerk_penalty_form)
    return kernels.fit_profiles(poses, np.cos(h), np.sin(h), op_t, float(dt), CURVATURE_RATE_PENALTY,
                                INITIAL_CURVATURE_PENALTY)


@lru_cache(maxsize=8)
def _velocity_fit_operator_t(num_poses: int, dt: float, form: str = "navsim") -> np.ndarray:
    """C-contiguous transpose of :func:`_velocity_fit_operator` (the kernels read it row by row). Read-only."""
    op_t = np.ascontiguousarray(_velocity_fit_operator(num_poses, dt, form).T)
    op_t.setflags(write=False)
    return op_t


def _initial_state(ego: EgoState) -> np.ndarray:
    """``(7,)`` state of the ego at t=0 (columns ``SX..SAY``)."""
    out = np.zeros(NUM_STATE_COLUMNS)
    out[SX:SYAW + 1] = ego.pose
    out[SVX:SVY + 1] = ego.velocity
    out[SAX:SAY + 1] = ego.acceleration
    return out


def track_poses(
    ego: EgoState, poses: np.ndarray, dt: float, params: VehicleParameters | None = None,
    jerk_penalty_form: str = "navsim",
) -> np.ndarray:
    """Track reference poses with NAVSIM's batch LQR tracker and kinematic bicycle model.

    Args:
        ego: current ego state (state 0 of the output; the tracker starts from ``ego.steering_angle``).
        poses: ``(G, T, 3)`` world-frame rear-axle reference poses [m, m, rad] every ``dt`` [s]; pose 0 is the
            current pose.
        dt: step [s].
        params: vehicle geometry (wheelbase); default ``ego.params``.
        jerk_penalty_form: regulariser of the velocity fit (:func:`banded_difference_matrix`).

    Returns:
        ``(G, T, 7)`` simulated states (columns ``SX..SAY``).
    """
    return track_poses_with_steering(ego, poses, dt, params, jerk_penalty_form=jerk_penalty_form)[0]


def track_poses_with_steering(
    ego: EgoState, poses: np.ndarray, dt: float, params: VehicleParameters | None = None,
    num_steps: int | None = None, jerk_penalty_form: str = "navsim",
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`track_poses`, optionally for the first ``num_steps`` steps only, with the steering angle per state.

    The velocity / curvature profiles are always fitted to the **whole** reference (so the tracker's 1 s look-ahead
    sees the same references): the states of a prefix equal the first states of the full run bit for bit.

    Args:
        ego: current ego state (state 0; the tracker starts from ``ego.steering_angle`` [rad]).
        poses: ``(G, T, 3)`` world-frame rear-axle reference poses [m, m, rad] every ``dt`` [s]; pose 0 = now.
        dt: step [s].
        params: vehicle geometry (wheelbase); default ``ego.params``.
        num_steps: tracker steps to run, ``0 <= num_steps <= T - 1``; None: ``T - 1`` (the whole reference).
        jerk_penalty_form: regulariser of the velocity fit (:func:`banded_difference_matrix`).

    Returns:
        ``(states (G, k + 1, 7), steering (G, k + 1))`` with ``k = num_steps``: simulated states (columns
        ``SX..SAY``, state 0 = ``ego``) and the tire steering angle [rad] at each of them.
    """
    params = ego.params if params is None else params
    poses = np.ascontiguousarray(poses, dtype=np.float64)
    dt = float(dt)
    last = poses.shape[1] - 1
    k = last if num_steps is None else num_steps
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= last:
        raise ValueError(f"num_steps: expected an int in [0, {last}] (poses shape {poses.shape}), got {num_steps!r}")
    return kernels.simulate_tracked(poses, _initial_state(ego), float(ego.steering_angle), int(k),
                                    *_tracker_arguments(last, dt, float(params.wheelbase), jerk_penalty_form))


def _tracker_arguments(num_intervals: int, dt: float, wheelbase: float, jerk_penalty_form: str = "navsim") -> tuple:
    """The kernels' tracker arguments after ``num_steps``: velocity-fit operator of ``num_intervals`` reference
    intervals (regulariser ``jerk_penalty_form``), lateral prediction constants, step [s], penalties, wheelbase [m],
    gains, lags and limits."""
    w_kappa, coef = _lateral_prediction_coefficients(TRACKING_HORIZON, dt, wheelbase)
    n = TRACKING_HORIZON
    long_gain = -Q_LONGITUDINAL * (n * dt) / ((n * dt) ** 2 * Q_LONGITUDINAL + R_LONGITUDINAL)
    q_lat0, q_lat1, _ = Q_LATERAL
    accel_lag = dt / (dt + ACCEL_TIME_CONSTANT)
    steer_gain = dt / (dt + STEERING_ANGLE_TIME_CONSTANT) * dt
    return (_velocity_fit_operator_t(num_intervals, dt, jerk_penalty_form), w_kappa, coef, dt, CURVATURE_RATE_PENALTY,
            INITIAL_CURVATURE_PENALTY, wheelbase, float(long_gain), float(q_lat0), float(q_lat1), float(R_LATERAL),
            float(accel_lag), float(steer_gain), float(STOPPING_VELOCITY), float(STOPPING_PROPORTIONAL_GAIN),
            float(MAX_STEERING_ANGLE))


def track_poses_each(
    states: np.ndarray, steering: np.ndarray, poses: np.ndarray, dt: float, params: VehicleParameters, num_steps: int,
    jerk_penalty_form: str = "navsim",
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`track_poses_with_steering` for a batch of egos in different states (one compiled call).

    Args:
        states: ``(G, 7)`` start state of each ego (columns ``SX..SAY``: world-frame rear-axle pose, body-frame
            velocity and acceleration).
        steering: ``(G,)`` tire steering angle of each at the start [rad].
        poses: ``(G, T, 3)`` world-frame rear-axle reference poses [m, m, rad] every ``dt`` [s]; pose 0 = the start.
        dt: step [s].
        params: vehicle geometry (wheelbase).
        num_steps: tracker steps to run, ``0 <= num_steps <= T - 1``.
        jerk_penalty_form: regulariser of the velocity fit (:func:`banded_difference_matrix`).

    Returns:
        ``(states (G, num_steps + 1, 7), steering (G, num_steps + 1))``; row ``g`` equals
        ``track_poses_with_steering`` of reference ``g`` alone from ``states[g]`` and ``steering[g]``.
    """
    poses = np.ascontiguousarray(poses, dtype=np.float64)
    init = np.ascontiguousarray(states, dtype=np.float64)
    steer = np.ascontiguousarray(steering, dtype=np.float64)
    g_count, t_count = poses.shape[:2]
    if init.shape != (g_count, NUM_STATE_COLUMNS) or steer.shape != (g_count,):
        raise ValueError(f"track_poses_each: expected states ({g_count}, 7) and steering ({g_count},) for poses "
                         f"{poses.shape}, got {init.shape} and {steer.shape}")
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)) or not 0 <= num_steps < t_count:
        raise ValueError(f"num_steps: expected an int in [0, {t_count - 1}], got {num_steps!r}")
    return kernels.simulate_tracked_each(poses, init, steer, int(num_steps),
                                         *_tracker_arguments(t_count - 1, float(dt), float(params.wheelbase),
                                                             jerk_penalty_form))


@lru_cache(maxsize=8)
def _lateral_prediction_coefficients(n: int, dt: float, wheelbase: float) -> tuple[np.ndarray, np.ndarray]:
    """Constants of the closed-form lateral LQR prediction over ``n`` steps: ``w_kappa (n, 5)`` and ``coef (10,)``.

    Over the horizon the velocity is ``v_k = alpha + beta k`` (alpha: current speed, beta = accel * dt),
    ``p_k = v_k dt``, ``q_k = p_k / L``. Chaining NAVSIM's ``n`` matrices ``[[1, p_k, 0], [0, 1, q_k], [0, 0, 1]]``
    (+ input ``dt`` on the steering row, affine ``-p_k kappa_k`` on the heading row) gives polynomials in
    ``(alpha, beta)`` with constant coefficients (``coef``: ``c_sp`` (sum p = c0 alpha + c1 beta), ``c_pp``,
    ``c_b1``, ``c_b0``) and curvature-weighted sums ``kappa_window @ w_kappa``: sum k, sum k i, sum k n_i,
    sum k (m_i + i n_i), sum k i m_i. Read-only.
    """
    k_idx = np.arange(n, dtype=np.float64)
    n_after = n - 1 - k_idx  # number of j > i
    m_after = np.array([k_idx[i + 1:].sum() for i in range(n)])  # sum of j > i
    t1 = np.array([k_idx[:j].sum() for j in range(n)])  # sum of i < j
    t2 = np.array([(k_idx[:j] ** 2).sum() for j in range(n)])  # sum of i^2, i < j
    w_kappa = np.stack([np.ones(n), k_idx, n_after, m_after + k_idx * n_after, k_idx * m_after], axis=1)  # (N, 5)
    c_sp = (dt * n, dt * k_idx.sum())
    c_pp = dt * dt * np.array([n_after.sum(), (m_after + k_idx * n_after).sum(), (k_idx * m_after).sum()])
    c_b1 = (dt * dt / wheelbase) * np.array([k_idx.sum(), (k_idx**2).sum()])
    c_b0 = (dt**3 / wheelbase) * np.array([t1.sum(), (t2 + k_idx * t1).sum(), (k_idx * t2).sum()])
    coef = np.concatenate([np.asarray(c_sp), c_pp, c_b1, c_b0])
    w_kappa = np.ascontiguousarray(w_kappa)
    w_kappa.setflags(write=False)
    coef.setflags(write=False)
    return w_kappa, coef


def finite_difference_states(ego: EgoState, poses: np.ndarray, dt: float) -> np.ndarray:
    """States ``(G, T, 7)`` from poses ``(G, T, 3)`` [m, m, rad] without tracking (finite differences).

    Velocity: ``np.gradient`` of the rear-axle positions; acceleration: ``np.gradient`` of that world velocity; both
    rotated into the body frame of each state. State 0 keeps the ego's own velocity and acceleration.
    """
    poses = np.ascontiguousarray(poses, dtype=np.float64)
    h = poses[..., 2]
    return kernels.finite_differences(poses, np.cos(h), np.sin(h), ego.velocity, ego.acceleration, float(dt))


def simulate_poses(ego: EgoState, poses: np.ndarray, config: PDMConfig) -> np.ndarray:
    """States ``(G, T, 7)`` for world-frame rear-axle poses ``(G, T, 3)`` at ``config.sim_dt`` (pose 0 = now).

    Tracks them when ``config.tracking`` (else finite differences). Used for candidates (after interpolation) and
    for the reference planner's 0.1 s trajectory (NAVSIM re-simulates PDM-Closed's output the same way).
    """
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[2] != 3 or poses.shape[0] == 0 or poses.shape[1] < 4:
        raise ValueError(f"poses: expected shape (G>=1, T>=4, 3), got {poses.shape}")
    if not np.all(np.isfinite(poses)):
        raise ValueError(f"poses: contains NaN or inf (shape {poses.shape})")
    if config.tracking:
        return track_poses(ego, poses, config.sim_dt, jerk_penalty_form=config.jerk_penalty_form)
    return finite_difference_states(ego, poses, config.sim_dt)


def simulate_candidates(ego: EgoState, candidates: np.ndarray, config: PDMConfig = PDMConfig()) -> np.ndarray:
    """Simulate a group of candidate trajectories as NAVSIM's ``pdm_score`` does.

    Args:
        ego: current ego state (world frame); the candidates are in its rear-axle frame.
        candidates: ``(G, num_poses, 3)`` ego-frame rear-axle poses [m, m, rad] at ``pose_interval`` (NAVSIM: 8 at
            0.5 s).
        config: sampling and ``tracking`` switch.

    Returns:
        ``(G, num_sim_steps, 7)`` world-frame states at ``sim_dt`` (41 at 0.1 s), columns ``SX..SAY``.

    Raises:
        ValueError: ``candidates`` has the wrong shape, G == 0, or contains NaN/inf.
    """
    poses = interpolate_candidates(ego, candidates, config)
    if config.tracking:
        return track_poses(ego, poses, config.sim_dt, jerk_penalty_form=config.jerk_penalty_form)
    return finite_difference_states(ego, poses, config.sim_dt)

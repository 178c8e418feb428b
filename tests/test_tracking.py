"""Tests of rewards.tracking: interpolation, NAVSIM LQR tracker + kinematic bicycle, finite-difference mode."""

import numpy as np
import pytest

from rewards.config import PDMConfig
from rewards.geometry import wrap_angle
from rewards.tracking import (
    SAX, SAY, SVX, SVY, SX, SYAW,
    banded_difference_matrix, fit_velocity_curvature, interpolate_candidates, simulate_candidates, track_poses,
    track_poses_with_steering,
)
from rewards.types import EgoState

T8 = np.arange(1, 9) * 0.5


def _ego(v=8.0, yaw=0.3):
    return EgoState(pose=np.array([10.0, 5.0, yaw]), velocity=np.array([v, 0.0]))


def _straight(v=8.0):
    return np.stack([v * T8, 0 * T8, 0 * T8], -1)


def _turn(v=8.0, radius=60.0):
    ang = v * T8 / radius
    return np.stack([radius * np.sin(ang), radius * (1 - np.cos(ang)), ang], -1)


# ---------------------------------------------------------------- NAVSIM reference (batch_lqr_utils.py, pinv form)
def _make_banded_difference_matrix(number_rows):
    """NAVSIM v1.1 ``batch_lqr_utils._make_banded_difference_matrix``, verbatim (autonomousvision/navsim, tag v1.1,
    navsim/planning/simulation/planner/pdm_planner/simulation/batch_lqr_utils.py). The second assignment overwrites
    the first one's band except in the last column: this is what NAVSIM executes."""
    banded_matrix = np.zeros((number_rows, number_rows + 1), dtype=np.float64)
    eye = np.eye(number_rows, dtype=np.float64)
    banded_matrix[:, 1:] = eye
    banded_matrix[:, :-1] = -eye
    return banded_matrix


def _intended_difference_matrix(number_rows):
    """The matrix NAVSIM's docstring describes: applied to ``[x_1, ..., x_N]`` it returns
    ``[x_2 - x_1, ..., x_N - x_{N-1}]`` (a jerk penalty on the accelerations)."""
    banded_matrix = np.zeros((number_rows, number_rows + 1), dtype=np.float64)
    banded_matrix[:, 1:] += np.eye(number_rows)
    banded_matrix[:, :-1] -= np.eye(number_rows)
    return banded_matrix


def _navsim_fit(poses, dt=0.1, banded=_make_banded_difference_matrix):
    """Straight transcription of NAVSIM's least-squares velocity / curvature fit (pinv of the full matrices)."""
    diff = np.diff(poses, axis=1)
    xy, hd = diff[..., :2], np.arctan2(np.sin(diff[..., 2]), np.cos(diff[..., 2]))
    b, m = hd.shape
    y = xy.reshape(b, -1)
    col = np.zeros(y.shape)
    col[:, 0::2] = np.cos(poses[:, :-1, 2])
    col[:, 1::2] = np.sin(poses[:, :-1, 2])
    a = np.repeat(col[..., None] * dt**2, m, axis=2)
    a[..., 0] = col * dt
    mask = np.repeat(np.triu(np.ones((m, m), bool), k=1), 2, axis=0)
    a[:, mask] = 0.0
    band = banded(m - 2)
    r = np.block([np.zeros((len(band), 1)), band])
    at = a.transpose(0, 2, 1)
    x = np.einsum("bij,bj->bi", np.linalg.pinv(at @ a + 1e-4 * r.T @ r) @ at, y)
    vel = x[:, :1] + np.pad(np.cumsum(x[:, 1:] * dt, axis=1), [(0, 0), (1, 0)])
    a2 = np.repeat(np.tri(m)[None], b, axis=0)
    a2[:, :, 0] = vel * dt
    a2[:, 1:, 1:] *= (vel * dt**2)[:, None, 1:].transpose(0, 2, 1)
    q = 1e-2 * np.eye(m)
    q[0, 0] = 1e-10
    a2t = a2.transpose(0, 2, 1)
    x2 = np.einsum("bij,bj->bi", np.linalg.pinv(a2t @ a2 + q) @ a2t, hd)
    curv = x2[:, :1] + np.pad(np.cumsum(x2[:, 1:] * dt, axis=1), [(0, 0), (1, 0)])
    return vel, curv


def _navsim_track(ego, poses, dt=0.1, wheelbase=3.089, steer0=0.0):
    """Matrix-chain transcription of NAVSIM's BatchLQRTracker + BatchKinematicBicycleModel (steering ``steer0`` at
    t=0)."""
    vel_p, curv_p = _navsim_fit(poses, dt)
    g, t_len, _ = poses.shape
    st = np.zeros((g, 11))
    st[:, :3] = ego.pose
    st[:, 3:5] = ego.velocity
    st[:, 5:7] = ego.acceleration
    st[:, 7] = steer0
    out = [st.copy()]
    for t in range(t_len - 1):
        ref = poses[:, t]
        ex, ey = st[:, 0] - ref[:, 0], st[:, 1] - ref[:, 1]
        lat = np.stack([-ex * np.sin(ref[:, 2]) + ey * np.cos(ref[:, 2]),
                        np.arctan2(np.sin(st[:, 2] - ref[:, 2]), np.cos(st[:, 2] - ref[:, 2])), st[:, 7]], -1)
        v0 = st[:, 3]
        ridx = min(t + 10, vel_p.shape[1] - 1)
        vref = vel_p[:, ridx]
        curv = np.zeros((g, 10))
        ln = ridx - t
        curv[:, :ln] = curv_p[:, t:ridx]
        if ln < 10:
            curv[:, ln:] = curv_p[:, ridx, None]
        stop = (vref <= 0.2) & (v0 <= 0.2)
        acc = np.where(stop, -0.5 * (v0 - vref), -1.0 / (1.0 * 10 * 1.0 + 1.0) * 1.0 * 10 * (v0 - vref))
        acc_lqr = -1.0 / 11.0 * 10 * (v0 - vref)
        vp = v0[:, None] + np.pad(np.cumsum(np.repeat(acc_lqr[:, None], 10, 1) * dt, 1), [(0, 0), (1, 0)])[:, :10]
        A = np.tile(np.eye(3), (g, 1, 1))
        B = np.zeros((g, 3, 1))
        gg = np.zeros((g, 3))
        for k in range(10):
            M = np.tile(np.eye(3), (g, 1, 1))
            M[:, 0, 1] = vp[:, k] * dt
            M[:, 1, 2] = vp[:, k] * dt / wheelbase
            aff = np.zeros((g, 3))
            aff[:, 1] = -vp[:, k] * curv[:, k] * dt
            A = M @ A
            B = M @ B + np.array([[0.0], [0.0], [dt]])
            gg = np.einsum("bij,bj->bi", M, gg) + aff
        e = np.einsum("bij,bj->bi", A, lat) + gg
        e[:, 1:] = np.arctan2(np.sin(e[:, 1:]), np.cos(e[:, 1:]))
        Q = np.diag([1.0, 10.0, 0.0])
        bq = np.einsum("bji,jk->bik", B, Q)
        rate = (-1 / (np.einsum("bij,bji->bi", bq, B) + 1.0) * np.einsum("bij,bj->bi", bq, e))[:, 0]
        rate = np.where(stop, 0.0, rate)
        new_ax = dt / (dt + 0.2) * (acc - st[:, 5]) + st[:, 5]
        new_steer = dt / (dt + 0.05) * (dt * rate + st[:, 7] - st[:, 7]) + st[:, 7]
        nxt = st.copy()
        nxt[:, 0] += st[:, 3] * np.cos(st[:, 2]) * dt
        nxt[:, 1] += st[:, 3] * np.sin(st[:, 2]) * dt
        nxt[:, 2] = wrap_angle(st[:, 2] + st[:, 3] * np.tan(st[:, 7]) / wheelbase * dt)
        nxt[:, 3] = st[:, 3] + new_ax * dt
        nxt[:, 4] = 0.0
        nxt[:, 5], nxt[:, 6] = new_ax, 0.0
        nxt[:, 7] = np.clip(new_steer, -np.pi / 3, np.pi / 3)
        st = nxt
        out.append(st.copy())
    return np.stack(out, 1)[..., :7]


def test_fit_matches_navsim_pinv_form():
    ego = _ego()
    rng = np.random.default_rng(1)
    cands = np.stack([_straight(), _turn(), _straight(2.0)]) + rng.normal(scale=0.05, size=(3, 8, 3))
    poses = interpolate_candidates(ego, cands, PDMConfig())
    v, k = fit_velocity_curvature(poses, 0.1)
    v_ref, k_ref = _navsim_fit(poses)
    np.testing.assert_allclose(v, v_ref, atol=1e-8)
    np.testing.assert_allclose(k, k_ref, atol=1e-7)


def test_jerk_penalty_forms_are_navsims_executed_matrix_and_its_documented_intent():
    for n in (1, 2, 3, 5, 38):
        np.testing.assert_array_equal(banded_difference_matrix(n), _make_banded_difference_matrix(n))
        np.testing.assert_array_equal(banded_difference_matrix(n, "navsim"), _make_banded_difference_matrix(n))
        np.testing.assert_array_equal(banded_difference_matrix(n, "jerk"), _intended_difference_matrix(n))
    x = np.array([1.0, 4.0, 9.0, 16.0])
    assert (banded_difference_matrix(3, "jerk") @ x).tolist() == [3.0, 5.0, 7.0]  # differences
    assert (banded_difference_matrix(3, "navsim") @ x).tolist() == [-1.0, -4.0, 7.0]  # mostly -x_i
    with pytest.raises(ValueError, match="jerk_penalty_form"):
        banded_difference_matrix(3, "smooth")
    with pytest.raises(ValueError, match="jerk_penalty_form"):
        PDMConfig(jerk_penalty_form="smooth")


def test_fit_and_tracker_follow_the_configured_jerk_penalty_form():
    ego = _ego()
    rng = np.random.default_rng(2)
    cands = np.stack([_straight(), _turn(), _straight(2.0)]) + rng.normal(scale=0.05, size=(3, 8, 3))
    poses = interpolate_candidates(ego, cands, PDMConfig())
    v, _ = fit_velocity_curvature(poses, 0.1, "jerk")
    np.testing.assert_allclose(v, _navsim_fit(poses, banded=_intended_difference_matrix)[0], atol=1e-8)
    navsim = simulate_candidates(ego, cands)
    np.testing.assert_array_equal(navsim, simulate_candidates(ego, cands, PDMConfig(jerk_penalty_form="navsim")))
    np.testing.assert_allclose(navsim, _navsim_track(ego, poses), atol=1e-7)
    jerk = simulate_candidates(ego, cands, PDMConfig(jerk_penalty_form="jerk"))
    np.testing.assert_array_equal(jerk, track_poses(ego, poses, 0.1, jerk_penalty_form="jerk"))
    gap = np.abs(jerk[..., :2] - navsim[..., :2]).max()
    assert 1e-4 < gap < 0.2, gap  # centimetres, not identical


def test_tracker_matches_matrix_chain_transcription():
    ego = _ego()
    rng = np.random.default_rng(2)
    cands = np.stack([_straight(), _turn(), _turn(4.0, -20.0), _straight(0.0)]) + rng.normal(scale=0.05, size=(4, 8, 3))
    poses = interpolate_candidates(ego, cands, PDMConfig())
    np.testing.assert_allclose(track_poses(ego, poses, 0.1), _navsim_track(ego, poses), atol=1e-7)


@pytest.mark.parametrize("steer0", [0.05, -0.2])
def test_tracker_from_an_initial_steering_angle_matches_the_transcription(steer0):
    ego = EgoState(pose=np.array([10.0, 5.0, 0.3]), velocity=np.array([8.0, 0.0]), steering_angle=steer0)
    rng = np.random.default_rng(3)
    cands = np.stack([_straight(), _turn(), _turn(4.0, -20.0), _straight(0.0)]) + rng.normal(scale=0.05, size=(4, 8, 3))
    poses = interpolate_candidates(ego, cands, PDMConfig())
    np.testing.assert_allclose(track_poses(ego, poses, 0.1), _navsim_track(ego, poses, steer0=steer0), atol=1e-7)
    # The initial steering matters: straight wheels give another track.
    straight_wheels = EgoState(pose=ego.pose, velocity=ego.velocity)
    assert np.abs(track_poses(straight_wheels, poses, 0.1) - track_poses(ego, poses, 0.1)).max() > 1e-2


@pytest.mark.parametrize("num_steps", [0, 1, 5, 40])
def test_tracking_a_prefix_equals_the_first_states_of_the_whole_run(num_steps):
    ego = EgoState(pose=np.array([10.0, 5.0, 0.3]), velocity=np.array([8.0, 0.0]), steering_angle=0.1)
    poses = interpolate_candidates(ego, np.stack([_turn(), _straight()]), PDMConfig())
    full_states, full_steer = track_poses_with_steering(ego, poses, 0.1)
    states, steer = track_poses_with_steering(ego, poses, 0.1, num_steps=num_steps)
    assert states.shape == (2, num_steps + 1, 7) and steer.shape == (2, num_steps + 1)
    np.testing.assert_array_equal(states, full_states[:, : num_steps + 1])
    np.testing.assert_array_equal(steer, full_steer[:, : num_steps + 1])
    assert np.all(steer[:, 0] == 0.1) and np.all(np.abs(full_steer) <= np.pi / 3)
    np.testing.assert_array_equal(full_states, track_poses(ego, poses, 0.1))


@pytest.mark.parametrize("num_steps", [-1, 41, 2.0, True])
def test_tracking_rejects_a_bad_number_of_steps(num_steps):
    ego = _ego()
    poses = interpolate_candidates(ego, _straight()[None], PDMConfig())
    with pytest.raises(ValueError, match=r"num_steps.*\[0, 40\].*\(1, 41, 3\)"):
        track_poses_with_steering(ego, poses, 0.1, num_steps=num_steps)


def test_ego_state_rejects_a_non_finite_steering_angle():
    with pytest.raises(ValueError, match="EgoState.steering_angle"):
        EgoState(pose=np.zeros(3), velocity=np.zeros(2), steering_angle=np.nan)


def test_straight_constant_speed_is_tracked_closely():
    ego = _ego()
    states = simulate_candidates(ego, _straight()[None])
    ref = interpolate_candidates(ego, _straight()[None], PDMConfig())
    assert states.shape == (1, 41, 7)
    assert np.max(np.linalg.norm(states[..., :2] - ref[..., :2], axis=-1)) < 1e-6
    np.testing.assert_allclose(states[0, :, SVX], 8.0, atol=1e-6)


def test_smooth_turn_is_tracked():
    ego = _ego()
    states = simulate_candidates(ego, _turn()[None])
    ref = interpolate_candidates(ego, _turn()[None], PDMConfig())
    # starts with steering 0 on a 60 m radius: the LQR lags by ~0.5 m at most, then converges
    err = np.linalg.norm(states[..., :2] - ref[..., :2], axis=-1)
    assert np.max(err) < 0.75 and err[0, -1] < 0.3
    assert np.max(np.abs(wrap_angle(states[..., SYAW] - ref[..., SYAW]))) < 0.08
    assert np.all(states[0, 1:, SVY] == 0.0) and np.all(states[0, 1:, SAY] == 0.0)


def test_braking_profile_stops():
    ego = _ego(v=6.0)
    # decelerate at 2 m/s^2 to a stop at 3 s (9 m), then stand still
    x = np.where(T8 < 3.0, 6.0 * T8 - T8**2, 9.0)
    states = simulate_candidates(ego, np.stack([x, 0 * x, 0 * x], -1)[None])
    assert abs(states[0, -1, SVX]) < 0.3
    # the tracker brakes late (velocity reference 1 s ahead, 0.2 s actuator lag): overshoot under 2 m
    assert abs(states[0, -1, SX] - (10.0 + 9.0 * np.cos(0.3))) < 2.0
    assert np.min(states[0, :, SAX]) < -1.0


def test_no_tracking_returns_interpolated_poses_exactly():
    ego = _ego(yaw=3.1)
    cands = np.stack([_turn(), _straight()])
    cfg = PDMConfig(tracking=False)
    states = simulate_candidates(ego, cands, cfg)
    np.testing.assert_array_equal(states[..., :3], interpolate_candidates(ego, cands, cfg))
    # knots sit at every 5th step, in the world frame
    c, s = np.cos(3.1), np.sin(3.1)
    wx = 10.0 + c * cands[..., 0] - s * cands[..., 1]
    np.testing.assert_allclose(states[:, 5::5, SX], wx, atol=1e-12)
    np.testing.assert_allclose(states[:, 0, SVX:SVY + 1], [[8.0, 0.0]] * 2)
    np.testing.assert_allclose(states[1, 1:-1, SVX], 8.0, atol=1e-9)


def test_interpolation_unwraps_heading_across_pi():
    ego = EgoState(pose=np.array([0.0, 0.0, np.pi - 0.05]), velocity=np.array([1.0, 0.0]))
    cand = np.zeros((1, 8, 3))
    cand[0, :, 2] = 0.1 * np.arange(1, 9)
    poses = interpolate_candidates(ego, cand, PDMConfig())
    # halfway to the first knot: heading pi - 0.05 + 0.05 = pi, wrapped to -pi
    assert abs(abs(poses[0, 5, 2] - (-np.pi + 0.05)) ) < 1e-12
    assert np.all(np.abs(wrap_angle(np.diff(poses[0, :, 2]))) < 0.021)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((0, 8, 3)), "G must be >= 1"),
        (np.zeros((2, 7, 3)), r"expected shape \(G, 8, 3\)"),
        (np.zeros((8, 3)), r"expected shape"),
        (np.full((1, 8, 3), np.nan), "NaN or inf"),
    ],
)
def test_input_errors_name_the_argument(bad, match):
    with pytest.raises(ValueError, match="candidates") as err:
        simulate_candidates(_ego(), bad)
    assert err.match(match)


def test_interpolation_and_finite_differences_equal_their_numpy_forms_bit_for_bit():
    """The compiled interpolation / finite differences keep the numpy arithmetic exactly (knots, np.unwrap, weights
    1 - r/5 and r/5, wrap; np.gradient, rotation into the body frame)."""
    ego = _ego(v=7.0, yaw=3.05)
    rng = np.random.default_rng(4)
    cands = np.stack([_turn(), _straight(), _turn(4.0, -20.0)]) + rng.normal(scale=0.3, size=(3, 8, 3))
    cfg = PDMConfig(tracking=False)
    x0, y0, h0 = ego.pose
    c, s = np.cos(h0), np.sin(h0)
    knots = np.empty((3, 9, 3))
    knots[:, 0] = ego.pose
    knots[:, 1:, 0] = x0 + c * cands[..., 0] - s * cands[..., 1]
    knots[:, 1:, 1] = y0 + s * cands[..., 0] + c * cands[..., 1]
    knots[:, 1:, 2] = h0 + cands[..., 2]
    knots[..., 2] = np.unwrap(knots[..., 2], axis=1)
    want = np.empty((3, 41, 3))
    for i in range(41):
        k, r = divmod(i, 5)
        if k >= 8:
            want[:, i] = knots[:, 8]
        else:
            want[:, i] = (1.0 - r / 5) * knots[:, k] + (r / 5) * knots[:, k + 1]
    want[..., 2] = wrap_angle(want[..., 2])
    poses = interpolate_candidates(ego, cands, cfg)
    np.testing.assert_array_equal(poses, want)

    vel = np.gradient(want[..., :2], 0.1, axis=1)
    acc = np.gradient(vel, 0.1, axis=1)
    c, s = np.cos(want[..., 2]), np.sin(want[..., 2])
    expected = np.empty((3, 41, 7))
    expected[..., :3] = want
    expected[..., SVX] = c * vel[..., 0] + s * vel[..., 1]
    expected[..., SVY] = -s * vel[..., 0] + c * vel[..., 1]
    expected[..., SAX] = c * acc[..., 0] + s * acc[..., 1]
    expected[..., SAY] = -s * acc[..., 0] + c * acc[..., 1]
    expected[:, 0, SVX:SVY + 1] = ego.velocity
    expected[:, 0, SAX:SAY + 1] = ego.acceleration
    np.testing.assert_array_equal(simulate_candidates(ego, cands, cfg), expected)


def test_closed_loop_prefix_uses_the_configured_jerk_penalty_form():
    from envs.sim.simulation import simulate_prefix

    ego, traj = _ego(), _turn()
    for form in ("navsim", "jerk"):
        cfg = PDMConfig(jerk_penalty_form=form)
        states, _ = simulate_prefix(ego, traj, cfg, 5)
        np.testing.assert_array_equal(states, simulate_candidates(ego, traj[None], cfg)[0, 1:6])

"""Action tokens: a k-means codebook of ego-frame trajectories (encode = nearest codeword, decode = codeword).

Two granularities (:attr:`CodebookConfig.mode`):

* ``"trajectory"``: one token per 4 s trajectory. A codeword is a whole ``(8, 3)`` trajectory (rear-axle poses at
  0.5 s in the ego frame at the decision time [m, m, rad]); ``encode`` picks the nearest codeword under the weighted
  squared distance ``sum_k |xy_k - c_k|^2 + (yaw_weight * (yaw_k - c_yaw_k))^2``.
* ``"segment"``: one token per 0.5 s segment, 8 tokens per trajectory (as AutoVLA). A codeword is one segment's
  motion ``(dx, dy, dyaw)`` in the frame of the previous pose [m, m, rad]; decoding chains the 8 segments from the
  origin. Encoding is closed-loop: segment ``k`` is chosen to reach pose ``k`` from the *decoded* pose ``k - 1``, so
  quantisation errors do not accumulate.

``benchmarks/bench_codebook.py`` measures both (reconstruction ADE/FDE and the PDMS lost by decoding) and the
default is chosen from it (see that script and the README): one token per trajectory.

k-means: k-means++ seeding over the distinct points (seeded ``numpy.random.Generator``), then Lloyd iterations;
an emptied cluster is re-seeded at the point farthest from its centre. Deterministic in (data, config).

Files: :meth:`TrajectoryCodebook.save` writes one ``.npz`` (codewords, mode, yaw weight, format version) through a
temp file and a rename; :meth:`TrajectoryCodebook.load` checks it.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from envs.spaces import NUM_POSES, clip_trajectories
from rewards.geometry import wrap_angle

CODEBOOK_FORMAT_VERSION = "1"
"""Version of the ``.npz`` layout written by :meth:`TrajectoryCodebook.save`."""
MODES = ("trajectory", "segment")


@dataclass(frozen=True)
class CodebookConfig:
    """How to fit a codebook; every field is documented."""

    size: int = 1024
    """Number of codewords K (one special token each)."""
    mode: str = "trajectory"
    """``"trajectory"`` (one token per 4 s trajectory) or ``"segment"`` (one token per 0.5 s segment)."""
    yaw_weight: float = 2.0
    """Weight of yaw in the k-means distance [m/rad] (1 rad of heading error counts like 2 m of position error)."""
    iterations: int = 40
    """Lloyd iterations (stops earlier when no assignment changes)."""
    seed: int = 0
    """Seed of the k-means++ initialisation."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"CodebookConfig.mode: expected one of {MODES}, got {self.mode!r}")
        for name in ("size", "iterations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"CodebookConfig.{name}: expected an int >= 1, got {value!r}")
        if not (np.isfinite(self.yaw_weight) and self.yaw_weight >= 0):
            raise ValueError(f"CodebookConfig.yaw_weight: expected a finite number >= 0, got {self.yaw_weight!r}")


# --------------------------------------------------------------------------------------------- pose composition
def _compose(origin: np.ndarray, local: np.ndarray) -> np.ndarray:
    """Poses ``local (..., 3)`` given in the frames of ``origin (..., 3)``, expressed in the origins' parent frame."""
    c, s = np.cos(origin[..., 2]), np.sin(origin[..., 2])
    out = np.empty(np.broadcast_shapes(origin.shape, local.shape))
    out[..., 0] = origin[..., 0] + c * local[..., 0] - s * local[..., 1]
    out[..., 1] = origin[..., 1] + s * local[..., 0] + c * local[..., 1]
    out[..., 2] = wrap_angle(origin[..., 2] + local[..., 2])
    return out


def _relative(origin: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """``pose (..., 3)`` in the frame of ``origin (..., 3)`` (both in one parent frame; batched origins)."""
    c, s = np.cos(origin[..., 2]), np.sin(origin[..., 2])
    dx, dy = pose[..., 0] - origin[..., 0], pose[..., 1] - origin[..., 1]
    out = np.empty(np.broadcast_shapes(origin.shape, pose.shape))
    out[..., 0] = c * dx + s * dy
    out[..., 1] = -s * dx + c * dy
    out[..., 2] = wrap_angle(pose[..., 2] - origin[..., 2])
    return out


def segments_of(trajectories: np.ndarray) -> np.ndarray:
    """``(..., 8, 3)`` ego-frame trajectories -> ``(..., 8, 3)`` segment motions, each pose in the frame of the
    previous one (pose 0's previous pose is the origin)."""
    traj = np.asarray(trajectories, dtype=np.float64)
    prev = np.concatenate([np.zeros_like(traj[..., :1, :]), traj[..., :-1, :]], axis=-2)
    return _relative(prev, traj)


def chain_segments(segments: np.ndarray) -> np.ndarray:
    """Inverse of :func:`segments_of`: ``(..., L, 3)`` segment motions -> ``(..., L, 3)`` ego-frame poses."""
    seg = np.asarray(segments, dtype=np.float64)
    out = np.empty_like(seg)
    pose = np.zeros(seg.shape[:-2] + (3,))
    for k in range(seg.shape[-2]):
        pose = _compose(pose, seg[..., k, :])
        out[..., k, :] = pose
    return out


# ------------------------------------------------------------------------------------------------------- k-means
def _nearest(points: np.ndarray, centers: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Index ``(N,)`` of the nearest centre of each point and its squared Euclidean distance ``(N,)``, in row
    chunks (no ``(N, K)`` matrix is held)."""
    cc = np.einsum("kd,kd->k", centers, centers)
    idx = np.empty(len(points), dtype=np.int64)
    dist = np.empty(len(points))
    for i in range(0, len(points), chunk):
        p = points[i : i + chunk]
        d = np.einsum("nd,nd->n", p, p)[:, None] - 2.0 * p @ centers.T + cc[None]
        idx[i : i + chunk] = np.argmin(d, axis=1)
        dist[i : i + chunk] = np.maximum(d[np.arange(len(p)), idx[i : i + chunk]], 0.0)
    return idx, dist


def kmeans(points: np.ndarray, k: int, iterations: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding over the distinct rows of ``points (N, D)``, then Lloyd iterations -> ``(k, D)`` centres.

    Raises:
        ValueError: fewer than ``k`` distinct points.
    """
    points = np.asarray(points, dtype=np.float64)
    distinct = np.unique(np.round(points, 9), axis=0)
    if len(distinct) < k:
        raise ValueError(f"kmeans: {len(distinct)} distinct trajectories for {k} codewords; collect more data or "
                         f"lower CodebookConfig.size")
    centers = np.empty((k, points.shape[1]))
    centers[0] = distinct[rng.integers(len(distinct))]
    closest = _nearest(distinct, centers[:1])[1]
    for j in range(1, k):
        total = closest.sum()
        idx = int(rng.choice(len(distinct), p=closest / total)) if total > 0 else int(rng.integers(len(distinct)))
        centers[j] = distinct[idx]
        closest = np.minimum(closest, _nearest(distinct, centers[j : j + 1])[1])
    assign = None
    for _ in range(iterations):
        new, dist = _nearest(points, centers)
        if assign is not None and np.array_equal(new, assign):
            break
        assign = new
        counts = np.bincount(assign, minlength=k)
        sums = np.zeros_like(centers)
        np.add.at(sums, assign, points)
        filled = counts > 0
        centers[filled] = sums[filled] / counts[filled, None]
        if not filled.all():  # re-seed emptied clusters at the worst-fitted points
            worst = np.argsort(-dist)
            centers[~filled] = points[worst[: int((~filled).sum())]]
    return centers


# ------------------------------------------------------------------------------------------------------ codebook
class TrajectoryCodebook:
    """A fitted codebook (see the module docstring).

    Attributes:
        codewords: ``(K, 8, 3)`` trajectories (``"trajectory"``) or ``(K, 3)`` segment motions (``"segment"``),
            ego frame [m, m, rad].
        mode: ``"trajectory"`` or ``"segment"``.
        yaw_weight: yaw weight of the distance [m/rad].
    """

    def __init__(self, codewords: np.ndarray, mode: str = "trajectory", yaw_weight: float = 2.0) -> None:
        codewords = np.asarray(codewords, dtype=np.float64)
        want = (NUM_POSES, 3) if mode == "trajectory" else (3,)
        if mode not in MODES:
            raise ValueError(f"TrajectoryCodebook.mode: expected one of {MODES}, got {mode!r}")
        if codewords.ndim != 1 + len(want) or codewords.shape[1:] != want or len(codewords) == 0:
            raise ValueError(f"TrajectoryCodebook.codewords: expected shape (K, {', '.join(map(str, want))}) for mode "
                             f"{mode!r}, got {codewords.shape}")
        if not np.all(np.isfinite(codewords)):
            raise ValueError("TrajectoryCodebook.codewords: contains NaN or inf")
        self.codewords = codewords
        self.mode = mode
        self.yaw_weight = float(yaw_weight)
        self._features = self._feature(codewords)

    # ------------------------------------------------------------------ construction
    @classmethod
    def fit(cls, trajectories: np.ndarray, config: CodebookConfig = CodebookConfig()) -> "TrajectoryCodebook":
        """Fit on ``(N, 8, 3)`` ego-frame trajectories [m, m, rad] (expert logs, verified positives)."""
        traj = np.asarray(trajectories, dtype=np.float64)
        if traj.ndim != 3 or traj.shape[1:] != (NUM_POSES, 3):
            raise ValueError(f"TrajectoryCodebook.fit: expected (N, {NUM_POSES}, 3) trajectories, got {traj.shape}")
        if not np.all(np.isfinite(traj)):
            raise ValueError("TrajectoryCodebook.fit: trajectories contain NaN or inf")
        samples = traj if config.mode == "trajectory" else segments_of(traj).reshape(-1, 3)
        probe = cls(samples[:1], config.mode, config.yaw_weight)
        centers = kmeans(probe._feature(samples), config.size, config.iterations, np.random.default_rng(config.seed))
        return cls(probe._unfeature(centers), config.mode, config.yaw_weight)

    # ------------------------------------------------------------------ properties
    @property
    def size(self) -> int:
        """Number of codewords K."""
        return int(len(self.codewords))

    @property
    def tokens_per_trajectory(self) -> int:
        """Action tokens per trajectory: 1 (``"trajectory"``) or 8 (``"segment"``)."""
        return 1 if self.mode == "trajectory" else NUM_POSES

    # ------------------------------------------------------------------ encode / decode
    def _feature(self, values: np.ndarray) -> np.ndarray:
        """Distance features ``(N, D)``: x, y and ``yaw_weight * yaw`` of each pose (or of the segment)."""
        v = np.array(values, dtype=np.float64).reshape(len(values), -1, 3)
        v[..., 2] *= self.yaw_weight
        return v.reshape(len(values), -1)

    def _unfeature(self, features: np.ndarray) -> np.ndarray:
        shape = (len(features), NUM_POSES, 3) if self.mode == "trajectory" else (len(features), 3)
        v = np.array(features, dtype=np.float64).reshape(len(features), -1, 3)
        if self.yaw_weight > 0:
            v[..., 2] /= self.yaw_weight
        return v.reshape(shape)

    def encode(self, trajectories: np.ndarray) -> np.ndarray:
        """``(..., 8, 3)`` ego-frame trajectories -> ``(..., tokens_per_trajectory)`` int64 codeword indices."""
        traj = np.asarray(trajectories, dtype=np.float64)
        if traj.shape[-2:] != (NUM_POSES, 3):
            raise ValueError(f"TrajectoryCodebook.encode: expected (..., {NUM_POSES}, 3), got {traj.shape}")
        lead = traj.shape[:-2]
        flat = traj.reshape(-1, NUM_POSES, 3)
        if self.mode == "trajectory":
            codes = _nearest(self._feature(flat), self._features)[0][:, None]
        else:
            codes = np.empty((len(flat), NUM_POSES), dtype=np.int64)
            pose = np.zeros((len(flat), 3))
            for k in range(NUM_POSES):  # closed loop: reach pose k from the decoded pose k - 1
                target = _relative(pose, flat[:, k])
                codes[:, k] = _nearest(self._feature(target), self._features)[0]
                pose = _compose(pose, self.codewords[codes[:, k]])
        return codes.astype(np.int64).reshape(lead + (self.tokens_per_trajectory,))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """``(..., tokens_per_trajectory)`` codeword indices -> ``(..., 8, 3)`` float32 ego-frame trajectories,
        clipped to the action bounds (:func:`envs.spaces.clip_trajectories`)."""
        codes = np.asarray(codes)
        if codes.shape[-1:] != (self.tokens_per_trajectory,) or not np.issubdtype(codes.dtype, np.integer):
            raise ValueError(f"TrajectoryCodebook.decode: expected integer codes (..., {self.tokens_per_trajectory}), "
                             f"got {codes.dtype} {codes.shape}")
        if codes.size and (codes.min() < 0 or codes.max() >= self.size):
            raise ValueError(f"TrajectoryCodebook.decode: codes must be in [0, {self.size}), got "
                             f"[{codes.min()}, {codes.max()}]")
        if self.mode == "trajectory":
            traj = self.codewords[codes[..., 0]]
        else:
            traj = chain_segments(self.codewords[codes])
        return clip_trajectories(traj)

    def quantize(self, trajectories: np.ndarray) -> np.ndarray:
        """``decode(encode(trajectories))``: the nearest representable trajectories ``(..., 8, 3)`` float32."""
        return self.decode(self.encode(trajectories))

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> Path:
        """Write the codebook to ``path`` (``.npz``; temp file, fsync, rename). Returns the path."""
        from envs.atomic import atomic_write_bytes

        buffer = io.BytesIO()
        np.savez(buffer, codewords=self.codewords, mode=np.array(self.mode), yaw_weight=np.array(self.yaw_weight),
                 version=np.array(CODEBOOK_FORMAT_VERSION))
        atomic_write_bytes(Path(path), buffer.getvalue())
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TrajectoryCodebook":
        """Read a file written by :meth:`save` (``ValueError`` naming the file when it is not one)."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{path}: no such codebook file")
        try:
            with np.load(path, allow_pickle=False) as data:
                version = str(data["version"])
                if version != CODEBOOK_FORMAT_VERSION:
                    raise ValueError(f"{path}: codebook format {version!r}, this code reads {CODEBOOK_FORMAT_VERSION!r}")
                return cls(data["codewords"], str(data["mode"]), float(data["yaw_weight"]))
        except (KeyError, OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a trajectory codebook ({exc})") from None

    def __repr__(self) -> str:
        return f"TrajectoryCodebook(size={self.size}, mode={self.mode!r}, yaw_weight={self.yaw_weight})"


# -------------------------------------------------------------------------------------------------- training data
def log_trajectories(scenes: Iterable, stride: int = 5) -> np.ndarray:
    """Expert-log trajectories ``(N, 8, 3)`` (ego frame, :func:`envs.sim.scoring.trajectory_from_log`) of every
    ``stride``-th frame of each scene whose 4 s future is logged."""
    from envs.sim.scoring import trajectory_from_log
    from rewards.config import PDMConfig

    config = PDMConfig()
    out = []
    for scene in scenes:
        horizon = int(round(config.horizon / scene.dt))
        for t in range(0, scene.num_frames - horizon, stride):
            out.append(trajectory_from_log(scene, t, config))
    return np.asarray(out, dtype=np.float64).reshape(-1, NUM_POSES, 3)


def fit_on_logs_and_positives(pairs: Iterable, config: CodebookConfig, num_scenes: int,
                              seed: int) -> "TrajectoryCodebook":
    """The action codebook of a training run: k-means over the expert logs of ``num_scenes`` **synthetic** bank
    scenes of ``seed`` (every 2nd frame, :func:`log_trajectories`) and the verified positives ``(8, 3)`` of the
    anchor ``pairs`` (pairs without a positive contribute nothing)."""
    from envs.scenes.bank import ScenarioBank

    logs = log_trajectories(ScenarioBank(num_scenes, seed=seed), stride=2)
    return TrajectoryCodebook.fit(np.concatenate([logs, pair_positives(pairs)]), config)


def pair_positives(pairs: Iterable) -> np.ndarray:
    """The verified positives of anchor ``pairs`` as ``(P, 8, 3)`` ego-frame trajectories [m, m, rad]."""
    return np.asarray([p.positive for p in pairs if p.positive is not None]).reshape(-1, NUM_POSES, 3)

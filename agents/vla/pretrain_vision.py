"""Pretrain the VLA's vision tower on dense BEV targets the simulator knows (issue #29): ``python -m
agents.vla.pretrain_vision --out DIR [--num-scenes 200 --seed 0] [--outcomes varied] [--roads families]
[--frame-stride 1.0] [--steps 3000 | --minutes 4] [--batch-size 64] [--lr 1e-3] [--motion none] [--threads 1]``

Data: BEVs of SYNTHETIC bank scenes (the training seed only; never a held-out seed) at frames every
``--frame-stride`` [s] from 2 s (the history trail is logged) to 2 s before the log ends (the +2 s targets are
logged), each drawn exactly as the VLA sees it (:func:`envs.observation.build_observation` with the SFT rows'
:class:`agents.sft.data.SampleConfig` observation, ``--motion`` preset) and normalised as the VLA's image processor
does (:func:`pixel_values`, equal to the processor's output).

Targets, one set per patch token (the tower's ``(H / p) x (W / p)`` patches, 8 x 8 of 8 m x 8 m at the default
128 px / 16 px / 0.5 m/px), from the scene's log at the frame (:func:`dense_targets`):

* ``occupancy`` ``(3, P)`` in {0, 1}: the patch holds part of another agent's box now, at +1 s and at +2 s (their
  **logged** future poses, in the ego frame of the decision frame; a box hits the patches its 5 x 5 sample points
  fall in, :meth:`PatchGrid.hits`, so a pedestrian is never missed): where things are and where they go;
* ``hazard`` ``(P,)`` in {0, 1}: the patch holds part of the frame's risk agent now
  (:meth:`counterfactual.frame_labels.Projection.risk_agent`, the agent the decision label names);
* ``velocity`` ``(2, P)`` [m/s]: the occupying agents' velocity relative to the ego, in the ego frame (mean weighted
  by their sample points in the patch; scored on occupied patches only);
* ``risk`` ``(P,)`` class index into :data:`counterfactual.schema.RISK_LEVELS`: the highest risk level of the
  agents covering the patch (:func:`counterfactual.labels.risk_level_of` of each agent's projected conflict time,
  :func:`counterfactual.frame_labels.project_frame`, and its closing speed ``-(p . v) / |p|``; ``none`` where no
  agent projects a conflict or none covers the patch): time to contact, per agent.

Model: a ``CLIPVisionModel`` with exactly the VLA's tower config (:func:`agents.vla.model.vision_config` of the
given :class:`agents.vla.model.VLAConfig`) and a throwaway :class:`DenseHead` (two linear layers per patch token)
on the tensor the VLA's projector reads (the last hidden state, CLS dropped). Loss: BCE on the four occupancy maps +
smooth-L1 on the velocities (covered patches, /10 m/s) + cross-entropy on the risk class (class weights from the
training frames' frequencies, :func:`risk_weights`). AdamW, cosine decay, shuffled minibatches, one thread by
default. The tower is written with ``save_pretrained`` (config.json + weights) and a ``pretrain_vision.json``
record (data, targets, losses; SYNTHETIC), atomically: into a temp folder beside ``--out``, then renamed.

Use it: ``VLAConfig(vision_init=DIR)``, or ``python -m experiments.run agent.model.vision_init=DIR``; measured in
docs/vla.md, "A BEV-pretrained vision tower".

Measured (SYNTHETIC bank; shared 2-core machine at load 16-18, 1 thread), ``python -m agents.vla.pretrain_vision
--out /tmp/bevtower/tower_s200 --num-scenes 200 --seed 0 --steps 1000``: 1,400 BEVs + targets in 78 s, 1,000 steps
of 64 in 489 s, loss 3.30 -> 0.19. Its probe (``benchmarks/bench_readability.py --vision-init``, held-out seeds 5151
/ 8181): language 74.5 / 74.6 and risk 68.6 / 65.2 against the random tower's 74.9 / 78.1 and 67.9 / 65.2; with
``--num-scenes 400`` (2,800 BEVs, 317 s, loss 3.23 -> 0.30) language 73.3 / 75.2 and risk 67.9 / 70.1: no consistent
gain, so the default stays the random tower.
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # one core per process, set before numpy / torch load their thread pools
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Iterable, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from agents.vla.model import VLAConfig, vision_config  # noqa: E402
from counterfactual.schema import RISK_LEVELS  # noqa: E402
from envs.observation import ObservationConfig  # noqa: E402
from envs.scenes.scene import Scene  # noqa: E402

HORIZONS_S = (0.0, 1.0, 2.0)
"""Times of the occupancy targets after the decision frame [s]."""
SUBSAMPLES = 5
"""Sample points per box side (5 x 5 points over each agent's box) for its patch coverage."""
RECORD_FILE = "pretrain_vision.json"
"""The pretraining record written beside the tower's weights."""
IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)
"""The VLA image processor's normalisation (CLIP's; :func:`pixel_values` equals the processor's output, tested)."""


# ------------------------------------------------------------------------------------------------------ targets
@dataclass
class DenseTargets:
    """Per-patch targets of ``N`` frames, ``P`` patches (row-major, as the tower orders its patch tokens).

    Attributes:
        occupancy: ``float32 (N, len(HORIZONS_S), P)`` 1 where a patch holds part of another agent at each horizon.
        hazard: ``float32 (N, P)`` 1 where it holds part of the frame's risk agent (0 without one).
        velocity: ``float32 (N, 2, P)`` occupying agents' velocity relative to the ego, ego frame [m/s].
        risk: ``int64 (N, P)`` index into :data:`counterfactual.schema.RISK_LEVELS`.
    """

    occupancy: np.ndarray
    hazard: np.ndarray
    velocity: np.ndarray
    risk: np.ndarray

    @classmethod
    def stack(cls, items: Sequence["DenseTargets"]) -> "DenseTargets":
        """Concatenate along the frame axis."""
        return cls(*(np.concatenate([getattr(t, f) for t in items]) for f in ("occupancy", "hazard", "velocity",
                                                                               "risk")))

    def __len__(self) -> int:
        return len(self.risk)


@dataclass(frozen=True)
class PatchGrid:
    """The tower's patches on the BEV: ``rows x cols`` patches of ``patch_size`` px, numbered row-major (the order of
    the tower's patch tokens), and the BEV's ego-frame -> pixel mapping (:meth:`envs.render.BEVRenderer.ego_to_pixel`).
    """

    renderer: Any
    patch_size: int
    rows: int
    cols: int

    @classmethod
    def of(cls, observation: ObservationConfig, patch_size: int) -> "PatchGrid":
        """The grid of ``observation``'s BEV (``ValueError`` when its size is not a multiple of ``patch_size``)."""
        from envs.observation import renderer_for

        bev = observation.bev
        if bev is None:
            raise ValueError("observation.bev: the vision tower needs a BEV image")
        if bev.height % patch_size or bev.width % patch_size:
            raise ValueError(f"BEV {bev.height}x{bev.width} px is not a multiple of the patch size {patch_size}")
        return cls(renderer_for(bev), patch_size, bev.height // patch_size, bev.width // patch_size)

    @property
    def num_patches(self) -> int:
        return self.rows * self.cols

    def patch_of(self, points: np.ndarray) -> np.ndarray:
        """Patch index of ego-frame points ``(..., 2)`` [m]; -1 outside the image."""
        uv = self.renderer.ego_to_pixel(points)
        col = np.floor((uv[..., 0] + 0.5) / self.patch_size).astype(np.int64)
        row = np.floor((uv[..., 1] + 0.5) / self.patch_size).astype(np.int64)
        inside = (col >= 0) & (col < self.cols) & (row >= 0) & (row < self.rows)
        return np.where(inside, row * self.cols + col, -1)

    def hits(self, centres: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """``(N, P)`` share of each box's :data:`SUBSAMPLES` x :data:`SUBSAMPLES` sample points (a grid over the box,
        corners and centre included) that falls in each patch; boxes ``centres (N, 3)`` ego frame [m, m, rad],
        ``sizes (N, 2)`` (length, width) [m]. Every box in view hits at least one patch, however small."""
        out = np.zeros((len(centres), self.num_patches))
        if not len(centres):
            return out
        grid = np.linspace(-0.5, 0.5, SUBSAMPLES)
        a, b = np.meshgrid(grid, grid, indexing="ij")
        along = a.reshape(-1)[None] * sizes[:, 0, None]  # (N, S)
        across = b.reshape(-1)[None] * sizes[:, 1, None]
        c, s = np.cos(centres[:, 2])[:, None], np.sin(centres[:, 2])[:, None]
        pts = np.stack([centres[:, 0, None] + along * c - across * s, centres[:, 1, None] + along * s + across * c],
                       axis=-1)  # (N, S, 2)
        idx = self.patch_of(pts)
        agent = np.repeat(np.arange(len(centres)), idx.shape[1])
        keep = idx.reshape(-1) >= 0
        np.add.at(out, (agent[keep], idx.reshape(-1)[keep]), 1.0 / idx.shape[1])
        return out


def _to_ego(scene: Scene, t: int, poses: np.ndarray) -> np.ndarray:
    """World poses ``(N, 3)`` to the ego frame at ``t`` [m, m, rad]."""
    from rewards.geometry import world_to_local

    out = np.empty_like(poses, dtype=np.float64)
    out[:, :2] = world_to_local(poses[:, :2], scene.ego_poses[t])
    out[:, 2] = poses[:, 2] - scene.ego_poses[t, 2]
    return out


def dense_targets(scene: Scene, t: int, grid: PatchGrid) -> DenseTargets:
    """The targets (module docstring) of ``scene`` at frame ``t`` on the patches of ``grid``. Needs the log to reach
    ``t + 2 s``."""
    from counterfactual.frame_labels import project_frame
    from counterfactual.labels import risk_level_of

    steps = [int(round(h / scene.dt)) for h in HORIZONS_S]
    if t + steps[-1] >= scene.num_frames:
        raise ValueError(f"scene {scene.scene_id}: frame {t} + {HORIZONS_S[-1]} s is past the log's end "
                         f"({scene.num_frames} frames)")
    occupancy = np.zeros((len(steps), grid.num_patches))
    for k, dk in enumerate(steps):
        valid = np.flatnonzero(scene.agent_valid[:, t + dk])
        hits = grid.hits(_to_ego(scene, t, scene.agent_poses[valid, t + dk]), scene.agent_sizes[valid])
        occupancy[k] = hits.sum(axis=0) > 0
    now = np.flatnonzero(scene.agent_valid[:, t])
    hits = grid.hits(_to_ego(scene, t, scene.agent_poses[now, t]), scene.agent_sizes[now])  # (N, P)
    yaw = scene.ego_poses[t, 2]
    rot = np.array([[np.cos(yaw), np.sin(yaw)], [-np.sin(yaw), np.cos(yaw)]])
    rel_v = (scene.agent_velocities[now, t] - scene.ego_velocities[t]) @ rot.T  # (N, 2) ego frame [m/s]
    weight = hits.sum(axis=0)
    velocity = np.where(weight > 0, (hits.T @ rel_v).T / np.maximum(weight, 1e-9), 0.0)  # (2, P)
    projection = project_frame(scene, t)
    ids = [int(i) for i in np.asarray(scene.agent_ids)[now]]
    level = np.zeros(len(now), dtype=np.int64)
    hazard = np.zeros(grid.num_patches)
    risk_agent = projection.risk_agent()
    for j, agent_id in enumerate(projection.agent_ids):
        if not projection.conflict[j]:
            continue
        i = ids.index(int(agent_id))
        pos = _to_ego(scene, t, scene.agent_poses[now[i:i + 1], t])[0, :2]
        closing = -float(pos @ rel_v[i]) / max(float(np.hypot(*pos)), 0.1)
        level[i] = RISK_LEVELS.index(risk_level_of(float(projection.conflict_time_s[j]), closing))
        if j == risk_agent:
            hazard = (hits[i] > 0).astype(np.float64)
    risk = ((hits > 0) * level[:, None]).max(axis=0, initial=0)
    return DenseTargets(occupancy[None].astype(np.float32), hazard[None].astype(np.float32),
                        velocity[None].astype(np.float32), risk[None].astype(np.int64))


def decision_frames(scene: Scene, stride_s: float, min_history_s: float = 2.0) -> list[int]:
    """Frames every ``stride_s`` [s] from ``min_history_s`` to the last one whose +2 s is logged."""
    step = max(1, int(round(stride_s / scene.dt)))
    first = int(round(min_history_s / scene.dt))
    last = scene.num_frames - 1 - int(round(HORIZONS_S[-1] / scene.dt))
    return list(range(first, last + 1, step))


def render_dataset(scenes: Iterable[Scene], observation: ObservationConfig, patch_size: int, stride_s: float = 1.0,
                   progress: bool = False) -> tuple[np.ndarray, DenseTargets]:
    """``(uint8 (N, H, W, 3) BEVs, their DenseTargets)`` of every :func:`decision_frames` frame of ``scenes``."""
    from tqdm import tqdm

    from envs.observation import Route, build_observation, renderer_for

    if observation.bev is None:
        raise ValueError("observation.bev: the vision tower needs a BEV image")
    grid = PatchGrid.of(observation, patch_size)
    renderer = grid.renderer
    images, targets = [], []
    for scene in tqdm(list(scenes), desc="render BEVs + targets", disable=not progress, leave=False):
        route = Route.from_scene(scene)
        for t in decision_frames(scene, stride_s):
            images.append(np.asarray(build_observation(scene, t, config=observation, route=route,
                                                       renderer=renderer)["bev"], dtype=np.uint8))
            targets.append(dense_targets(scene, t, grid))
    if not images:
        raise ValueError("render_dataset: no frame with 2 s of history and 2 s of future in these scenes")
    return np.stack(images), DenseTargets.stack(targets)


def pixel_values(bevs: np.ndarray) -> torch.Tensor:
    """``uint8 (N, H, W, 3)`` -> ``float32 (N, 3, H, W)``, normalised as the VLA's image processor does."""
    x = torch.as_tensor(np.ascontiguousarray(bevs)).permute(0, 3, 1, 2).float().div(255.0)
    return (x - torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGE_STD).view(1, 3, 1, 1)


def risk_weights(risk: np.ndarray, cap: float = 20.0) -> torch.Tensor:
    """Cross-entropy class weights of the risk target: ``sqrt(most frequent count / count)``, capped at ``cap``
    (1 for classes absent from the training frames)."""
    counts = np.bincount(risk.reshape(-1), minlength=len(RISK_LEVELS)).astype(np.float64)
    w = np.where(counts > 0, np.sqrt(counts.max() / np.maximum(counts, 1.0)), 1.0)
    return torch.as_tensor(np.minimum(w, cap), dtype=torch.float32)


# ------------------------------------------------------------------------------------------------------ model
class DenseHead(torch.nn.Module):
    """Per patch token ``(B, P, D)``: a hidden layer (``2 D``, GELU) and the outputs: 3 occupancy + 1 hazard logits,
    2 velocities [10 m/s], risk logits (:data:`counterfactual.schema.RISK_LEVELS`)."""

    OUTPUTS = len(HORIZONS_S) + 1 + 2 + len(RISK_LEVELS)

    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(width, 2 * width), torch.nn.GELU(),
                                       torch.nn.Linear(2 * width, self.OUTPUTS))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, P, D)`` -> ``(B, P, OUTPUTS)``."""
        return self.net(tokens)


def patch_tokens(tower: Any, pixels: torch.Tensor) -> torch.Tensor:
    """What the VLA's projector reads: the tower's last hidden state without its CLS token, ``(B, P, D)``
    (``vision_feature_layer=-1``, ``vision_feature_select_strategy="default"``)."""
    out = tower(pixel_values=pixels, output_hidden_states=True)
    return out.hidden_states[-1][:, 1:]


def dense_loss(out: torch.Tensor, batch: DenseTargets, weights: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """The pretraining loss of head outputs ``(B, P, OUTPUTS)`` against ``batch`` (module docstring); returns the
    total and its terms."""
    f = torch.nn.functional
    h = len(HORIZONS_S)
    occ = torch.as_tensor(batch.occupancy).transpose(1, 2)  # (B, P, h)
    haz = torch.as_tensor(batch.hazard)
    vel = torch.as_tensor(batch.velocity).transpose(1, 2) / 10.0  # (B, P, 2)
    risk = torch.as_tensor(batch.risk)
    covered = (occ[..., 0] > 0).float()
    terms = {
        "occupancy": f.binary_cross_entropy_with_logits(out[..., :h], occ),
        "hazard": f.binary_cross_entropy_with_logits(out[..., h], haz),
        "velocity": (f.smooth_l1_loss(out[..., h + 1: h + 3], vel, reduction="none").sum(-1) * covered).sum()
        / covered.sum().clamp(min=1.0),
        "risk": f.cross_entropy(out[..., h + 3:].reshape(-1, len(RISK_LEVELS)), risk.reshape(-1), weight=weights),
    }
    total = sum(terms.values())
    return total, {k: float(v.detach()) for k, v in terms.items()}


@dataclass
class PretrainResult:
    """What a pretraining run did.

    Attributes:
        losses: ``(step, total loss)`` every ``log_every`` steps and at the end.
        steps: optimizer steps taken.
        seconds: training wall time [s].
        terms: the last logged loss terms.
    """

    losses: list[tuple[int, float]]
    steps: int
    seconds: float
    terms: dict[str, float]


def train_tower(tower: Any, head: DenseHead, pixels: torch.Tensor, targets: DenseTargets, steps: int | None = None,
                seconds: float | None = None, batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 1e-2,
                seed: int = 0, log_every: int = 50, progress: bool = False) -> PretrainResult:
    """Train ``tower`` and ``head`` on ``(pixels (N, 3, H, W), targets)`` for ``steps`` optimizer steps, or until
    ``seconds`` of wall clock when ``steps`` is None (cosine decay over ``steps``, or none with a time budget)."""
    from tqdm import tqdm

    if steps is None and seconds is None:
        raise ValueError("train_tower: give steps or seconds")
    gen = torch.Generator().manual_seed(seed)
    params = list(tower.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)) if steps else 1.0)
    weights = risk_weights(targets.risk)
    n = len(pixels)
    order, cursor, done = torch.randperm(n, generator=gen), 0, 0
    losses: list[tuple[int, float]] = []
    terms: dict[str, float] = {}
    tower.train()
    head.train()
    start = time.perf_counter()
    bar = tqdm(total=steps, desc="pretrain vision tower", disable=not progress, leave=False)
    while (done < steps) if steps is not None else (time.perf_counter() - start < seconds):
        if cursor >= n:
            order, cursor = torch.randperm(n, generator=gen), 0
        idx = order[cursor: cursor + batch_size].numpy()
        cursor += batch_size
        batch = DenseTargets(targets.occupancy[idx], targets.hazard[idx], targets.velocity[idx], targets.risk[idx])
        loss, terms = dense_loss(head(patch_tokens(tower, pixels[idx])), batch, weights)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        done += 1
        bar.update(1)
        if done % log_every == 0 or done == 1:
            losses.append((done, float(loss.detach())))
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
    bar.close()
    if not losses or losses[-1][0] != done:
        losses.append((done, float(loss.detach())))
    tower.eval()
    return PretrainResult(losses, done, time.perf_counter() - start, terms)


def new_tower(config: VLAConfig) -> Any:
    """A randomly initialised ``CLIPVisionModel`` with the VLA's tower config, seeded by ``config.seed``."""
    from transformers import CLIPVisionModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return CLIPVisionModel(vision_config(config))


def save_tower(tower: Any, out: str | os.PathLike, record: dict[str, Any], overwrite: bool = False) -> Path:
    """``tower.save_pretrained`` + :data:`RECORD_FILE` into a temp folder beside ``out``, then renamed to ``out``
    (an existing ``out`` is replaced only with ``overwrite``)."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: exists (pass overwrite=True / --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        tower.save_pretrained(str(tmp))
        (tmp / RECORD_FILE).write_text(json.dumps(record, indent=2, default=float))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


# ------------------------------------------------------------------------------------------------------ CLI
def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    p = argparse.ArgumentParser(prog="python -m agents.vla.pretrain_vision", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder to write the tower to (save_pretrained)")
    p.add_argument("--num-scenes", type=int, default=200, help="SYNTHETIC bank scenes (training seed)")
    p.add_argument("--seed", type=int, default=0, help="bank seed (a training seed: never a held-out one)")
    p.add_argument("--outcomes", choices=("collision", "varied"), default=None, help="bank outcomes")
    p.add_argument("--roads", choices=("families",), default=None, help="bank roads (parametric road families)")
    p.add_argument("--frame-stride", type=float, default=1.0, help="time between decision frames [s]")
    p.add_argument("--motion", default="none", help="BEV motion preset (envs.render.MOTION_PRESETS)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: --minutes of wall clock)")
    p.add_argument("--minutes", type=float, default=4.0, help="training budget [min] when --steps is not given")
    p.add_argument("--batch-size", type=int, default=64, help="frames per step")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (AdamW)")
    p.add_argument("--tower-seed", type=int, default=0, help="seed of the tower's initialisation and data order")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--no-progress", action="store_true", help="disable progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Render, pretrain, save; prints the loss and where the tower went."""
    import dataclasses

    from agents.sft.data import SampleConfig
    from envs.render import MOTION_PRESETS, with_motion
    from envs.scenes.sources import open_source

    args = build_parser().parse_args(argv)
    if args.motion not in MOTION_PRESETS:
        raise SystemExit(f"--motion: expected one of {tuple(MOTION_PRESETS)}, got {args.motion!r}")
    if args.num_scenes < 1:
        raise SystemExit(f"--num-scenes: expected >= 1, got {args.num_scenes}")
    if Path(args.out).exists() and not args.overwrite:
        raise SystemExit(f"--out {args.out}: exists (pass --overwrite to replace it)")
    torch.set_num_threads(args.threads)
    progress = not args.no_progress
    config = VLAConfig(seed=args.tower_seed)
    observation = SampleConfig().observation
    observation = dataclasses.replace(observation, bev=with_motion(observation.bev, args.motion))
    bank = {k: v for k, v in (("outcomes", args.outcomes), ("roads", args.roads)) if v is not None}
    source = open_source("bank", num_scenes=args.num_scenes, seed=args.seed, **bank)
    t0 = time.perf_counter()
    bevs, targets = render_dataset((source[i] for i in range(len(source))), observation, config.patch_size,
                                   args.frame_stride, progress)
    t_data = time.perf_counter() - t0
    shares = np.bincount(targets.risk.reshape(-1), minlength=len(RISK_LEVELS)) / targets.risk.size
    print(f"{len(bevs)} BEVs of {args.num_scenes} SYNTHETIC bank scenes (seed {args.seed}{', ' if bank else ''}"
          + ", ".join(f"{k}={v}" for k, v in bank.items()) + f") in {t_data:.0f} s; patches occupied now "
          f"{100 * (targets.occupancy[:, 0] > 0).mean():.1f}%, risk classes "
          + ", ".join(f"{lv} {100 * s:.2f}%" for lv, s in zip(RISK_LEVELS, shares)), flush=True)
    tower = new_tower(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.tower_seed)
        head = DenseHead(config.vision_hidden_size)
    result = train_tower(tower, head, pixel_values(bevs), targets, steps=args.steps,
                         seconds=None if args.steps else 60.0 * args.minutes, batch_size=args.batch_size, lr=args.lr,
                         seed=args.tower_seed, progress=progress)
    record = {"source": "SYNTHETIC scenario bank", "bank": {"num_scenes": args.num_scenes, "seed": args.seed, **bank},
              "frames": len(bevs), "frame_stride_s": args.frame_stride, "motion": args.motion,
              "targets": ["occupancy at +" + "/+".join(f"{h:g}" for h in HORIZONS_S) + " s", "hazard (risk agent)",
                          "relative velocity", "risk level per agent"],
              "vla_config": asdict(config), "steps": result.steps, "batch_size": args.batch_size, "lr": args.lr,
              "train_seconds": result.seconds, "threads": args.threads, "losses": result.losses,
              "last_terms": result.terms}
    out = save_tower(tower, args.out, record, overwrite=args.overwrite)
    print(f"loss {result.losses[0][1]:.3f} -> {result.losses[-1][1]:.3f} in {result.steps} steps "
          f"({result.seconds:.0f} s, {args.threads} thread(s)); last terms "
          + ", ".join(f"{k} {v:.3f}" for k, v in result.terms.items()) + f"\nwrote {out} (use: VLAConfig(vision_init="
          f"'{out}') or agent.model.vision_init={out})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

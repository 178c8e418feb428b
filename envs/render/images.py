"""Small image helpers around the BEV: the ego's logged future as a trajectory to draw (:func:`logged_future`),
a caption bar above an image (:func:`caption`), a labelled grid of a semantic image's channels
(:func:`semantic_grid`), a grid of tiles (:func:`contact_sheet`) and atomic PNG writing (:func:`write_png`).
Images are ``uint8 (H, W, 3)`` in RGB order.
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from envs.atomic import atomic_write_bytes
from envs.scenes.scene import Scene


def logged_future(scene: Scene, t: int, num_poses: int = 8, interval: float = 0.5) -> np.ndarray:
    """The ego's logged future as a trajectory: ``(K, 3)`` rear-axle poses in the ego frame at ``t``.

    Poses every ``interval`` [s] (rounded to whole frames) after ``t``; ``K <= num_poses`` (fewer near the end of
    the log, possibly 0).
    """
    step = max(1, int(round(interval / scene.dt)))
    frames = [t + k * step for k in range(1, num_poses + 1) if t + k * step < scene.num_frames]
    if not frames:
        return np.zeros((0, 3))
    return scene.world_to_ego(scene.ego_poses[frames], t)


def _wrap(text: str, max_width: int, scale: float) -> list[str]:
    """Greedy wrap of ``text`` into lines at most ``max_width`` px wide (breaks after spaces or slashes if possible)."""
    lines: list[str] = []
    while text:
        if cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] <= max_width:
            lines.append(text)
            break
        cut = len(text) - 1
        while cut > 1 and cv2.getTextSize(text[:cut], cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > max_width:
            cut -= 1
        soft = max(text.rfind(" ", 0, cut), text.rfind("/", 0, cut))
        cut = soft + 1 if soft > 0 else cut
        lines.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    return lines


def caption(image_rgb: np.ndarray, lines: Sequence[str], line_height: int = 16, scale: float = 0.36) -> np.ndarray:
    """A copy of ``image_rgb (H, W, 3)`` with a dark caption bar above it: ``lines`` of text, wrapped to the width,
    ``line_height`` px each."""
    h, w = image_rgb.shape[:2]
    wrapped = [part for text in lines for part in _wrap(text, w - 6, scale)]
    bar = np.full((line_height * len(wrapped), w, 3), 12, dtype=np.uint8)
    for i, text in enumerate(wrapped):
        cv2.putText(bar, text, (3, line_height * (i + 1) - 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (235, 235, 235), 1,
                    cv2.LINE_AA)
    return np.concatenate([bar, image_rgb], axis=0)


def semantic_grid(image: np.ndarray, layers: Sequence[str], columns: int = 3) -> np.ndarray:
    """RGB grid ``(rows * (H + 1), columns * (W + 1), 3)`` of a semantic image's channels ``(H, W, C)``, each
    labelled with its layer name (for people; white = 255)."""
    if image.ndim != 3 or image.shape[-1] != len(layers):
        raise ValueError(f"image: expected (H, W, {len(layers)}) for layers {tuple(layers)}, got {image.shape}")
    tiles = []
    for c, name in enumerate(layers):
        tile = np.repeat(image[..., c, None], 3, axis=2)
        cv2.putText(tile, name, (2, 10), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 120, 0), 1, cv2.LINE_AA)
        tiles.append(tile)
    return contact_sheet(tiles, columns, pad=1, fill=90)


def contact_sheet(tiles: Sequence[np.ndarray], columns: int, pad: int = 4, fill: int = 255) -> np.ndarray:
    """Grid of RGB tiles ``(h_i, w_i, 3)``, ``columns`` per row, ``pad`` px apart on a ``fill`` grey; each cell is as
    large as the largest tile (smaller tiles sit in its top-left corner)."""
    if not tiles:
        raise ValueError("tiles: need at least one tile")
    if columns < 1:
        raise ValueError(f"columns: expected >= 1, got {columns}")
    for i, tile in enumerate(tiles):
        if tile.ndim != 3 or tile.shape[2] != 3 or tile.dtype != np.uint8:
            raise ValueError(f"tiles[{i}]: expected uint8 (h, w, 3), got {tile.dtype} {tile.shape}")
    h = max(tile.shape[0] for tile in tiles)
    w = max(tile.shape[1] for tile in tiles)
    rows = math.ceil(len(tiles) / columns)
    cols = min(columns, len(tiles))
    sheet = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), fill, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        sheet[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
    return sheet


def write_png(path: str, image_rgb: np.ndarray) -> None:
    """Write an RGB image as PNG atomically (:func:`envs.atomic.atomic_write_bytes`)."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"{path}: PNG encoding failed")
    atomic_write_bytes(path, buf.tobytes())

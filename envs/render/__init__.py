"""Bird's-eye-view (BEV) rendering of a :class:`~envs.scenes.scene.Scene` in the ego frame (OpenCV, pure numpy
inputs).

Modules (each imports only the ones listed before it):

* :mod:`envs.render.config`: the configuration: :class:`BEVConfig` (raster geometry, content and colours, checked
  on construction), :data:`SEMANTIC_LAYERS` (the semantic channel names) and :data:`MOTION_PRESETS` /
  :func:`with_motion` (named ways to draw motion: velocity marks, denser history trails).
* :mod:`envs.render.raster`: the rasteriser: :class:`BEVRenderer` and its per-map and per-scene caches (map raster,
  agent corners).
* :mod:`envs.render.images`: small image helpers: :func:`logged_future`, :func:`caption`, :func:`semantic_grid`,
  :func:`contact_sheet`, :func:`write_png`.
* :mod:`envs.render.cli`: :func:`main`: ``python -m envs.render --out outputs/render --num-scenes 6`` writes PNGs
  of built-in synthetic scenes (``envs/render/__main__.py`` calls it).

The public names of all four are re-exported here (``from envs.render import BEVConfig, BEVRenderer``).

Image conventions
-----------------
* The image shows the **ego frame at frame t** (rear-axle frame, ``scene.world_to_ego``): the ego heading points
  **up** (decreasing row), the ego's **left is the image's left** (decreasing column). Nothing is mirrored.
* Pixel coordinates are ``(u, v) = (column, row)`` floats, the order OpenCV uses; integer values are pixel
  *centres*, so pixel ``(r, c)`` covers ``u in [c - 0.5, c + 0.5)``, ``v in [r - 0.5, r + 0.5)``.
* The ego rear axle sits at ``u0 = W / 2 - 0.5`` (the image's vertical centre line) and
  ``v0 = ego_row_fraction * H - 0.5``; with the defaults (128 x 128 px, 0.5 m/px, fraction 0.75) the view spans
  48 m ahead, 16 m behind and 32 m to each side. An ego-frame point ``(x, y)`` [m] lands at
  ``u = u0 - y / mpp``, ``v = v0 - x / mpp`` (:meth:`BEVRenderer.ego_to_pixel`).
* ``"rgb"`` output is ``uint8 (H, W, 3)`` in **RGB** order (convert to BGR before ``cv2.imwrite``).
  ``"semantic"`` output is ``uint8 (H, W, C)``, one channel per name in :attr:`BEVConfig.semantic_layers`
  (see :data:`SEMANTIC_LAYERS`), values exactly 0 or 255 (no anti-aliasing).
"""

from envs.render.cli import main
from envs.render.config import MOTION_PRESETS, RGB, SEMANTIC_LAYERS, BEVConfig, with_motion
from envs.render.images import caption, contact_sheet, logged_future, semantic_grid, write_png
from envs.render.raster import BEVRenderer

__all__ = [
    "MOTION_PRESETS",
    "RGB",
    "SEMANTIC_LAYERS",
    "BEVConfig",
    "BEVRenderer",
    "caption",
    "contact_sheet",
    "logged_future",
    "main",
    "semantic_grid",
    "with_motion",
    "write_png",
]

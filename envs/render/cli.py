"""CLI: ``python -m envs.render --out outputs/render --num-scenes 6`` renders built-in synthetic scenes to PNGs
(one per frame, a caption above each, plus a contact sheet) and prints their paths (see :func:`main`).

``python -m envs.render --family-sheets --out outputs/families [--num-scenes 12]`` writes one contact sheet per road
family of the bank's families mode (``family_<name>.png``: ``--num-scenes`` SYNTHETIC scenes of that family, each
at its key frame: contact, or mid-log for normal scenes), see :func:`family_sheets`.
"""

from __future__ import annotations

import argparse
import os
from typing import Sequence

import numpy as np

from envs.render.config import BEVConfig
from envs.render.images import caption, contact_sheet, logged_future, semantic_grid, write_png
from envs.render.raster import BEVRenderer
from envs.scenes.scene import Scene


def _frames_to_draw(scene: Scene, which: str, stride: int, lead: float) -> list[int]:
    """Frames to render: ``lead`` seconds before contact and at contact (middle of the log if no accident), or
    every ``stride`` frames."""
    if which == "all":
        return list(range(0, scene.num_frames, stride))
    key = scene.meta.collision_frame if scene.meta.collision_frame is not None else scene.num_frames // 2
    before = max(0, key - int(round(lead / scene.dt)))
    return sorted({before, key})


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: render built-in synthetic scenes to PNGs (one per frame, plus a contact sheet) and print the paths."""
    parser = argparse.ArgumentParser(prog="python -m envs.render", description=main.__doc__)
    parser.add_argument("--out", default="outputs/render", help="output folder (created)")
    parser.add_argument("--num-scenes", type=int, default=6, help="number of bank scenes")
    parser.add_argument("--seed", type=int, default=0, help="bank seed")
    parser.add_argument("--types", default=None, help="comma-separated scenario types (default: all)")
    parser.add_argument("--frames", choices=("before_collision", "all"), default="before_collision",
                        help="before_collision: --lead s before contact and at contact; all: every --stride frames")
    parser.add_argument("--lead", type=float, default=2.0, help="seconds before contact for before_collision")
    parser.add_argument("--stride", type=int, default=10, help="frame stride for --frames all")
    parser.add_argument("--size", type=int, default=256, help="image height and width [px]")
    parser.add_argument("--mpp", type=float, default=0.25, help="meters per pixel")
    parser.add_argument("--mode", choices=("rgb", "semantic"), default="rgb",
                        help="semantic: writes each frame's channels as a labelled grid")
    parser.add_argument("--no-future", action="store_true", help="do not draw the ego's logged future (yellow)")
    parser.add_argument("--no-sheet", action="store_true", help="skip the contact sheet")
    parser.add_argument("--columns", type=int, default=0, help="contact sheet columns (default: frames per scene)")
    parser.add_argument("--family-sheets", action="store_true",
                        help="one contact sheet per road family (families mode of the bank; --families to choose)")
    parser.add_argument("--families", default=None, help="comma-separated road families for --family-sheets "
                        "(default: all, the held-out one included)")
    args = parser.parse_args(argv)
    if args.num_scenes < 1:
        parser.error(f"--num-scenes: expected >= 1, got {args.num_scenes}")
    if args.stride < 1:
        parser.error(f"--stride: expected >= 1, got {args.stride}")

    from envs.scenes.bank import ScenarioBank  # the synthetic bank; imported here so rendering never needs it

    types = [s.strip() for s in args.types.split(",") if s.strip()] if args.types else None
    if args.family_sheets:
        families = [s.strip() for s in args.families.split(",") if s.strip()] if args.families else None
        try:
            paths = family_sheets(args.out, args.num_scenes, args.seed, families, types, args.size, args.mpp,
                                  args.columns or 4)
        except ValueError as exc:
            parser.error(f"--family-sheets: {exc}")
        for path in paths:
            print(path)
        return 0
    try:
        bank = ScenarioBank(args.num_scenes, seed=args.seed, scenario_types=types)
    except ValueError as exc:
        parser.error(f"--types: {exc}")
    config = BEVConfig(height=args.size, width=args.size, meters_per_pixel=args.mpp, mode=args.mode,
                       colliding_agent_color=(255, 40, 40))
    renderer = BEVRenderer(config)
    os.makedirs(args.out, exist_ok=True)
    tiles: list[np.ndarray] = []
    per_scene = 1
    for i in range(args.num_scenes):
        scene = bank[i]
        frames = _frames_to_draw(scene, args.frames, args.stride, args.lead)
        per_scene = max(per_scene, len(frames))
        for t in frames:
            if args.mode == "rgb":
                future = None if args.no_future else logged_future(scene, t)
                image = renderer.render(scene, t, future if future is not None and len(future) else None,
                                        [(255, 235, 60)] if future is not None and len(future) else None)
            else:
                image = semantic_grid(renderer.render(scene, t), config.semantic_layers)
            contact = scene.meta.collision_frame
            rel = "" if contact is None else f" ({(t - contact) * scene.dt:+.1f} s to contact)"
            lines = [scene.scene_id, f"type={scene.meta.scenario_type}", f"t={t}{rel} {scene.meta.source}"]
            tile = caption(image, lines)
            safe_id = scene.scene_id.replace("/", "_")
            path = os.path.join(args.out, f"{safe_id}_t{t:03d}.png")
            write_png(path, tile)
            print(path)
            tiles.append(tile)
    if not args.no_sheet and tiles:
        sheet = contact_sheet(tiles, args.columns or (per_scene if per_scene > 1 else 4))
        path = os.path.join(args.out, "contact_sheet.png")
        write_png(path, sheet)
        print(path)
    return 0


def family_sheets(
    out: str,
    num_scenes: int,
    seed: int = 0,
    families: Sequence[str] | None = None,
    scenario_types: Sequence[str] | None = None,
    size: int = 256,
    meters_per_pixel: float = 0.25,
    columns: int = 4,
) -> list[str]:
    """Write ``<out>/family_<family>.png`` for each road family (default: every one of
    :data:`envs.scenes.road_families.FAMILIES`): ``num_scenes`` scenes of ``ScenarioBank(num_scenes, seed,
    roads="families", road_families=[family])`` at their key frame (contact, or the log's middle), captioned with
    type, layout name and frame, ``columns`` per row. Returns the paths written."""
    from envs.scenes.bank import ScenarioBank
    from envs.scenes.road_families import FAMILIES

    config = BEVConfig(height=size, width=size, meters_per_pixel=meters_per_pixel, colliding_agent_color=(255, 40, 40))
    renderer = BEVRenderer(config)
    os.makedirs(out, exist_ok=True)
    paths = []
    for family in families or FAMILIES:
        bank = ScenarioBank(num_scenes, seed=seed, roads="families", road_families=[family],
                            scenario_types=scenario_types)
        tiles = []
        for scene in bank:
            t = _frames_to_draw(scene, "before_collision", 1, 0.0)[-1]
            future = logged_future(scene, t)
            image = renderer.render(scene, t, future if len(future) else None, [(255, 235, 60)] if len(future) else None)
            lines = [f"SYNTHETIC {scene.meta.scenario_type}", scene.meta.extra["layout"], f"t={t}"]
            tiles.append(caption(image, lines))
        path = os.path.join(out, f"family_{family}.png")
        write_png(path, contact_sheet(tiles, columns))
        paths.append(path)
    return paths

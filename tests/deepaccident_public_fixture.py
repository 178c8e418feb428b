"""A small, independent writer of SYNTHETIC DeepAccident folders for tests, in the public layout.

It shares nothing with ``envs.scenes.deepaccident`` (no import of it): the point is that the project's writer and reader
shared their assumptions, so a round trip through them could not show a wrong convention. This writer is phrased
the way a CARLA collection script would be, and its output is checked against the public code itself
(``test_public_fixture_matches_the_public_pipeline``):

* truth is given in a right-handed world (x east, y north, yaw counter-clockwise) and mirrored into CARLA's
  left-handed world (``y -> -y``, ``yaw -> -yaw``, ``vy -> -vy``);
* ``ego_to_world`` / ``lidar_to_ego`` are ``carla.Transform.get_matrix()`` matrices (location, yaw in degrees);
* a label row holds the object in the observer's lidar frame, written under one of the two readings of issue 27:
  ``"one_frame"`` (default): every value CARLA-local, like the calib (``x, y, z``, ``yaw`` and ``vx, vy``, all
  left-handed; the camera model lifts images with the unflipped calib, ``projects/mmdet3d_plugin/datasets/pipelines/
  loading.py`` line 531); ``"mixed"``: the same with ``y`` negated (right-handed position, CARLA's yaw and vy: what
  SafeAlign read before issue 27). The converter negates yaw and vy (``carla_converter.py`` lines 252 and 268) and
  leaves y (line 253); line 1 is the observer's velocity;
* several V2X observers (``ego_vehicle`` plus :attr:`Scenario.observers`: ``other_vehicle``, ``*_behind``,
  ``infrastructure``), each with its own label and calib folders; a vehicle observer writes its own box as the
  ``-100`` row and appears in the other observers' labels under its actor id (``agents id:`` of the meta file);
  the roadside unit has no box;
* file names: ``<scenario_name>_<frame:03d>`` (``..._scenario00021_024`` in ``DeepAccident_dataset.py``), calib
  named from the same stem; the meta file has the 7 lines of the real example (DeepAccident issue #29).
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DT = 0.1
"""Frame step [s] (10 Hz)."""


@dataclass
class Track:
    """An object's truth per frame in the right-handed world.

    Attributes:
        actor_id: CARLA actor id (-100 is never used here: the ego's row is written from :attr:`Scenario.ego`).
        cls: DeepAccident class name.
        size: length, width, height [m].
        poses: ``(T, 3)`` box-centre x, y [m], yaw [rad], right-handed world.
        velocities: ``(T, 2)`` [m/s], right-handed world.
        visible: ``(T,)`` bool, frames on which the row is written.
    """

    actor_id: int
    cls: str
    size: tuple[float, float, float]
    poses: np.ndarray
    velocities: np.ndarray
    visible: np.ndarray | None = None


@dataclass
class Scenario:
    """A scenario to write: the ego (observer) track, other tracks, frame numbers, meta lines."""

    scenario_type: str
    scenario_name: str
    frames: list[int]
    ego: Track
    others: list[Track]
    meta_lines: list[str]
    lidar_offset: tuple[float, float, float] = (0.3, 0.0, 1.9)
    extra_rows: dict[int, list[str]] = field(default_factory=dict)
    observers: dict[str, Track] = field(default_factory=dict)
    """Further V2X observers: agent folder name -> its truth (``actor_id``: its CARLA id, for vehicles)."""
    ego_actor_id: int = 2675
    """The ego's actor id (its rows in the other observers' labels)."""


def carla_matrix(x: float, y: float, z: float, yaw_deg: float) -> np.ndarray:
    """``carla.Transform(Location(x, y, z), Rotation(yaw=yaw_deg)).get_matrix()`` (pitch = roll = 0)."""
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    return np.array([[c, -s, 0.0, x], [s, c, 0.0, y], [0.0, 0.0, 1.0, z], [0.0, 0.0, 0.0, 1.0]])


def to_carla(pose: np.ndarray, vel: np.ndarray) -> tuple[float, float, float, float, float]:
    """Right-handed truth -> CARLA world: ``(x, y, yaw_deg, vx, vy)``."""
    return float(pose[0]), -float(pose[1]), -math.degrees(float(pose[2])), float(vel[0]), -float(vel[1])


def _row(cls: str, local: np.ndarray, size, yaw: float, v: np.ndarray, actor_id: int, flip_y: bool) -> str:
    y = -local[1] if flip_y else local[1]
    nums = [local[0], y, local[2], size[0], size[1], size[2], yaw, v[0], v[1]]
    return " ".join([cls, *(repr(float(n)) for n in nums), str(actor_id), "250", "True"])


CONVENTIONS = ("one_frame", "mixed")


def write(root: Path, sc: Scenario, *, padded: bool = True, split: str | None = "val",
          convention: str = "one_frame") -> None:
    """Write ``sc`` under ``root`` (each observer's label and calib folders, meta, split line).

    ``convention``: ``"one_frame"`` or ``"mixed"`` (module docstring); ``"mixed"`` rows are the ``"one_frame"`` rows
    with ``y`` negated.
    """
    flip_y = {"one_frame": False, "mixed": True}[convention]
    base = Path(root) / sc.scenario_type
    ego = Track(sc.ego_actor_id, sc.ego.cls, sc.ego.size, sc.ego.poses, sc.ego.velocities)
    observers = {"ego_vehicle": ego, **sc.observers}
    for agent, obs in observers.items():
        _write_view(base, sc, agent, obs, observers, padded, flip_y)
    meta = base / "meta" / f"{sc.scenario_name}.txt"
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text("\n".join(sc.meta_lines) + "\n")
    if split is not None:
        with open(Path(root) / f"{split}.txt", "a") as f:
            f.write(f"{sc.scenario_type} {sc.scenario_name}\n")


def _write_view(base: Path, sc: Scenario, agent: str, obs: Track, observers: dict[str, Track], padded: bool,
                flip_y: bool) -> None:
    label_dir = base / agent / "label" / sc.scenario_name
    calib_dir = base / agent / "calib" / sc.scenario_name
    label_dir.mkdir(parents=True, exist_ok=True)
    calib_dir.mkdir(parents=True, exist_ok=True)
    l2e = carla_matrix(*sc.lidar_offset, 0.0)
    seen_tracks = [*sc.others, *(tr for name, tr in observers.items() if name not in (agent, "infrastructure"))]
    for t, number in enumerate(sc.frames):
        ex, ey, eyaw, evx, evy = to_carla(obs.poses[t], obs.velocities[t])
        e2w = carla_matrix(ex, ey, 0.0, eyaw)
        lidar = e2w @ l2e
        inv = np.linalg.inv(lidar)
        lidar_yaw = eyaw  # the lidar is mounted without rotation

        def local_of(x, y, z, yaw_deg, vx, vy, inv=inv, lidar_yaw=lidar_yaw):
            p = inv @ np.array([x, y, z, 1.0])
            v = inv[:3, :3] @ np.array([vx, vy, 0.0])
            yaw = math.remainder(math.radians(yaw_deg - lidar_yaw), 2 * math.pi)
            return p[:3], yaw, v[:2]

        p, yaw, v = local_of(ex, ey, 0.5 * obs.size[2], eyaw, evx, evy)
        lines = [f"{float(v[0])!r} {float(v[1])!r}"]
        if agent != "infrastructure":
            lines.append(_row("car", p, obs.size, yaw, v, -100, flip_y))
        for tr in seen_tracks:
            if tr.visible is not None and not tr.visible[t]:
                continue
            x, y, yaw_deg, vx, vy = to_carla(tr.poses[t], tr.velocities[t])
            p, yaw, v = local_of(x, y, 0.5 * tr.size[2], yaw_deg, vx, vy)
            lines.append(_row(tr.cls, p, tr.size, yaw, v, tr.actor_id, flip_y))
        if agent == "ego_vehicle":
            lines += sc.extra_rows.get(number, [])
        stem = f"{sc.scenario_name}_{number:03d}" if padded else f"{sc.scenario_name}_{number}"
        (label_dir / f"{stem}.txt").write_text("\n".join(lines) + "\n")
        calib = {"ego_to_world": e2w, "lidar_to_ego": l2e}
        for cam in ("Camera_FrontLeft", "Camera_Front", "Camera_FrontRight", "Camera_BackLeft", "Camera_Back",
                    "Camera_BackRight"):
            calib[f"lidar_to_{cam}"] = np.eye(4)
            calib[f"intrinsic_{cam}"] = np.eye(3)
        (calib_dir / f"{stem}.pkl").write_bytes(pickle.dumps(calib))


# ------------------------------------------------------------------------------------------------- scenarios
def straight(x0: float, y0: float, yaw: float, speed: float, T: int, t0: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Constant-velocity track: ``(T, 3)`` poses, ``(T, 2)`` velocities (time ``t0 + k dt``)."""
    t = t0 + DT * np.arange(T)
    d = np.array([math.cos(yaw), math.sin(yaw)])
    xy = np.array([x0, y0]) + speed * t[:, None] * d
    return np.column_stack([xy, np.full(T, yaw)]), np.tile(speed * d, (T, 1))


def arc(x0: float, y0: float, yaw0: float, speed: float, yaw_rate: float, T: int) -> tuple[np.ndarray, np.ndarray]:
    """Constant speed and yaw rate (a left turn for ``yaw_rate > 0``), exact circle."""
    t = DT * np.arange(T)
    yaw = yaw0 + yaw_rate * t
    r = speed / yaw_rate
    x = x0 + r * (np.sin(yaw) - math.sin(yaw0))
    y = y0 - r * (np.cos(yaw) - math.cos(yaw0))
    return np.column_stack([x, y, yaw]), speed * np.column_stack([np.cos(yaw), np.sin(yaw)])


def meta_lines(weather: str, collision: tuple[int, str, int, str] | None, last: int, colliding: str,
               ids: tuple[int, int, int, int]) -> list[str]:
    """The 7 meta lines (real example: DeepAccident issue #29)."""
    tokens = ["-1"] * 7 if collision is None else [str(collision[0]), collision[1], str(collision[2]), collision[3],
                                                     "1095.9534535970056", "same", "rear_side"]
    return [
        " ".join([weather, *tokens, str(last)]),
        f"colliding agents: {colliding}",
        "agents id: " + " ".join(str(i) for i in ids),
        "road_type: four-way junction",
        "another_vehicle_spawn_side: opposite",
        "ego_vehicle_direction: straight",
        "other_vehicle_direction: straight",
    ]


EGO_ID, OTHER_ID = 2675, 2671
"""Actor ids of ego_vehicle and other_vehicle on the ``agents id:`` line."""


def crossing_accident(name: str = "Town04_type001_subtype0002_scenario00021", gap: float = 0.0) -> Scenario:
    """Ego eastbound at 10 m/s; ``other_vehicle`` (id 2671) northbound at 8 m/s, reaching the ego's path as the ego
    does (``gap > 0`` shifts the crossing car ahead so the boxes pass ``gap``-ish apart: a near miss that meta still
    calls a collision); a pedestrian crossing southbound, a car turning left, a parked static decoration car.
    Frames 1..40; meta: collision ego <-> 2671."""
    T = 40
    frames = list(range(1, T + 1))
    ego = Track(-100, "car", (4.8, 2.1, 1.6), *straight(0.0, 0.0, 0.0, 10.0, T))
    car = Track(OTHER_ID, "car", (4.5, 2.0, 1.5), *straight(30.0, -20.0 + gap, math.pi / 2, 8.0, T))
    ped = Track(512, "pedestrian", (0.6, 0.6, 1.8), *straight(18.0, 9.0, -math.pi / 2, 1.5, T))
    turner = Track(77, "car", (4.6, 1.9, 1.5), *arc(45.0, -12.0, math.pi / 2, 7.0, 0.35, T))
    parked = Track(20031, "car", (4.4, 1.9, 1.5), *straight(15.0, 6.0, 0.0, 0.0, T))
    return Scenario(
        "type1_subtype2_accident", name, frames, ego, [car, ped, turner, parked],
        meta_lines("MidRainSunset", (EGO_ID, "car", OTHER_ID, "car"), frames[-1], "ego other",
                   (EGO_ID, 2690, OTHER_ID, 2691)),
    )


def turning_normal(name: str = "Town03_type001_subtype0001_scenario00007") -> Scenario:
    """Ego turning left (yaw rate 0.2 rad/s, 8 m/s) past crossing and oncoming traffic; no collision in meta.
    Frames 5..34 (not starting at 1)."""
    T = 30
    frames = list(range(5, 5 + T))
    ego = Track(-100, "car", (4.8, 2.1, 1.6), *arc(0.0, 0.0, 0.3, 8.0, 0.2, T))
    cross = Track(301, "car", (4.5, 2.0, 1.5), *straight(40.0, -30.0, math.pi / 2, 9.0, T))
    oncoming = Track(302, "van", (5.2, 2.1, 2.0), *straight(60.0, 30.0, math.pi + 0.4, 6.0, T))
    cyclist = Track(303, "cyclist", (1.8, 0.7, 1.6), *straight(-5.0, 12.0, -0.2, 5.0, T))
    return Scenario(
        "type1_subtype1_normal", name, frames, ego, [cross, oncoming, cyclist],
        meta_lines("ClearNoon", None, frames[-1], "none none", (EGO_ID, 2690, OTHER_ID, 2691)),
    )


def v2x_turning(name: str = "Town05_type001_subtype0003_scenario00042") -> Scenario:
    """Four observers: the ego turning left (0.25 rad/s), ``other_vehicle`` (id 2671) turning right across the
    junction (-0.3 rad/s: a non-zero, changing yaw), ``ego_vehicle_behind`` (2690) following the ego, and an
    ``infrastructure`` unit facing 0.6 rad; shared objects: a pedestrian, a crossing car, a parked car. No collision.
    Frames 1..30."""
    T = 30
    frames = list(range(1, T + 1))
    ego = Track(-100, "car", (4.8, 2.1, 1.6), *arc(0.0, 0.0, 0.2, 8.0, 0.25, T))
    other = Track(OTHER_ID, "car", (4.5, 2.0, 1.5), *arc(45.0, 30.0, -2.4, 7.0, -0.3, T))
    behind = Track(2690, "car", (4.6, 1.9, 1.5), *arc(-12.0, -2.5, 0.2, 8.0, 0.25, T))
    infra = Track(-1, "car", (0.5, 0.5, 5.0), *straight(20.0, -15.0, 0.6, 0.0, T))
    ped = Track(512, "pedestrian", (0.6, 0.6, 1.8), *straight(18.0, 9.0, -math.pi / 2, 1.5, T))
    car = Track(301, "car", (4.5, 2.0, 1.5), *straight(40.0, -30.0, math.pi / 2, 9.0, T))
    parked = Track(20031, "car", (4.4, 1.9, 1.5), *straight(5.0, -10.0, 0.3, 0.0, T))
    return Scenario(
        "type1_subtype3_normal", name, frames, ego, [ped, car, parked],
        meta_lines("ClearNoon", None, frames[-1], "none none", (EGO_ID, 2690, OTHER_ID, 2691)),
        observers={"other_vehicle": other, "ego_vehicle_behind": behind, "infrastructure": infra},
    )

"""CARLA episodes as scenes: the live recorder, recording files, the ``"carla"`` source and origin kinds.

* :class:`EpisodeRecorder` keeps an episode's states in preallocated arrays and a **live scene view** over them
  (one :class:`~envs.scenes.scene.Scene` per episode whose arrays are updated in place, as
  :class:`envs.sim.simulation.EgoTrack` does), which the observation builder and the scorer read; frames after the
  current one hold the ego's nominal plan (the non-reacting "expert" future: ``logged_action``) and invalid agents.
  :meth:`EpisodeRecorder.finish` returns the validated :class:`Scene` of the recorded frames
  (``meta.source == "carla"``).
* :func:`write_recording` / :func:`read_recording`: one ``.npz`` per scene (schema :data:`RECORDING_SCHEMA`; arrays
  plus a JSON header with the meta data and the map), written to a temp file and renamed into place.
* :func:`store_recording`: a finished episode's scene into the env's ``record_dir`` (or memory only) and its origin
  (the final ``info["recording"]`` / ``info["origin"]``).
* :class:`CarlaRecordingOrigin` (kind ``"carla"``, the recording's path) re-creates a scene with
  :func:`envs.scenes.sources.resolve`; the source kind ``"carla"`` opens a folder of recordings
  (``open_source("carla", root=folder)``). Both are registered when :mod:`envs` is imported.
"""

from __future__ import annotations

import copy
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np

from envs.atomic import atomic_write_bytes
from envs.scenes.scene import Lane, Scene, SceneMap, SceneMeta, TrafficLight
from envs.scenes.sources import Origin, SourceError, UnresolvableOrigin, register_origin, register_source
from rewards.geometry import VehicleParameters

RECORDING_SCHEMA = "safealign.carla_recording/1"
"""Schema of recording files (``header["schema"]``)."""


# ---------------------------------------------------------------------------------------------------- recorder
class EpisodeRecorder:
    """An episode's states in arrays of ``capacity`` frames, and the live scene view over them.

    Args:
        scene_id, dt: of the recording.
        capacity: maximum number of frames.
        agent_ids, agent_classes, agent_sizes: the recorded agents ``(N,)``, ``(N,)``, ``(N, 2)`` [m].
        scene_map: the episode's map (traffic lights, if any, must have ``capacity`` states), or None.
        meta: the meta data of the live view (the final one is passed to :meth:`finish`).
        ego_params: the ego's geometry.
        nominal: ``(capacity, 3)`` nominal ego rear-axle poses (the future the live view shows), world frame.
    """

    def __init__(self, scene_id: str, dt: float, capacity: int, agent_ids: np.ndarray, agent_classes: np.ndarray,
                 agent_sizes: np.ndarray, scene_map: SceneMap | None, meta: SceneMeta, ego_params: VehicleParameters,
                 nominal: np.ndarray) -> None:
        n, T = len(agent_ids), int(capacity)
        self.capacity, self.frames = T, 0
        self.ego_poses = np.array(nominal, dtype=np.float64).reshape(T, 3)
        self.ego_velocities = np.zeros((T, 2))
        self.agent_poses = np.zeros((n, T, 3))
        self.agent_velocities = np.zeros((n, T, 2))
        self.agent_valid = np.zeros((n, T), dtype=bool)
        self.light_states = np.array([light.states for light in scene_map.traffic_lights], dtype=np.uint8) \
            if scene_map is not None and scene_map.traffic_lights else np.zeros((0, T), dtype=np.uint8)
        self._map = scene_map
        view = Scene(scene_id=scene_id, dt=dt, ego_poses=self.ego_poses, ego_velocities=self.ego_velocities,
                     agent_ids=agent_ids, agent_classes=agent_classes, agent_sizes=agent_sizes,
                     agent_poses=self.agent_poses, agent_velocities=self.agent_velocities,
                     agent_valid=self.agent_valid, map=scene_map, meta=meta, ego_params=ego_params)
        self.view = copy.copy(view)
        for name in ("ego_poses", "ego_velocities", "agent_poses", "agent_velocities", "agent_valid"):
            arr = getattr(self, name).view()
            arr.setflags(write=False)
            object.__setattr__(self.view, name, arr)

    @property
    def t(self) -> int:
        """The last recorded frame."""
        return self.frames - 1

    def record(self, ego_pose: np.ndarray, ego_velocity: np.ndarray, agent_poses: np.ndarray,
               agent_velocities: np.ndarray, agent_valid: np.ndarray, light_states: np.ndarray | None = None) -> int:
        """Append one frame; returns its index. Poses are world-frame (ego: rear axle; agents: box centre)."""
        k = self.frames
        if k >= self.capacity:
            raise IndexError(f"EpisodeRecorder: capacity of {self.capacity} frames exceeded")
        self.ego_poses[k] = ego_pose
        self.ego_velocities[k] = ego_velocity
        self.ego_velocities[k + 1:] = ego_velocity
        self.agent_poses[:, k] = agent_poses
        self.agent_velocities[:, k] = agent_velocities
        self.agent_valid[:, k] = agent_valid
        if light_states is not None and len(self.light_states):
            changed = np.any(self.light_states[:, k] != light_states)
            self.light_states[:, k:] = np.asarray(light_states, dtype=np.uint8)[:, None]
            if changed or k == 0:
                self._refresh_lights()
        self.frames = k + 1
        return k

    def _refresh_lights(self) -> None:
        """A new live map whose lights show the recorded states (the renderer caches per map object)."""
        assert self._map is not None
        lights = tuple(TrafficLight(tl.lane_id, tl.stop_point, self.light_states[i])
                       for i, tl in enumerate(self._map.traffic_lights))
        self._map = SceneMap(self._map.drivable_areas, self._map.lanes, self._map.route_lane_ids, self._map.route,
                             self._map.intersections, lights)
        object.__setattr__(self.view, "map", self._map)

    def finish(self, meta: SceneMeta) -> Scene:
        """The validated scene of the recorded frames with ``meta``."""
        T = self.frames
        if T == 0:
            raise ValueError("EpisodeRecorder.finish: nothing was recorded")
        scene_map = self._map
        if scene_map is not None and scene_map.traffic_lights:
            lights = tuple(TrafficLight(tl.lane_id, tl.stop_point, self.light_states[i, :T])
                           for i, tl in enumerate(scene_map.traffic_lights))
            scene_map = SceneMap(scene_map.drivable_areas, scene_map.lanes, scene_map.route_lane_ids,
                                 scene_map.route, scene_map.intersections, lights)
        v = self.view
        return Scene(scene_id=v.scene_id, dt=v.dt, ego_poses=self.ego_poses[:T], ego_velocities=self.ego_velocities[:T],
                     agent_ids=v.agent_ids, agent_classes=v.agent_classes, agent_sizes=v.agent_sizes,
                     agent_poses=self.agent_poses[:, :T], agent_velocities=self.agent_velocities[:, :T],
                     agent_valid=self.agent_valid[:, :T], map=scene_map, meta=meta, ego_params=v.ego_params)


# ------------------------------------------------------------------------------------------------------- files
def write_recording(scene: Scene, path: str | os.PathLike) -> Path:
    """Write ``scene`` to ``path`` (``.npz``; temp file + rename); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {
        "ego_poses": scene.ego_poses, "ego_velocities": scene.ego_velocities, "agent_ids": scene.agent_ids,
        "agent_classes": scene.agent_classes, "agent_sizes": scene.agent_sizes, "agent_poses": scene.agent_poses,
        "agent_velocities": scene.agent_velocities, "agent_valid": scene.agent_valid,
    }
    m = scene.map
    map_header: dict[str, Any] | None = None
    if m is not None:
        arrays["lane_centerlines"] = np.concatenate([lane.centerline for lane in m.lanes]) if m.lanes \
            else np.zeros((0, 2))
        arrays["drivable_areas"] = np.concatenate(m.drivable_areas)
        arrays["route"] = m.route
        arrays["intersections"] = np.concatenate(m.intersections) if m.intersections else np.zeros((0, 2))
        arrays["light_states"] = np.array([tl.states for tl in m.traffic_lights], dtype=np.uint8).reshape(
            len(m.traffic_lights), scene.num_frames)
        map_header = {
            "lanes": [[lane.lane_id, len(lane.centerline), lane.width, lane.in_intersection, lane.speed_limit]
                      for lane in m.lanes],
            "drivable_sizes": [len(p) for p in m.drivable_areas],
            "intersection_sizes": [len(p) for p in m.intersections],
            "route_lane_ids": list(m.route_lane_ids),
            "lights": [[tl.lane_id, *map(float, tl.stop_point)] for tl in m.traffic_lights],
        }
    p = scene.ego_params
    header = {
        "schema": RECORDING_SCHEMA, "scene_id": scene.scene_id, "dt": scene.dt,
        "meta": {"source": scene.meta.source, "scenario_type": scene.meta.scenario_type,
                 "colliding_agent_id": scene.meta.colliding_agent_id, "collision_frame": scene.meta.collision_frame,
                 "extra": _jsonable(dict(scene.meta.extra))},
        "ego_params": [p.length, p.width, p.wheelbase, p.rear_axle_to_center],
        "map": map_header,
    }
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    return path


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a recording (scene id, meta, map layout) without loading the arrays."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return json.loads(bytes(data["header"]).decode())
    except (OSError, KeyError, ValueError) as exc:
        raise SourceError(f"CARLA recording {str(path)!r}: cannot be read ({type(exc).__name__}: {exc})") from None


def read_recording(path: str | os.PathLike) -> Scene:
    """The scene of a recording file (``SourceError`` naming the file when it is missing or not a recording)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(bytes(data["header"]).decode())
            arrays = {k: data[k] for k in data.files if k != "header"}
    except (OSError, KeyError, ValueError) as exc:
        raise SourceError(f"CARLA recording {str(path)!r}: cannot be read ({type(exc).__name__}: {exc})") from None
    if header.get("schema") != RECORDING_SCHEMA:
        raise SourceError(f"CARLA recording {str(path)!r}: schema {header.get('schema')!r}, expected "
                          f"{RECORDING_SCHEMA!r}")
    scene_map = None
    mh = header["map"]
    if mh is not None:
        cl = np.split(arrays["lane_centerlines"], np.cumsum([row[1] for row in mh["lanes"]])[:-1]) \
            if mh["lanes"] else []
        lanes = tuple(Lane(int(r[0]), c, float(r[2]), bool(r[3]), float(r[4])) for r, c in zip(mh["lanes"], cl))
        drivable = tuple(np.split(arrays["drivable_areas"], np.cumsum(mh["drivable_sizes"])[:-1]))
        inters = tuple(np.split(arrays["intersections"], np.cumsum(mh["intersection_sizes"])[:-1])) \
            if mh["intersection_sizes"] else ()
        lights = tuple(TrafficLight(int(r[0]), np.array(r[1:3]), arrays["light_states"][i])
                       for i, r in enumerate(mh["lights"]))
        scene_map = SceneMap(drivable, lanes, tuple(mh["route_lane_ids"]), arrays["route"], inters, lights)
    m = header["meta"]
    meta = SceneMeta(source=m["source"], scenario_type=m["scenario_type"], colliding_agent_id=m["colliding_agent_id"],
                     collision_frame=m["collision_frame"], extra=m["extra"])
    return Scene(scene_id=header["scene_id"], dt=float(header["dt"]), ego_poses=arrays["ego_poses"],
                 ego_velocities=arrays["ego_velocities"], agent_ids=arrays["agent_ids"],
                 agent_classes=arrays["agent_classes"], agent_sizes=arrays["agent_sizes"],
                 agent_poses=arrays["agent_poses"], agent_velocities=arrays["agent_velocities"],
                 agent_valid=arrays["agent_valid"], map=scene_map, meta=meta,
                 ego_params=VehicleParameters(*header["ego_params"]))


def recording_name(scene_id: str) -> str:
    """File name of a scene's recording: its id with path separators replaced, ``.npz``."""
    return scene_id.replace("/", "__").replace(os.sep, "__") + ".npz"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


# -------------------------------------------------------------------------------------------- origin and source
@dataclass(frozen=True)
class CarlaRecordingOrigin(Origin):
    """A recorded CARLA episode: the recording file (:func:`read_recording`)."""

    kind: ClassVar[str] = "carla"
    path: str
    scene_id: str | None = None


def store_recording(scene: Scene, record_dir: str | os.PathLike | None) -> dict[str, Any]:
    """Write a finished episode's ``scene`` into ``record_dir`` (:func:`recording_name`; None: keep it in memory
    only) and say where it lives: ``{"recording": path, "origin": CarlaRecordingOrigin dict}``, or
    ``{"origin": UnresolvableOrigin dict}`` without a folder (the env's final ``info`` entries)."""
    out: dict[str, Any] = {}
    if record_dir:
        path = write_recording(scene, Path(record_dir) / recording_name(scene.scene_id))
        out["recording"] = str(path)
        out["origin"] = CarlaRecordingOrigin(path=str(path.resolve()), scene_id=scene.scene_id).to_dict()
    else:
        out["origin"] = UnresolvableOrigin(source="carla", scene_id=scene.scene_id).to_dict()
    return out


class RecordingFolder:
    """A folder of recordings (``*.npz``, sorted by name) as an indexable collection of scenes."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise SourceError(f"CARLA source {str(self.root)!r}: not a folder")
        self.files = sorted(self.root.glob("*.npz"))
        self._ids: list[str] | None = None

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Scene:
        return read_recording(self.files[index])

    @property
    def scene_ids(self) -> list[str]:
        if self._ids is None:
            self._ids = [read_header(f)["scene_id"] for f in self.files]
        return self._ids

    def __repr__(self) -> str:
        return f"RecordingFolder({str(self.root)!r}, {len(self)} recordings)"


def _open_recordings(root: str | os.PathLike | None = None, **_: Any) -> RecordingFolder:
    if root is None:
        raise SourceError("source 'carla' needs root=<folder of CARLA recordings> (CarlaEnvConfig.record_dir)")
    return RecordingFolder(root)


def _recording_origin(options: Mapping[str, Any], index: int) -> Origin:
    folder = RecordingFolder(options["root"])
    return CarlaRecordingOrigin(path=str(folder.files[int(index)].resolve()))


register_origin(CarlaRecordingOrigin, lambda o: read_recording(o.path))
register_source("carla", _open_recordings, "recorded CARLA episodes: a folder of .npz recordings (root)",
                origin=_recording_origin)

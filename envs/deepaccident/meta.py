"""Meta files ``<type>/meta/<name>.txt``: weather, collision status, colliding agents, junction and directions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from envs.deepaccident.errors import DeepAccidentFormatError

NO_COLLISION = ("-1",) * 7
"""The 7 collision tokens of a scenario without a collision."""

AGENT_ORDER = ("ego_vehicle", "ego_vehicle_behind", "other_vehicle", "other_vehicle_behind")
"""Order of the ids on the meta ``agents id:`` line (``DeepAccident_dataset.py``)."""

SHORT_AGENT_NAMES = {"ego": "ego_vehicle", "ego_behind": "ego_vehicle_behind", "other": "other_vehicle",
                     "other_behind": "other_vehicle_behind"}
"""Short names used on the ``colliding agents:`` line (``none``: an actor outside the four V2X vehicles)."""


def agent_full_name(name: str) -> str:
    """``ego`` -> ``ego_vehicle`` etc.; other names unchanged."""
    return SHORT_AGENT_NAMES.get(name, name)


@dataclass(frozen=True)
class MetaInfo:
    """Scenario facts from ``<type>/meta/<name>.txt``.

    Line 1 of a real file (DeepAccident issue #29)::

        MidRainSunset 2675 car 2671 car 1095.9534535970056 same rear_side 66
        colliding agents: ego other
        agents id: 2675 2690 2671 2691
        road_type: four-way junction
        another_vehicle_spawn_side: opposite
        ego_vehicle_direction: right
        other_vehicle_direction: left

    Tokens 2..8 of line 1 are the collision status (all ``-1``: no collision). ``DeepAccident_dataset.py`` reads
    tokens 2..5 as ``id1 kind1 id2 kind2`` of the two colliding actors; the meaning of tokens 6..8 is not
    documented and they are kept raw. ``other_files/DeepAccident_split_data.py`` reads the last token of line 1
    as the scenario length.

    Attributes:
        weather_time: token 1, e.g. ``ClearNoon``.
        weather: ``weather_time`` without its time-of-day suffix (``MidRain``), or the whole token if no suffix.
        time_of_day: ``Noon``, ``Sunset``, ``Night`` or None.
        collision_tokens: the 7 raw status tokens.
        collision: True unless all 7 are ``-1``.
        collision_actor_ids: the two actor ids (None where not an int).
        collision_actor_kinds: the two actor kinds (e.g. ``car``, ``pedestrian``).
        collision_status: the official loader's category: ``no_collision``, ``collides_with_pedestrian``,
            ``collides_between_vehicles``.
        scenario_length: last token of line 1 when there are more than 8 tokens and it is an int, else None.
        colliding_agents: names on line 2 after ``colliding agents:`` (e.g. ``("ego", "other")``), or None.
        colliding_agents_line: line 2 raw ("" if absent).
        agent_actor_ids: V2X agent name -> CARLA actor id from ``agents id:`` (ego, ego_behind, other,
            other_behind order, per ``DeepAccident_dataset.py``); empty if the line is missing or malformed.
        fields: every ``key: value`` line, by key.
        junction_type: value of line 4 (e.g. ``four-way junction``), or None.
        spawn_side: value of line 5, or None.
        ego_direction: value of the second-to-last line, or None.
        other_direction: value of the last line, or None.
        notes: what could not be parsed (defensive parsing never raises for lines 2+).
    """

    weather_time: str
    weather: str
    time_of_day: str | None
    collision_tokens: tuple[str, ...]
    collision: bool
    collision_actor_ids: tuple[int | None, int | None]
    collision_actor_kinds: tuple[str, str]
    collision_status: str
    scenario_length: int | None
    colliding_agents: tuple[str, ...] | None
    colliding_agents_line: str
    agent_actor_ids: dict[str, int]
    fields: dict[str, str]
    junction_type: str | None
    spawn_side: str | None
    ego_direction: str | None
    other_direction: str | None
    notes: tuple[str, ...]


TIMES_OF_DAY = ("Noon", "Sunset", "Night")


def _maybe_int(token: str) -> int | None:
    try:
        return int(token)
    except ValueError:
        return None


def _value(line: str) -> str | None:
    return line.split(": ", 1)[1].strip() if ": " in line else None


def parse_meta(path: Path) -> MetaInfo:
    """Parse a meta file (see :class:`MetaInfo`).

    Raises:
        DeepAccidentFormatError: missing file (field ``meta``), or line 1 with fewer than 8 tokens
            (field ``collision_status``).
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DeepAccidentFormatError(path, None, "meta", "meta file does not exist") from None
    except UnicodeDecodeError as exc:
        raise DeepAccidentFormatError(path, None, "meta", f"not UTF-8 text ({exc.reason})") from None
    tokens = lines[0].split() if lines else []
    if len(tokens) < 8:
        raise DeepAccidentFormatError(
            path, 1, "collision_status", f"expected '<WeatherTime>' and 7 collision tokens, got {len(tokens)} tokens"
        )
    notes: list[str] = []
    weather_time = tokens[0]
    time_of_day = next((t for t in TIMES_OF_DAY if weather_time.endswith(t)), None)
    weather = weather_time[: -len(time_of_day)] if time_of_day else weather_time
    if time_of_day is None:
        notes.append(f"line 1: weather token {weather_time!r} has no Noon/Sunset/Night suffix")
    status = tuple(tokens[1:8])
    collision = status != NO_COLLISION
    kinds = (status[1], status[3])
    if "-1" in kinds:
        category = "no_collision"
    elif "pedestrian" in kinds:
        category = "collides_with_pedestrian"
    else:
        category = "collides_between_vehicles"
    if collision and category == "no_collision":
        notes.append("line 1: collision tokens are not all -1 but an actor kind is -1")
    scenario_length = _maybe_int(tokens[-1]) if len(tokens) > 8 else None

    fields: dict[str, str] = {}
    for line in lines[1:]:
        if ": " in line:
            key, value = line.split(": ", 1)
            fields[key.strip()] = value.strip()
    line2 = lines[1] if len(lines) > 1 else ""
    colliding = None
    if line2.startswith("colliding agents:"):
        colliding = tuple(line2.split(":", 1)[1].split())
    else:
        notes.append(f"line 2: expected 'colliding agents: <a> <b>', got {line2!r}")
    actor_ids: dict[str, int] = {}
    ids_line = lines[2] if len(lines) > 2 else ""
    if "id: " in ids_line:
        parsed = [_maybe_int(t) for t in ids_line.split("id: ")[-1].split()]
        if parsed and all(p is not None for p in parsed):
            actor_ids = {name: int(p) for name, p in zip(AGENT_ORDER, parsed)}
    if not actor_ids:
        notes.append(f"line 3: expected 'agents id: <ego> <ego_behind> <other> <other_behind>', got {ids_line!r}")
    junction = _value(lines[3]) if len(lines) > 3 else None
    spawn = _value(lines[4]) if len(lines) > 4 else None
    ego_dir = _value(lines[-2]) if len(lines) > 5 else None
    other_dir = _value(lines[-1]) if len(lines) > 5 else None
    if junction is None or ego_dir is None or other_dir is None:
        notes.append("lines 4-7: junction type or directions missing")
    return MetaInfo(
        weather_time=weather_time,
        weather=weather,
        time_of_day=time_of_day,
        collision_tokens=status,
        collision=collision,
        collision_actor_ids=(_maybe_int(status[0]), _maybe_int(status[2])),
        collision_actor_kinds=kinds,
        collision_status=category,
        scenario_length=scenario_length,
        colliding_agents=colliding,
        colliding_agents_line=line2,
        agent_actor_ids=actor_ids,
        fields=fields,
        junction_type=junction,
        spawn_side=spawn,
        ego_direction=ego_dir,
        other_direction=other_dir,
        notes=tuple(notes),
    )

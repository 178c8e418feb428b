"""Meta files ``<type>/meta/<name>.txt``: weather, collision status, colliding agents, junction and directions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from envs.scenes.deepaccident.errors import DeepAccidentFormatError

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
    tokens 2..5 as ``id1 kind1 id2 kind2`` of the two colliding actors (lines 661-671; lines 386-392 classify the
    collision from the kinds, tokens 3 and 5); the meaning of tokens 6..8 is not documented and they are kept raw.
    ``other_files/DeepAccident_split_data.py`` reads the last token of line 1 as the scenario length. Whether a
    collision happened, and between which actors, is taken from this file (the mini-set builder,
    ``DeepAccident_create_mini_data.py`` lines 108-131, filters ``*_accident`` folders on it), never from the
    folder name.

    Attributes:
        weather_time: token 1, e.g. ``ClearNoon``.
        weather: ``weather_time`` without its time-of-day suffix (``MidRain``), or the whole token if no suffix.
        time_of_day: ``Noon``, ``Sunset``, ``Night`` or None.
        collision_tokens: the 7 raw status tokens.
        collision: True unless all 7 are ``-1``.
        collision_actor_ids: the two actor ids (integers when ``collision``; None for ``-1`` placeholders that
            are not ints).
        collision_actor_kinds: the two actor kinds (e.g. ``car``, ``pedestrian``).
        collision_status: the official loader's category: ``no_collision``, ``collides_with_pedestrian``,
            ``collides_between_vehicles``.
        scenario_length: last token of line 1 if it is an int, else None.
        colliding_agents: names on line 2 after ``colliding agents:`` (e.g. ``("ego", "other")``).
        colliding_agents_line: line 2 raw.
        agent_actor_ids: V2X agent name -> CARLA actor id from ``agents id:`` (ego, ego_behind, other,
            other_behind order, ``DeepAccident_dataset.py`` lines 645-659).
        fields: every ``key: value`` line, by key.
        junction_type: value of line 4 (e.g. ``four-way junction``).
        spawn_side: value of line 5.
        ego_direction: value of the second-to-last line.
        other_direction: value of the last line.
        notes: oddities that do not stop parsing (a weather token without a time-of-day suffix, ...).
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
    colliding_agents: tuple[str, ...]
    colliding_agents_line: str
    agent_actor_ids: dict[str, int]
    fields: dict[str, str]
    junction_type: str
    spawn_side: str
    ego_direction: str
    other_direction: str
    notes: tuple[str, ...]


TIMES_OF_DAY = ("Noon", "Sunset", "Night")


def _maybe_int(token: str) -> int | None:
    try:
        return int(token)
    except ValueError:
        return None


META_LINES = 7
"""Lines a meta file must have. The public code reads lines 1-5 and the last two: ``DeepAccident_dataset.py``
lines 359-396 (line 1 tokens 0, 2, 4; line 4 ``split(': ')[1]``; lines -2, -1) and 642-662 (line 3 ``agents id``;
line 1 tokens 1-4 as ints); ``other_files/DeepAccident_create_mini_data.py`` lines 114-117 and 158-159 (line 2
``colliding agents: a b``, line 5)."""


META_FIELDS = (
    ("collision_status", "'<WeatherTime> <7 collision tokens> <length>'"),
    ("colliding_agents", "'colliding agents: <a> <b>'"),
    ("agents_id", "'agents id: <ego> <ego_behind> <other> <other_behind>'"),
    ("road_type", "'road_type: <junction>'"),
    ("spawn_side", "'another_vehicle_spawn_side: <side>'"),
    ("ego_direction", "'ego_vehicle_direction: <direction>'"),
    ("other_direction", "'other_vehicle_direction: <direction>'"),
)
"""Field name and expected content of each meta line, in order."""


def _key_value(path: Path, line_no: int, text: str, field: str) -> str:
    if ": " not in text:
        raise DeepAccidentFormatError(path, line_no, field, f"expected '<key>: <value>', got {text!r}")
    return text.split(": ", 1)[1].strip()


def parse_meta(path: Path) -> MetaInfo:
    """Parse a meta file (see :class:`MetaInfo`); every line the public code reads must be there and well formed.

    Raises:
        DeepAccidentFormatError: missing file (field ``meta``); line 1 with fewer than 8 tokens (field
            ``collision_status``) or without the scenario length (9th token, field ``scenario_length``); a
            collision whose actor ids (tokens 2 and 4) are not integers (field ``collision_actor_id``); line 2 not
            ``colliding agents: <a> <b>`` (``colliding_agents``); line 3 not ``agents id: <4 ints>``
            (``agents_id``); lines 4-5 and the last two not ``<key>: <value>``; fewer than :data:`META_LINES` lines
            (the first missing line is named). Trailing blank lines are ignored.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DeepAccidentFormatError(path, None, "meta", "meta file does not exist") from None
    except UnicodeDecodeError as exc:
        raise DeepAccidentFormatError(path, None, "meta", f"not UTF-8 text ({exc.reason})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) < META_LINES:
        field, what = META_FIELDS[len(lines)]
        raise DeepAccidentFormatError(path, len(lines) + 1, field, f"missing line: expected {what} (the file has "
                                      f"{len(lines)} line(s); a meta file has {META_LINES})")
    tokens = lines[0].split()
    if len(tokens) < 8:
        raise DeepAccidentFormatError(
            path, 1, "collision_status", f"expected '<WeatherTime>' and 7 collision tokens, got {len(tokens)} tokens"
        )
    if len(tokens) < 9:
        raise DeepAccidentFormatError(path, 1, "scenario_length", "missing the last token, the scenario length")
    notes: list[str] = []
    weather_time = tokens[0]
    time_of_day = next((t for t in TIMES_OF_DAY if weather_time.endswith(t)), None)
    weather = weather_time[: -len(time_of_day)] if time_of_day else weather_time
    if time_of_day is None:
        notes.append(f"line 1: weather token {weather_time!r} has no Noon/Sunset/Night suffix")
    status = tuple(tokens[1:8])
    collision = status != NO_COLLISION
    actor_ids = (_maybe_int(status[0]), _maybe_int(status[2]))
    if collision and None in actor_ids:
        raise DeepAccidentFormatError(
            path, 1, "collision_actor_id", f"collision actor ids (tokens 2 and 4) must be integers, got "
            f"{status[0]!r} and {status[2]!r}"
        )
    kinds = (status[1], status[3])
    if "-1" in kinds:
        category = "no_collision"
    elif "pedestrian" in kinds:
        category = "collides_with_pedestrian"
    else:
        category = "collides_between_vehicles"
    if collision and category == "no_collision":
        notes.append("line 1: collision tokens are not all -1 but an actor kind is -1")
    scenario_length = _maybe_int(tokens[-1])

    line2 = lines[1]
    names = line2.split(":", 1)[1].split() if line2.startswith("colliding agents:") else []
    if len(names) < 2:
        raise DeepAccidentFormatError(path, 2, "colliding_agents", f"expected 'colliding agents: <a> <b>', got {line2!r}")
    ids_line = lines[2]
    parsed = [_maybe_int(t) for t in ids_line.split("id: ")[-1].split()] if "id: " in ids_line else []
    if len(parsed) < len(AGENT_ORDER) or any(p is None for p in parsed):
        raise DeepAccidentFormatError(
            path, 3, "agents_id", f"expected 'agents id: <ego> <ego_behind> <other> <other_behind>' (integers), "
            f"got {ids_line!r}"
        )
    agent_ids = {name: int(p) for name, p in zip(AGENT_ORDER, parsed)}
    junction = _key_value(path, 4, lines[3], "road_type")
    spawn = _key_value(path, 5, lines[4], "spawn_side")
    ego_dir = _key_value(path, len(lines) - 1, lines[-2], "ego_direction")
    other_dir = _key_value(path, len(lines), lines[-1], "other_direction")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        if ": " in line:
            key, value = line.split(": ", 1)
            fields[key.strip()] = value.strip()
    return MetaInfo(
        weather_time=weather_time,
        weather=weather,
        time_of_day=time_of_day,
        collision_tokens=status,
        collision=collision,
        collision_actor_ids=actor_ids,
        collision_actor_kinds=kinds,
        collision_status=category,
        scenario_length=scenario_length,
        colliding_agents=tuple(names),
        colliding_agents_line=line2,
        agent_actor_ids=agent_ids,
        fields=fields,
        junction_type=junction,
        spawn_side=spawn,
        ego_direction=ego_dir,
        other_direction=other_dir,
        notes=tuple(notes),
    )

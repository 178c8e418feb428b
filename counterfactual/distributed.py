"""Mining a scene source serially or in shards on Ray (``python -m counterfactual.mine --backend ray --workers N``).

:func:`mine_source` mines every scene of a :class:`envs.scenes.sources.SceneSource` with
:func:`counterfactual.miner.mine_scene` and returns one :class:`MinedScene` per scene, **in scene order**, whatever
the backend:

* ``"serial"``: one scene after the other in this process (what the CLI always did);
* ``"ray"``: the scene indices are cut into contiguous shards, each mined by a Ray task (1 CPU) with at most
  ``workers`` tasks in flight, the shards sent in order. ``shard_size`` scenes each, or by default *guided*
  shards: each shard a ``1 / (2 * workers)`` share of the scenes still unsent, at least :data:`MIN_SHARD` scenes, so
  the first tasks carry many scenes (few round trips) and the last few (the workers finish within about one scene
  of each other instead of one large shard). A task re-opens the source from its registered name and options
  (``open_source(name, **options)``: a bank is regenerated lazily scene by scene, a DeepAccident folder read from
  the path, which every node must see), once per worker process; a source without a registered name (a list of scenes) is shipped through
  Ray's object store. Results come back per shard and are put in scene order, so the pairs, their order and the
  statistics equal the serial run's (``tests/test_ray_scale.py`` checks the files row for row).

The miner is deterministic (labels' explanation seeds derive from the config seed, the scene id, the frame and the
agent), so a scene gives the same pairs in any process.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from counterfactual.miner import MinerConfig, MiningStats, SceneMining, mine_scene
from envs.scenes.sources import SceneSource, open_source

MINE_BACKENDS = ("serial", "ray")
"""Values of ``--backend``."""


@dataclass
class MinedScene:
    """One scene's mining result and whether the scene is an accident (for :class:`MiningStats`)."""

    index: int
    mining: SceneMining
    is_accident: bool


MIN_SHARD = 2
"""Fewest scenes of a guided shard (the last ones; a scene takes tens of ms to mine, a Ray task a few ms)."""


def shards(num_scenes: int, workers: int, shard_size: int | None = None) -> list[range]:
    """Contiguous index ranges covering ``range(num_scenes)`` in order: ``shard_size`` scenes each, or (None) guided
    shards of decreasing size: ``max(MIN_SHARD, ceil(unsent / (2 * workers)))`` scenes each (module docstring)."""
    if shard_size is not None:
        if shard_size < 1:
            raise ValueError(f"shard_size: expected >= 1, got {shard_size!r}")
        return [range(s, min(s + shard_size, num_scenes)) for s in range(0, num_scenes, shard_size)]
    out, start = [], 0
    while start < num_scenes:
        size = max(MIN_SHARD, math.ceil((num_scenes - start) / (2 * max(1, workers))))
        out.append(range(start, min(start + size, num_scenes)))
        start += size
    return out


def _mine_indices(source: SceneSource, indices: Sequence[int], config: MinerConfig) -> list[MinedScene]:
    out = []
    for i in indices:
        scene = source[i]
        out.append(MinedScene(int(i), mine_scene(scene, config, source.origin(i)), bool(scene.meta.is_accident)))
    return out


_OPENED: dict[str, SceneSource] = {}
"""Sources re-opened in a Ray worker process, by their spec (a worker mines many shards of one source)."""


def _source_in_worker(spec: Any) -> SceneSource:
    if isinstance(spec, SceneSource):
        return spec
    name, options = spec
    key = repr((name, sorted(options.items())))
    if key not in _OPENED:
        _OPENED.clear()
        _OPENED[key] = open_source(name, **options)
    return _OPENED[key]


def _mine_shard(spec: Any, indices: Sequence[int], config: MinerConfig) -> tuple[list[MinedScene], int, float]:
    """Ray task body: mine ``indices`` of the source ``spec`` (``(name, options)`` or the source itself); returns
    ``(results, worker pid, CPU seconds the shard took)``."""
    start = time.process_time()
    out = _mine_indices(_source_in_worker(spec), indices, config)
    return out, os.getpid(), time.process_time() - start


def mine_source(source: SceneSource, config: MinerConfig = MinerConfig(), backend: str = "serial",
                workers: int = 1, address: str | None = None, shard_size: int | None = None,
                on_scenes: Callable[[int], None] | None = None,
                cpu_by_worker: dict[int, float] | None = None) -> list[MinedScene]:
    """Every scene of ``source`` mined, in scene order (see the module docstring).

    Args:
        source: the scenes (:func:`envs.scenes.sources.open_source`).
        config: the miner's configuration.
        backend: ``"serial"`` or ``"ray"``.
        workers: Ray: shards mined at once (>= 1; each a 1-CPU task).
        address: Ray cluster (:func:`envs.vec.cluster.init_ray`; None: the running Ray, else a local one).
        shard_size: Ray: scenes per task (None: guided shards, :func:`shards`).
        on_scenes: called with the number of scenes just finished (a progress bar's ``update``).
        cpu_by_worker: Ray: filled with ``{worker pid: CPU seconds spent mining}`` (benchmarks).
    """
    if backend not in MINE_BACKENDS:
        raise ValueError(f"mining backend: expected one of {MINE_BACKENDS}, got {backend!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected an int >= 1, got {workers!r}")
    if backend == "serial":
        out = []
        for i in range(len(source)):
            out += _mine_indices(source, [i], config)
            if on_scenes is not None:
                on_scenes(1)
        return out
    from envs.vec.cluster import init_ray

    ray = init_ray(address)
    spec: Any = (source.source_name, dict(source.options)) if source.source_name else ray.put(source)
    task = ray.remote(num_cpus=1)(_mine_shard)
    todo = shards(len(source), workers, shard_size)
    pending: dict[Any, int] = {}
    results: list[list[MinedScene] | None] = [None] * len(todo)
    nxt = 0
    while nxt < len(todo) or pending:
        while nxt < len(todo) and len(pending) < workers:
            pending[task.remote(spec, list(todo[nxt]), config)] = nxt
            nxt += 1
        done, _ = ray.wait(list(pending), num_returns=1)
        k = pending.pop(done[0])
        results[k], pid, cpu = ray.get(done[0])
        if cpu_by_worker is not None:
            cpu_by_worker[pid] = cpu_by_worker.get(pid, 0.0) + cpu
        if on_scenes is not None:
            on_scenes(len(todo[k]))
    return [m for shard in results for m in shard or []]


def stats_and_pairs(mined: Sequence[MinedScene]) -> tuple[MiningStats, list]:
    """The summary statistics and the pairs, in scene order."""
    stats, pairs = MiningStats(), []
    for m in mined:
        stats.add(m.mining, m.is_accident)
        pairs.extend(m.mining.pairs)
    return stats, pairs

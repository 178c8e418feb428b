"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _sb3_log_dir(tmp_path_factory):
    """Plain SB3 algorithms in the tests (SB3's PPO on the envs) log into the session's temp folder instead of
    making ``$TMPDIR/SB3-<date>`` folders (the project's GRPO and PPO make none: ``agents.rl.sb3_logger``)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SB3_LOGDIR", str(tmp_path_factory.mktemp("sb3")))
        yield


@pytest.fixture
def one_torch_thread():
    """Torch on one CPU thread for the test (the suite runs 2 workers on 2 cores), restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------ the tiny SFT setup
# Built once per session for tests/test_sft.py and tests/test_decoder.py (tests/sft_helpers.py says what it is).
@pytest.fixture(scope="session")
def sft_source():
    from tests.sft_helpers import tiny_source

    return tiny_source()


@pytest.fixture(scope="session")
def sft_pairs(sft_source):
    from tests.sft_helpers import mined_pairs

    pairs = mined_pairs(sft_source)
    assert pairs and any(p.positive is not None for p in pairs)
    return pairs


@pytest.fixture(scope="session")
def sft_table(sft_source, sft_pairs, tmp_path_factory):
    from agents.sft.data import load_or_build_samples
    from tests.sft_helpers import SFT_SAMPLES

    return load_or_build_samples(sft_source, sft_pairs, tmp_path_factory.mktemp("sft_cache"), SFT_SAMPLES,
                                 progress=False)


@pytest.fixture(scope="session")
def sft_codebook(sft_source):
    from tests.sft_helpers import tiny_codebook

    return tiny_codebook(sft_source)


# ------------------------------------------------------------------------------------------------ learning tests
def pytest_addoption(parser):
    parser.addoption(
        "--learning-seeds", default="0",
        help="seeds for the tests that assert learning (those taking the `learning_seed` fixture): a list "
             "'0,3,7' or a range '0-9'. The suite runs seed 0; each such test's docstring gives the seeds it was "
             "swept over and the margin it keeps, e.g. `pytest -m learning --learning-seeds 0-19 -n 2`.")


def _seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            seeds.extend(range(int(lo), int(hi) + 1) if hi else [int(lo)])
        except ValueError:
            raise pytest.UsageError(f"--learning-seeds: {part!r} is neither a seed nor a range 'a-b'") from None
    return seeds


def pytest_generate_tests(metafunc):
    """Parametrize ``learning_seed`` over ``--learning-seeds`` (ids ``seed0``, ``seed1`` ...)."""
    if "learning_seed" in metafunc.fixturenames:
        seeds = _seeds(metafunc.config.getoption("learning_seeds"))
        metafunc.parametrize("learning_seed", seeds, ids=[f"seed{s}" for s in seeds])


def pytest_collection_modifyitems(config, items):
    for item in items:  # every test that takes a learning seed is a learning test
        if "learning_seed" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.learning)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """After a seed sweep (``--learning-seeds`` with more than one seed): each learning test's recorded figures
    (``record_property``) per seed, with their minimum and maximum."""
    if len(_seeds(config.getoption("learning_seeds"))) < 2:
        return
    figures: dict[tuple[str, str], list[tuple[str, float, bool]]] = {}
    for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", []):
        if getattr(report, "when", None) != "call":
            continue
        name, _, seed = report.nodeid.partition("[")
        for key, value in report.user_properties:
            figures.setdefault((name, key), []).append((seed.rstrip("]"), float(value), report.passed))
    if figures:
        terminalreporter.section("learning seed sweep")
    for (name, key), rows in sorted(figures.items()):
        values = [v for _, v, _ in rows]
        terminalreporter.write_line(f"{name} {key}: min {min(values):.3f} max {max(values):.3f} over {len(rows)} seeds")
        terminalreporter.write_line("    " + "  ".join(f"{s}={v:.3f}{'' if ok else ' (failed)'}" for s, v, ok in
                                                      sorted(rows, key=lambda r: int(r[0].removeprefix("seed")))))

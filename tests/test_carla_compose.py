"""docker-compose.yml and the Dockerfile: services, image, ports, commands, GPU reservation, healthcheck, profiles,
and the trainer's command parsed the way Hydra will parse it."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _ports(service: dict) -> list[tuple[range, range]]:
    """``[(host ports, container ports)]`` of ``"a-b:c-d"`` / ``"a:c"`` entries."""
    out = []
    for spec in service["ports"]:
        host, container = str(spec).split(":")
        rng = [tuple(int(p) for p in part.split("-")) for part in (host, container)]
        out.append(tuple(range(r[0], r[-1] + 1) for r in rng))
    return out


def _rpc_port(service: dict) -> int:
    flags = [a for a in service["command"] if a.startswith("-carla-rpc-port=")]
    return int(flags[0].split("=")[1]) if flags else 2000


def test_services_and_the_carla_server(compose):
    services = compose["services"]
    assert {"carla", "carla-nullrhi", "carla-2", "trainer", "tensorboard"} <= set(services)
    carla = services["carla"]
    assert carla["image"] == "carlasim/carla:0.9.16"
    assert carla["command"][:2] == ["bash", "CarlaUE4.sh"]
    assert {"-RenderOffScreen", "-nosound"} <= set(carla["command"])
    assert "user" not in carla  # the image's non-root user: CARLA refuses to run as root
    (host, container), = _ports(carla)
    assert list(host) == list(container) == [2000, 2001, 2002] and _rpc_port(carla) == 2000
    device, = carla["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert carla["environment"]["NVIDIA_DRIVER_CAPABILITIES"] in ("all", "graphics,compute,utility")


def test_healthcheck_probes_the_rpc_port(compose):
    carla = compose["services"]["carla"]
    test = carla["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and "/proc/net/tcp" in test[1]
    pattern = re.search(r"'([^']+)'", test[1]).group(1)
    assert int(re.search(r":([0-9A-F]{4})", pattern).group(1), 16) == _rpc_port(carla)
    sample = {  # /proc/net/tcp rows: local address, remote address, state (0A = LISTEN, 01 = ESTABLISHED)
        "   0: 00000000:07D0 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000": True,
        "   1: 0100007F:07D0 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000": False,
        "   2: 00000000:07D1 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000": False,
        "   3: 00000000000000000000000000000000:07D0 00000000000000000000000000000000:0000 0A 0": True,
    }
    for line, listening in sample.items():
        assert bool(re.search(pattern, line, re.IGNORECASE)) == listening, line
    assert {"interval", "timeout", "retries", "start_period"} <= set(carla["healthcheck"])


def test_nullrhi_variant_and_multi_server_profile(compose):
    services = compose["services"]
    null = services["carla-nullrhi"]
    assert null["profiles"] == ["nullrhi"] and "-nullrhi" in null["command"] and "-RenderOffScreen" not in null["command"]
    assert not null.get("deploy")  # no GPU reservation
    second = services["carla-2"]
    assert second["profiles"] == ["multi"] and second["image"] == "carlasim/carla:0.9.16"
    used = [set(h) for s in ("carla", "carla-2") for h, _ in _ports(services[s])]
    assert not used[0] & used[1]  # distinct host ports per server


def test_trainer_runs_the_carla_pipeline_against_the_carla_service(compose):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from experiments.config import register_configs

    register_configs()
    trainer = compose["services"]["trainer"]
    assert trainer["build"]["dockerfile"] == "Dockerfile" and (ROOT / "Dockerfile").is_file()
    assert trainer["depends_on"]["carla"]["condition"] == "service_healthy"
    default_hosts = re.search(r"\$\{CARLA_HOSTS:-([^}]+)\}", trainer["environment"]["CARLA_HOSTS"]).group(1)
    script = trainer["command"][-1].replace("$${CARLA_HOSTS}", default_hosts)  # what the container's shell runs
    argv = shlex.split(script)
    assert argv[:4] == ["python", "-m", "experiments.run", "env=carla"]
    with initialize_config_module(config_module="experiments.conf", version_base=None):
        cfg = hydra_compose(config_name="config", overrides=argv[3:])
    for host in cfg.env.hosts:
        name, port = host.split(":")
        assert name in compose["services"] and int(port) == _rpc_port(compose["services"][name])
    board = compose["services"]["tensorboard"]
    assert board["command"][0] == "tensorboard" and "6006:6006" in board["ports"]


def test_dockerfile_and_extras():
    docker = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.1[012]", docker, re.MULTILINE)  # the carla 0.9.16 wheel: CPython 3.10-3.12
    assert ".[carla]" in docker and re.search(r"^USER (?!root)\w+", docker, re.MULTILINE)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["carla"] == ["carla==0.9.16"] and any(d.startswith("pyyaml") for d in extras["dev"])

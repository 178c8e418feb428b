"""docker-compose.yml, docker-compose.gpu.yml, the Dockerfile and the trainer's start-up pieces, checked the way
``docker compose config`` would read them (Docker cannot run here): services, image, GPU reservation, profiles, and
the rules of issue 27:

* **ports**: every CARLA server publishes exactly the ports it serves on (``-carla-rpc-port=N`` -> N, streaming N+1,
  secondary N+2, same host and container ports), servers that run together use distinct ports, every documented
  ``CARLA_HOSTS`` names a server at its RPC port, and each healthcheck probes its own server's RPC port;
* **user / outputs**: the trainer starts as root with the entrypoint that creates ``./outputs``, gives a root-owned
  one to the host user (``UID``/``GID``) and drops root (run here for real when the tests run as root);
* **wait**: the trainer runs ``python -m envs.carla.wait`` (a version query, retried until a timeout) on every host
  before ``experiments.run``, and the wait does not accept a server that listens but does not answer;
* **torch**: the image takes ``TORCH_SPEC`` (the Makefile's) and ``TORCH_INDEX`` (the CPU wheel index by default),
  and the GPU override selects the CUDA build for both services that build the image.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CARLA_IMAGE = "carlasim/carla:0.9.16"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
ENTRYPOINT = str(ROOT / "docker" / "entrypoint.py")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def gpu_override() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.gpu.yml").read_text())


@pytest.fixture(scope="module")
def entrypoint():
    spec = importlib.util.spec_from_file_location("safealign_entrypoint", ENTRYPOINT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _servers(compose: dict) -> dict[str, dict]:
    return {name: s for name, s in compose["services"].items() if s.get("image") == CARLA_IMAGE}


def _ports(service: dict) -> list[tuple[range, range]]:
    """``[(host ports, container ports)]`` of ``"a-b:c-d"`` / ``"a:c"`` entries."""
    out = []
    for spec in service["ports"]:
        host, container = str(spec).split(":")
        rng = [tuple(int(p) for p in part.split("-")) for part in (host, container)]
        out.append(tuple(range(r[0], r[-1] + 1) for r in rng))
    return out


def _flag(service: dict, name: str) -> int | None:
    values = [a.split("=", 1)[1] for a in service["command"] if a.startswith(f"-{name}=")]
    assert len(values) <= 1, f"{name} given twice"
    return int(values[0]) if values else None


def _rpc_port(service: dict) -> int:
    port = _flag(service, "carla-rpc-port")
    return 2000 if port is None else port


def _served_ports(service: dict) -> list[int]:
    """What a CARLA 0.9.16 server listens on: RPC N, streaming N+1 (or -carla-streaming-port), secondary N+2."""
    rpc = _rpc_port(service)
    streaming = _flag(service, "carla-streaming-port") or rpc + 1
    return sorted({rpc, streaming, rpc + 2})


def _default(value: str) -> str:
    """The value compose substitutes for ``${VAR:-default}`` / ``${VAR-default}`` with VAR unset."""
    return re.sub(r"\$\{\w+:?-([^}]*)\}", r"\1", str(value))


def _hosts(text: str) -> list[tuple[str, int]]:
    from envs.carla.wait import split_hosts

    return split_hosts([text])


# ------------------------------------------------------------------------------------------------ the services
def test_services_and_the_carla_server(compose):
    services = compose["services"]
    assert {"carla", "carla-nullrhi", "carla-2", "trainer", "tensorboard"} <= set(services)
    assert set(_servers(compose)) == {"carla", "carla-nullrhi", "carla-2"}
    carla = services["carla"]
    assert carla["command"][:2] == ["bash", "CarlaUE4.sh"]
    assert {"-RenderOffScreen", "-nosound"} <= set(carla["command"])
    for name, server in _servers(compose).items():
        assert "user" not in server, name  # the image's non-root user: CARLA refuses to run as root
    device, = carla["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert carla["environment"]["NVIDIA_DRIVER_CAPABILITIES"] in ("all", "graphics,compute,utility")


def test_nullrhi_variant_and_multi_server_profile(compose):
    services = compose["services"]
    null = services["carla-nullrhi"]
    assert null["profiles"] == ["nullrhi"] and "-nullrhi" in null["command"]
    assert "-RenderOffScreen" not in null["command"]
    assert not null.get("deploy")  # no GPU reservation
    second = services["carla-2"]
    assert second["profiles"] == ["multi"] and "-RenderOffScreen" in second["command"]


# ------------------------------------------------------------------------------------------------ ports
def test_every_server_publishes_exactly_the_ports_it_serves_on(compose):
    """A client that connects to host:N is told to fetch sensor data from the streaming port the server serves
    on; a server remapped (host 2003 -> container 2000) sends clients to 2001, i.e. to the other server."""
    for name, server in _servers(compose).items():
        (host, container), = _ports(server)
        served = _served_ports(server)
        assert list(container) == served, f"{name}: publishes container ports {list(container)}, serves {served}"
        assert list(host) == list(container), f"{name}: host ports {list(host)} != container ports {list(container)}"
    assert _rpc_port(compose["services"]["carla"]) == 2000
    assert _rpc_port(compose["services"]["carla-2"]) == 2010


def test_servers_that_run_together_use_distinct_ports(compose):
    servers = _servers(compose)
    clashes = {frozenset((a, b)) for a in servers for b in servers if a < b
               and set(_served_ports(servers[a])) & set(_served_ports(servers[b]))}
    assert clashes <= {frozenset(("carla", "carla-nullrhi"))}  # alternatives: one or the other (README)


def test_every_documented_carla_hosts_names_a_server_at_its_rpc_port(compose):
    servers = _servers(compose)
    texts = [(ROOT / "docker-compose.yml").read_text(), (ROOT / "README.md").read_text(),
             compose["services"]["trainer"]["environment"]["CARLA_HOSTS"]]
    found = [m for text in texts for m in re.findall(r"CARLA_HOSTS(?:=|:-)([\w.:,-]+)", text)]
    assert any("carla-2" in m for m in found) and len(found) >= 4
    for hosts in found:
        for name, port in _hosts(hosts):
            assert name in servers and port == _rpc_port(servers[name]), f"CARLA_HOSTS={hosts}: {name}:{port}"


def test_each_healthcheck_probes_its_own_servers_rpc_port(compose):
    sample = {  # /proc/net/tcp rows: local address, remote address, state (0A = LISTEN, 01 = ESTABLISHED)
        "   0: 00000000:{p} 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000": True,
        "   1: 0100007F:{p} 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000": False,
        "   2: 00000000:{q} 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000": False,
        "   3: 00000000000000000000000000000000:{p} 00000000000000000000000000000000:0000 0A 0": True,
    }
    for name, server in _servers(compose).items():
        check = server["healthcheck"]
        test = check["test"]
        assert test[0] == "CMD-SHELL" and "/proc/net/tcp" in test[1], name
        pattern = re.search(r"'([^']+)'", test[1]).group(1)
        rpc = _rpc_port(server)
        assert int(re.search(r":([0-9A-F]{4})", pattern).group(1), 16) == rpc, name
        for line, listening in sample.items():
            row = line.format(p=f"{rpc:04X}", q=f"{rpc + 1:04X}")
            assert bool(re.search(pattern, row, re.IGNORECASE)) == listening, (name, row)
        assert {"interval", "timeout", "retries", "start_period"} <= set(check), name


# ------------------------------------------------------------------------------------------------ the trainer
def _trainer_script(compose: dict, **env: str) -> list[list[str]]:
    """The trainer's ``sh -c`` script with ``env`` or the environment's defaults, as argv lists split on ``&&``."""
    trainer = compose["services"]["trainer"]
    assert trainer["command"][:2] == ["sh", "-c"]
    script = trainer["command"][2]
    for var, value in trainer["environment"].items():
        script = script.replace(f"$${{{var}}}", env.get(var, _default(value)))  # what the container's shell runs
    assert "$" not in script, script
    return [shlex.split(part) for part in script.split("&&")]


def test_trainer_waits_for_a_version_answer_then_runs_the_carla_pipeline(compose):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from envs.carla.wait import parse_args
    from experiments.config import register_configs

    trainer = compose["services"]["trainer"]
    assert trainer["build"]["dockerfile"] == "Dockerfile" and (ROOT / "Dockerfile").is_file()
    assert trainer["depends_on"]["carla"]["condition"] == "service_healthy"
    register_configs()
    for env in ({}, {"CARLA_HOSTS": "carla:2000,carla-2:2010"}):  # the default and the multi-server profile's
        wait, run = _trainer_script(compose, **env)
        assert wait[:3] == ["python", "-m", "envs.carla.wait"]
        waited = parse_args(wait[3:])
        assert waited.timeout >= 60 and waited.backend == "carla"
        assert run[:5] == ["exec", "python", "-m", "experiments.run", "env=carla"]
        with initialize_config_module(config_module="experiments.conf", version_base=None):
            cfg = hydra_compose(config_name="config", overrides=run[4:])
        hosts = [tuple(h.split(":")) for h in cfg.env.hosts]
        assert [(n, int(p)) for n, p in hosts] == waited.hosts == _hosts(env.get("CARLA_HOSTS", "carla:2000"))
        for name, port in waited.hosts:  # the run uses exactly the servers waited for, at their RPC ports
            assert name in compose["services"] and port == _rpc_port(compose["services"][name])
    board = compose["services"]["tensorboard"]
    assert board["command"][0] == "tensorboard" and "6006:6006" in board["ports"]


@pytest.fixture
def standin():
    from envs.carla import standin

    yield standin
    standin.shutdown_all()


class _Clock:
    """A fake clock whose ``sleep`` advances it and runs ``on_sleep(n)`` after the n-th sleep."""

    def __init__(self, on_sleep=lambda n: None):
        self.now, self.sleeps, self.on_sleep = 0.0, 0, on_sleep

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        assert 0 < s and self.sleeps < 1000, f"sleep({s}) after {self.sleeps} sleeps"
        self.now += s
        self.sleeps += 1
        self.on_sleep(self.sleeps)


def test_wait_retries_until_the_server_answers_a_version_query(standin):
    from envs.carla.wait import wait_for_servers

    server = standin.serve("127.0.0.1", 2150, town="Standin_straight")
    server.hang()  # up (it would pass a port probe) but not answering: not ready yet
    clock = _Clock(on_sleep=lambda n: server.resume() if n == 3 else None)
    logs = []
    versions = wait_for_servers([("127.0.0.1", 2150)], timeout=60, interval=5, query_timeout=0.01,
                                backend="standin", clock=clock, sleep=clock.sleep, log=logs.append)
    assert versions == {"127.0.0.1:2150": "0.9.16"} and clock.sleeps == 3
    assert "waiting for CARLA at 127.0.0.1:2150" in logs[0] and "answers" in logs[-1]


def test_wait_gives_up_after_its_timeout_naming_the_server(standin):
    from envs.carla.connection import CarlaConnectionError
    from envs.carla.wait import wait_for_servers

    standin.serve("127.0.0.1", 2151, town="Standin_straight")  # the first host answers, the second never does
    clock = _Clock()
    with pytest.raises(CarlaConnectionError, match=r"127\.0\.0\.1:2152 did not answer a version query within 30 s"):
        wait_for_servers([("127.0.0.1", 2151), ("127.0.0.1", 2152)], timeout=30, interval=5, query_timeout=0.01,
                         backend="standin", clock=clock, sleep=clock.sleep, log=lambda m: None)
    assert clock.now == pytest.approx(30) and clock.sleeps == 6


def test_wait_fails_at_once_on_another_server_version(standin):
    from envs.carla.connection import CarlaVersionError
    from envs.carla.wait import wait_for_servers

    standin.serve("127.0.0.1", 2153, town="Standin_straight", version="0.9.15")
    clock = _Clock()
    with pytest.raises(CarlaVersionError, match="0.9.15"):
        wait_for_servers([("127.0.0.1", 2153)], timeout=300, backend="standin", clock=clock, sleep=clock.sleep,
                         log=lambda m: None)
    assert clock.sleeps == 0


def test_wait_command_line(standin, capsys):
    from envs.carla.wait import main, parse_args

    args = parse_args(["carla:2000,carla-2:2010", "[c3:2020]", "--timeout", "9"])
    assert args.hosts == [("carla", 2000), ("carla-2", 2010), ("c3", 2020)] and args.timeout == 9
    for bad in (["carla:2000", "--timeout", "0"], ["carla:99999"], [","]):
        with pytest.raises(SystemExit):
            parse_args(bad)
    standin.serve("127.0.0.1", 2154, town="Standin_straight")
    fast = ["--backend", "standin", "--timeout", "0.05", "--interval", "0.01", "--query-timeout", "0.01"]
    assert main(["127.0.0.1:2154", *fast]) == 0
    assert main(["127.0.0.1:2154,127.0.0.1:2155", *fast]) == 1
    assert "127.0.0.1:2155 did not answer" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ user / outputs
def test_trainer_starts_as_root_for_the_entrypoint_that_drops_to_the_host_user(compose, entrypoint):
    services = compose["services"]
    trainer = services["trainer"]
    assert str(trainer["user"]).split(":")[0] in ("0", "root")
    env = trainer["environment"]
    assert re.fullmatch(r"\$\{UID(:?-[^}]*)?\}", env["SAFEALIGN_UID"])
    assert re.fullmatch(r"\$\{GID(:?-[^}]*)?\}", env["SAFEALIGN_GID"])
    assert f"./outputs:{entrypoint.OUTPUTS}" in trainer["volumes"]
    assert f"./outputs:{entrypoint.OUTPUTS}:ro" in services["tensorboard"]["volumes"]
    assert str(services["tensorboard"].get("user", "safealign")).split(":")[0] not in ("0", "root")
    docker = (ROOT / "Dockerfile").read_text()
    installed = re.search(r"^COPY docker/entrypoint\.py (\S+)$", docker, re.MULTILINE).group(1)
    assert re.search(rf'^ENTRYPOINT \["{Path(installed).name}"\]$', docker, re.MULTILINE) or \
        re.search(rf'^ENTRYPOINT \["{installed}"\]$', docker, re.MULTILINE)
    assert re.search(rf"^RUN chmod 0?755 {installed}$", docker, re.MULTILINE)
    assert re.search(r"^RUN useradd --create-home --uid (\d+)", docker, re.MULTILINE).group(1) == \
        str(entrypoint.DEFAULT_IDS[0])


def test_entrypoint_chooses_the_host_user(entrypoint):
    ids = entrypoint.target_ids
    assert ids({}, (0, 0)) == (1000, 1000)  # Docker created ./outputs: the image's user
    assert ids({}, (1234, 1300)) == (1234, 1300)  # the host user created ./outputs: keep its owner
    assert ids({"SAFEALIGN_UID": "1001", "SAFEALIGN_GID": "1002"}, (0, 0)) == (1001, 1002)
    assert ids({"SAFEALIGN_UID": "", "SAFEALIGN_GID": ""}, (0, 0)) == (1000, 1000)  # ${UID:-} unset
    assert ids({"SAFEALIGN_UID": "1001"}, (0, 0)) == (1001, 1001)
    assert ids({"SAFEALIGN_UID": "0", "SAFEALIGN_GID": "0"}, (0, 0)) == (0, 0)  # rootless Docker
    with pytest.raises(SystemExit, match="numeric"):
        ids({"SAFEALIGN_UID": "alice"}, (0, 0))


@pytest.fixture
def scratch():
    path = Path(tempfile.mkdtemp(prefix="safealign-outputs-"))
    path.chmod(0o755)  # traversable by the user the entrypoint drops to
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="chown and setuid need root")
def test_entrypoint_makes_a_missing_outputs_folder_writable_by_the_host_user(entrypoint, scratch):
    outputs = scratch / "outputs"  # does not exist yet, as on a fresh host (Docker would create it root-owned)
    env = {**os.environ, "SAFEALIGN_OUTPUTS": str(outputs), "SAFEALIGN_UID": "1001", "SAFEALIGN_GID": "1002"}
    script = f'touch "{outputs}/probe" && mkdir "{outputs}/carla" && id -u && id -g && echo "$HOME"'
    done = subprocess.run([sys.executable, ENTRYPOINT, "/bin/sh", "-c", script], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    try:
        home = pwd.getpwuid(1001).pw_dir
    except KeyError:
        home = "/tmp"
    assert done.stdout.split() == ["1001", "1002", home]
    for path in (outputs, outputs / "probe", outputs / "carla"):
        assert (path.stat().st_uid, path.stat().st_gid) == (1001, 1002), path
    # root-owned (made by Docker before): given to the user; other owners are left alone, and a clear error
    # when the chosen user cannot write there
    other = scratch / "other"
    other.mkdir(mode=0o755)
    os.chown(other, 1234, 1234)
    env.update(SAFEALIGN_OUTPUTS=str(other))
    done = subprocess.run([sys.executable, ENTRYPOINT, "/bin/true"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0 and "belongs to 1234:1234" in done.stderr and "UID and GID" in done.stderr
    assert other.stat().st_uid == 1234
    env.pop("SAFEALIGN_UID"), env.pop("SAFEALIGN_GID")  # no UID given: the owner of an existing folder
    done = subprocess.run([sys.executable, ENTRYPOINT, "/bin/sh", "-c", f'touch "{other}/probe" && id -u'], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.split() == ["1234"], done.stderr


# ------------------------------------------------------------------------------------------------ torch / image
def _dockerfile_args(docker: str) -> dict[str, str]:
    return {m.group(1): m.group(2).strip('"') for m in re.finditer(r"^ARG (\w+)=(.*)$", docker, re.MULTILINE)}


def _pip_torch(docker: str, **build_args: str) -> list[str]:
    """The argv of the Dockerfile's torch ``pip install`` under ``build_args`` (run through ``sh`` as RUN does)."""
    line = re.search(r"^RUN (pip install [^\n]*TORCH_SPEC[^\n]*)$", docker, re.MULTILINE).group(1)
    assert "&&" not in line and ";" not in line
    env = {**_dockerfile_args(docker), **build_args, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    done = subprocess.run(["sh", "-c", "pip() { printf '%s\\n' \"$@\"; }; " + line], env=env, capture_output=True,
                          text=True, check=True)
    return done.stdout.splitlines()


def test_the_image_takes_a_torch_spec_and_builds_cpu_torch_by_default(compose, gpu_override):
    docker = (ROOT / "Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    args = _dockerfile_args(docker)
    make_spec = re.search(r"^TORCH_SPEC \?= (.+)$", makefile, re.MULTILINE).group(1).strip()
    assert args["TORCH_SPEC"] == make_spec and args["TORCH_INDEX"] == CPU_INDEX
    assert _pip_torch(docker) == ["install", "--index-url", CPU_INDEX, make_spec]
    assert _pip_torch(docker, TORCH_INDEX="") == ["install", make_spec]  # PyPI: the CUDA build on Linux
    assert _pip_torch(docker, TORCH_SPEC="torch==2.12.0") == ["install", "--index-url", CPU_INDEX, "torch==2.12.0"]
    # torch before the project, so `pip install -e .[carla]` finds it satisfied and does not pull another build
    assert docker.index("TORCH_SPEC\"") < docker.index(".[carla")
    for name in ("trainer", "tensorboard"):  # both build safealign:latest: the same args
        build_args = compose["services"][name]["build"]["args"]
        assert {k: _default(v) for k, v in build_args.items()} == {"TORCH_SPEC": make_spec, "TORCH_INDEX": CPU_INDEX}
        assert "deploy" not in compose["services"][name]  # no GPU needed
        gpu_args = gpu_override["services"][name]["build"]["args"]
        assert {k: _default(v) for k, v in gpu_args.items()} == {"TORCH_SPEC": make_spec, "TORCH_INDEX": ""}
    device, = gpu_override["services"]["trainer"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    readme = (ROOT / "README.md").read_text()
    assert "docker-compose.gpu.yml" in readme and "TORCH_INDEX" in readme


def test_dockerfile_and_extras():
    docker = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.1[012]", docker, re.MULTILINE)  # the carla 0.9.16 wheel: CPython 3.10-3.12
    assert re.search(r"\.\[carla(,scale)?\]", docker) and re.search(r"^USER (?!root)\w+", docker, re.MULTILINE)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["carla"] == ["carla==0.9.16"] and any(d.startswith("pyyaml") for d in extras["dev"])

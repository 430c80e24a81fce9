"""The container set-up, tested without a Docker engine: the compose file against the Compose
specification's schema, and the image's own install and start commands run in a clean venv."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
import venv
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft201909Validator

from ..children import die_with_parent

ROOT = Path(__file__).resolve().parents[2]
HEALTH_URL = "http://127.0.0.1:8000/api/health"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n\s*", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_file_is_valid_against_the_compose_spec() -> None:
    schema = json.loads((ROOT / "deploy" / "compose-spec.schema.json").read_text())
    validator = Draft201909Validator(schema)
    assert sorted(validator.iter_errors(compose()), key=str) == []
    broken = compose()
    broken["services"]["mmo-orchestrator"]["restart_policy"] = "always"  # not a Compose key
    assert list(validator.iter_errors(broken))  # the check does reject what is wrong


def test_compose_keeps_the_reports_names() -> None:
    doc = compose()
    service = doc["services"]["mmo-orchestrator"]
    assert service["container_name"] == "twg-mmo-orchestrator"
    assert service["image"] == "the-seed-mmo-orchestrator:latest"
    assert service["restart"] == "unless-stopped"
    assert service["ports"] == ["8000:8000"]
    assert service["networks"] == ["twg-network"] and "twg-network" in doc["networks"]
    assert service["healthcheck"]["interval"] == "30s"
    assert HEALTH_URL in " ".join(service["healthcheck"]["test"])
    volume, target = service["volumes"][0].split(":")
    assert target == "/data" and volume in doc["volumes"]  # a named volume
    # the admin token comes from the environment (or .env), never a literal
    assert service["environment"]["SEEDMMO_ADMIN_TOKEN"] == "${SEEDMMO_ADMIN_TOKEN:-}"


def test_dockerfile_shape() -> None:
    steps = dockerfile_instructions()
    bases = [args for keyword, args in steps if keyword == "FROM"]
    assert len(bases) == 2 and all(b.startswith("python:3.12-slim") for b in bases)
    final = steps[max(i for i, (k, _) in enumerate(steps) if k == "FROM") :]
    users = [args for keyword, args in final if keyword == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert any(k == "HEALTHCHECK" and HEALTH_URL in a for k, a in final)
    assert not any("gcc" in a or "build-essential" in a for _, a in final)
    cmd = json.loads(next(a for k, a in final if k == "CMD"))
    assert cmd[:2] == ["seedmmo", "serve"]
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert cmd[cmd.index("--data-dir") + 1] == "/data"


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_the_images_commands_work_in_a_clean_venv(tmp_path: Path) -> None:
    steps = dockerfile_instructions()
    runs = [args for keyword, args in steps if keyword == "RUN" and " pip " in f" {args} "]
    build = next(r for r in runs if "pip wheel" in r)
    install = next(r for r in runs if "pip install" in r)
    wheels = tmp_path / "wheels"
    builder = tmp_path / "build-venv"
    final = tmp_path / "final-venv"
    for env_dir in (builder, final):
        venv.create(env_dir, with_pip=True)

    def run_pip(env_dir: Path, command: str) -> None:
        command = command.split("&&")[0].replace("--no-cache-dir", "")
        command = command.replace("/wheels", str(wheels))
        args = command.split()
        assert args[0] == "pip"
        if args[-1] == ".":
            args[-1] = str(ROOT)
        done = subprocess.run(
            [str(env_dir / "bin" / "python"), "-m", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    run_pip(builder, build)
    run_pip(final, install)

    cmd = json.loads(next(a for k, a in steps if k == "CMD"))
    cmd = [str(final / "bin" / cmd[0]), *cmd[1:]]
    cmd[cmd.index("--host") + 1] = "127.0.0.1"
    cmd[cmd.index("--port") + 1] = "0"
    cmd[cmd.index("--data-dir") + 1] = str(tmp_path / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDMMO_")}
    server = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        preexec_fn=die_with_parent,
    )
    try:
        assert server.stdout is not None
        port = None
        deadline = time.monotonic() + 60
        for line in server.stdout:
            match = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line)
            if match:
                port = int(match.group(1))
                break
            assert time.monotonic() < deadline
        assert port is not None
        url = HEALTH_URL.replace("8000", str(port))
        with urllib.request.urlopen(url, timeout=5) as reply:
            assert json.loads(reply.read())["status"] == "healthy"
        # the installed package serves the pages and their vendored libraries (no CDN)
        for path in ("/stat7threejs.html", "/vendor/three.module.js", "/vendor/uPlot.esm.js"):
            with urllib.request.urlopen(url.replace("/api/health", path), timeout=5) as reply:
                assert reply.status == 200 and len(reply.read()) > 1000, path
        # the image's HEALTHCHECK command itself, pointed at this port
        check = json.loads(next(a for k, a in steps if k == "HEALTHCHECK").split("CMD", 1)[1])
        check = [str(final / "bin" / "python"), *check[1:]]
        check[-1] = check[-1].replace("8000", str(port))
        assert subprocess.run(check, check=False, timeout=30).returncode == 0
        assert (tmp_path / "data" / "admin_token").exists()  # generated, not baked in
    finally:
        server.terminate()
        server.wait(timeout=15)
        if server.stdout is not None:
            server.stdout.close()


def test_compose_cluster_profile_runs_nodes_on_a_durable_redis_behind_one_port() -> None:
    services = compose()["services"]
    cluster = {
        name for name, service in services.items() if "cluster" in service.get("profiles", [])
    }
    assert cluster == {"redis", "mmo-node", "mmo-cluster-lb"}
    assert "profiles" not in services["mmo-orchestrator"]  # the default stays one node
    redis = services["redis"]
    assert redis["command"][redis["command"].index("--appendfsync") + 1] == "always"
    assert redis["healthcheck"]["test"][-1] == "ping"
    assert redis["volumes"][0].split(":")[0] in compose()["volumes"]
    node = services["mmo-node"]
    assert node["deploy"]["replicas"] == 3
    assert "redis://redis:6379/0" in node["command"]
    assert node["depends_on"]["redis"]["condition"] == "service_healthy"
    # the node's healthcheck counts a node waiting for an election as healthy
    # (tests/e2e/test_cluster.py runs it against a leader and a follower)
    check = node["healthcheck"]["test"][-1]
    assert "no_leader" in check and "api/health" in check
    lb = services["mmo-cluster-lb"]
    assert lb["ports"] == ["8080:8080"]
    conf = (ROOT / "deploy" / "nginx-cluster.conf").read_text()
    mounted = lb["volumes"][0].split(":")[0]
    assert (ROOT / mounted).resolve() == (ROOT / "deploy" / "nginx-cluster.conf").resolve()
    # a POST is never passed on after a 503 (it may have been carried out): clients retry it
    assert "proxy_next_upstream error timeout http_503;" in conf
    assert "server mmo-node:8000" in conf and "proxy_set_header Upgrade $http_upgrade;" in conf

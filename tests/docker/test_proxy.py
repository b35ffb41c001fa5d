"""The reverse proxy of the compose stack (docker/proxy), run here with Debian's nginx in front
of the real service: it forwards requests, and closes connections that stall, so that slow
clients hold nothing of the service's."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.factories.ports import free_port
from tests.factories.service_app import ServiceData

ENTRYPOINT = Path(__file__).resolve().parents[2] / "docker" / "proxy" / "proxy-entrypoint.sh"
HEADER_TIMEOUT_S = 1

if shutil.which("nginx") is None and os.path.exists("/usr/sbin/nginx"):
    os.environ["PATH"] += ":/usr/sbin"
if shutil.which("nginx") is None:
    if os.environ.get("GEOTRIPLET_REQUIRE_NGINX"):
        raise RuntimeError("nginx is required (Debian's nginx-light): .ci/run installs it")
    pytest.skip("Debian's nginx is not installed", allow_module_level=True)


def _wait_ready(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{process.args[0]} exited with {process.returncode}"
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} was not ready within 60 s")


@dataclass(frozen=True)
class Stack:
    proxy_url: str
    proxy_port: int


@pytest.fixture(scope="module")
def stack(service_data: ServiceData, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    service_port, proxy_port = free_port(), free_port()
    service = subprocess.Popen(
        [sys.executable, "-m", "service", "--bundles-dir", str(service_data.bundles_dir),
         "--port", str(service_port), "--log-level", "warning"]
    )  # fmt: skip
    environment = {
        **os.environ,
        "PROXY_UPSTREAM": f"127.0.0.1:{service_port}",
        "PROXY_PORT": str(proxy_port),
        "PROXY_RUN_DIR": str(tmp_path_factory.mktemp("proxy")),
        "PROXY_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "PROXY_BODY_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        # as root (here), nginx's workers would otherwise switch to nobody
        "PROXY_GLOBAL_DIRECTIVES": "daemon off;" + (" user root;" if os.geteuid() == 0 else ""),
    }
    proxy = subprocess.Popen(["bash", str(ENTRYPOINT)], env=environment)
    try:
        _wait_ready(f"http://127.0.0.1:{service_port}", service)
        _wait_ready(f"http://127.0.0.1:{proxy_port}", proxy)
        yield Stack(f"http://127.0.0.1:{proxy_port}", proxy_port)
    finally:
        for process in (proxy, service):
            process.terminate()
            process.wait(timeout=10)


def test_requests_pass_through_the_proxy(stack: Stack, service_data: ServiceData) -> None:
    image_id, data = next(iter(service_data.city.photos.items()))
    answer = httpx.post(f"{stack.proxy_url}/similar", files={"image": ("q.png", data)}, timeout=30)
    assert answer.status_code == 200
    assert answer.json()["neighbours"][0]["image_id"] == image_id


def _closed_within(connection: socket.socket, seconds: float) -> bool:
    connection.settimeout(seconds)
    try:
        while connection.recv(4096):
            pass  # a 408 answer, then the close
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


@pytest.mark.parametrize(
    "stalled",
    [
        b"POST /similar HTTP/1.1\r\nHost: x\r\n",  # headers never finished
        b"POST /similar HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000\r\n\r\n{"image_id": ',  # body never finished
    ],
    ids=["headers", "body"],
)
def test_a_stalled_client_is_disconnected_by_the_server(stack: Stack, stalled: bytes) -> None:
    with socket.create_connection(("127.0.0.1", stack.proxy_port)) as connection:
        connection.sendall(stalled)
        assert _closed_within(connection, HEADER_TIMEOUT_S + 5)


def test_many_stalled_clients_leave_the_service_answering(stack: Stack) -> None:
    stalled = []
    try:
        for _ in range(50):
            connection = socket.create_connection(("127.0.0.1", stack.proxy_port))
            connection.sendall(b"GET /health HTTP/1.1\r\n")
            stalled.append(connection)
        assert httpx.get(f"{stack.proxy_url}/health", timeout=5).status_code == 200
        assert all(_closed_within(connection, HEADER_TIMEOUT_S + 5) for connection in stalled)
    finally:
        for connection in stalled:
            connection.close()

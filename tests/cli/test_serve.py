"""`geotriplet serve` runs `python -m service` on the data root's bundles: started the same
way here, on the test bundle, it answers /ready and a real POST /similar."""

from __future__ import annotations

import subprocess
import time

import httpx

from geotriplet_assets.cli.serve import service_command
from tests.factories.ports import free_port
from tests.factories.service_app import ServiceData


def test_the_service_command_serves_the_bundles_it_is_given(service_data: ServiceData) -> None:
    port = free_port()
    command = [
        *service_command(service_data.bundles_dir, "127.0.0.1", port),
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"the service exited with {process.returncode}"
            try:
                ready = httpx.get(f"{url}/ready", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the service was not ready within 60 s"
            time.sleep(0.2)
        assert ready.json()["bundle_version"] == service_data.bundle_path.name
        image_id, data = next(iter(service_data.city.photos.items()))
        answer = httpx.post(
            f"{url}/similar", files={"image": ("photo.png", data, "image/png")}, timeout=30
        )
        assert answer.status_code == 200
        assert answer.json()["neighbours"][0]["image_id"] == image_id
    finally:
        process.terminate()
        process.wait(timeout=10)

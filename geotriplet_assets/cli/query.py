"""`geotriplet query`: one real `POST /similar` over HTTP, shown with its answer.

Without `--url` it starts the service on the current bundle for the one query (a
separate `python -m service` process on a free loopback port) and stops it afterwards.
"""

from __future__ import annotations

import argparse
import mimetypes
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pandas as pd
from rich.console import Console
from rich.json import JSON

from geotriplet_assets.bundle import layout as fmt
from geotriplet_assets.catalogue.image_catalog import read_catalog
from geotriplet_assets.cli.console import console
from geotriplet_assets.cli.serve import service_command
from geotriplet_assets.config import GeoTripletConfig
from geotriplet_assets.paths import ArtefactLayout

READY_TIMEOUT_S = 120.0


class QueryFailed(RuntimeError):
    """The service could not be started or did not answer the query."""


def run(config: GeoTripletConfig, args: argparse.Namespace) -> int:
    try:
        run_demo_query(config, image=args.image, k=args.k, url=args.url, console=console)
    except QueryFailed as exc:
        console.print(f"[red]query failed:[/red] {exc}")
        return 1
    return 0


def run_demo_query(
    config: GeoTripletConfig, *, image: Path | None, k: int, url: str | None, console: Console
) -> None:
    layout = ArtefactLayout(config.data_root)
    image = image or default_query_image(config, layout)
    if not image.is_file():
        raise QueryFailed(f"image {image} does not exist")
    if url:
        _ask(url.rstrip("/"), image, k, console)
        return
    with local_service(layout.bundles_dir, console) as local_url:
        _ask(local_url, image, k, console)
    console.print(
        "search in the browser: `make serve` (or `geotriplet serve`), then open "
        "http://127.0.0.1:8000/"
    )


def default_query_image(config: GeoTripletConfig, layout: ArtefactLayout) -> Path:
    """A test-split image of the current bundle whose building has other views."""
    version = fmt.read_current_version(layout.bundles_dir)
    if version is None:
        raise QueryFailed(f"no bundle in {layout.bundles_dir}: run `geotriplet materialize` first")
    images = pd.read_parquet(layout.bundles_dir / version / fmt.IMAGES)
    views = images.groupby(["dataset_id", "target_id"])["image_id"].transform("size")
    candidates = images.loc[(images["split"] == "test") & (views > 1), "image_id"]
    if candidates.empty:
        candidates = images["image_id"]
    catalog = read_catalog(layout.catalog_dir).images.set_index("image_id")
    return config.input_dir / str(catalog.loc[candidates.iloc[0], "path"])


@contextmanager
def local_service(bundles_dir: Path, console: Console) -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [*service_command(bundles_dir, "127.0.0.1", port), "--log-level", "warning"]
    console.print(f"starting the service on {url} (bundles: {bundles_dir})")
    process = subprocess.Popen(command)
    try:
        _wait_until_ready(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_until_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    reason = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise QueryFailed(f"the service exited with status {process.returncode}")
        try:
            response = httpx.get(f"{url}/ready", timeout=2)
            if response.status_code == 200:
                return
            reason = response.text
        except httpx.TransportError as error:
            reason = str(error)
        time.sleep(0.2)
    raise QueryFailed(f"the service was not ready after {READY_TIMEOUT_S:.0f} s: {reason}")


def _ask(url: str, image: Path, k: int, console: Console) -> None:
    output = Console(soft_wrap=True)
    output.print(f"$ curl -s -F image=@{image} -F k={k} {url}/similar")
    mime = mimetypes.guess_type(image.name)[0] or "application/octet-stream"
    try:
        response = httpx.post(
            f"{url}/similar",
            files={"image": (image.name, image.read_bytes(), mime)},
            data={"k": str(k)},
            timeout=60,
        )
    except httpx.TransportError as error:
        raise QueryFailed(f"{url} did not answer: {error}") from error
    output.print(JSON(response.text) if _is_json(response) else response.text)
    if response.status_code != 200:
        raise QueryFailed(f"HTTP {response.status_code}")


def _is_json(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").startswith("application/json")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

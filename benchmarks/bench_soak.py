"""Soak: C clients for S seconds against the real service, mixing valid uploads and image_id
queries with the bad requests of the hardening review, while a new bundle is published every
minute. Target: zero failed valid requests, every bad one a 4xx; the server's RSS growth is
reported (sampled every 10 s after a warm-up).

Valid requests: a 640 x 640 JPEG upload, an image_id query, a 32 x 240 000 PNG strip. Bad
requests, in turn: a body that is not an image, malformed JSON, a JSON body over the 4 MiB
limit, a batch of 64 vectors of bad values, a vector of the wrong length, an unknown
image_id, and a client that hangs up mid-body.

    .venv/bin/python benchmarks/bench_soak.py [--seconds 600] [--clients 16] [--vectors 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import itertools
import json
import shutil
import socket
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from bench_service_http import publish_in_process
from latency import Latency
from local_server import LocalServer
from PIL import Image
from serving_data import (
    DEFAULT_MODEL_SOURCE,
    ServingModel,
    photo_like_jpeg,
    publish_random_bundle,
)

from geotriplet_assets.config import IndexConfig

_REQUEST_TIMEOUT_S = 120.0
_AS_JSON = {"headers": {"content-type": "application/json"}}
_SAMPLE_EVERY_S = 10.0


def strip_png() -> bytes:
    """A 32 x 240 000 PNG: inside the pixel limit, 7 G pixels if resized whole."""
    rows = np.linspace(0, 255, 240_000, dtype=np.uint8)[:, None, None]
    buffer = io.BytesIO()
    Image.fromarray(np.broadcast_to(rows, (240_000, 32, 3)).copy()).save(buffer, "PNG")
    return buffer.getvalue()


def bad_requests(dim: int) -> list[tuple[str, dict]]:
    """(name, httpx request arguments) of each kind of bad request."""
    bad_batch = {"queries": [{"vector": [""] * 4096}] * 64}
    return [
        ("not-an-image", {"files": {"image": ("x.jpg", b"GIF89a not really")}}),
        ("malformed-json", {"content": b'{"vector": [1, 2', **_AS_JSON}),
        (
            "json-over-limit",
            {"content": b'{"vector": [' + b"0," * 2_200_000 + b"0]}", **_AS_JSON},
        ),
        ("bad-batch", {"content": json.dumps(bad_batch).encode(), **_AS_JSON}),
        ("wrong-length", {"json": {"vector": [0.5] * (dim + 1)}}),
        ("unknown-image", {"json": {"image_id": "no/such/image"}}),
    ]


async def _hang_up_mid_body(port: int) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /similar HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 4000\r\n\r\n" + b'{"vector": [' + b"0.1," * 50
    )
    await writer.drain()
    writer.transport.abort()


async def soak(
    server: LocalServer,
    valid: list[tuple[str, dict]],
    bad: list[tuple[str, dict]],
    clients: int,
    seconds: float,
    publish_every: float,
    publish,
) -> dict:
    results: Counter[tuple[str, str]] = Counter()
    valid_latency: list[float] = []
    rss: list[tuple[float, float]] = []
    swaps: list[str] = []
    stop = asyncio.Event()
    kinds = itertools.cycle([*valid, *valid, *valid, *bad, ("hang-up", {})])
    started = time.monotonic()

    async def client_loop(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            name, request = next(kinds)
            kind = "valid" if (name, request) in valid else "bad"
            begun = time.perf_counter()
            try:
                if name == "hang-up":
                    await _hang_up_mid_body(server.port)
                    outcome = "hung-up"
                else:
                    response = await client.post("/similar", **request)
                    outcome = str(response.status_code)
            except httpx.HTTPError as error:
                outcome = type(error).__name__
            if kind == "valid" and outcome == "200":
                valid_latency.append(time.perf_counter() - begun)
            results[(f"{kind}:{name}", outcome)] += 1

    async def publisher() -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), publish_every)
            except TimeoutError:
                swaps.append(str(await loop.run_in_executor(None, publish)))

    async def sampler() -> None:
        while not stop.is_set():
            rss.append((time.monotonic() - started, server.memory_mib()["VmRSS"]))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _SAMPLE_EVERY_S)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=server.url, limits=limits, timeout=_REQUEST_TIMEOUT_S
    ) as client:
        tasks = [asyncio.create_task(client_loop(client)) for _ in range(clients)]
        tasks += [asyncio.create_task(publisher()), asyncio.create_task(sampler())]
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*tasks)
    return {"results": results, "latency": valid_latency, "rss": rss, "swaps": swaps}


def report(outcome: dict, seconds: float, warm_up: float) -> None:
    results: Counter = outcome["results"]
    failed_valid = sum(
        n for (kind, code), n in results.items() if kind.startswith("valid") and code != "200"
    )
    wrong_bad = sum(
        n
        for (kind, code), n in results.items()
        if kind.startswith("bad") and not (code.startswith("4") or code == "hung-up")
    )
    for (kind, code), count in sorted(results.items()):
        print(f"  {kind:24s} {code:>16s} {count:7d}")
    latency = Latency.of(outcome["latency"])
    warm = [mib for at, mib in outcome["rss"] if at >= warm_up]
    print(
        f"{sum(results.values())} requests in {seconds:.0f} s, {len(outcome['swaps'])} bundle "
        f"swaps; valid answers p50 {latency.p50_ms:.0f} ms, p99 {latency.p99_ms:.0f} ms"
    )
    print(f"failed valid requests: {failed_valid} (target 0)")
    print(f"bad requests not answered with a 4xx: {wrong_bad} (target 0)")
    if warm:
        print(
            f"server RSS after {warm_up:.0f} s warm-up {warm[0]:.0f} MiB, at the end "
            f"{warm[-1]:.0f} MiB (growth {warm[-1] - warm[0]:+.0f} MiB), peak {max(warm):.0f} MiB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--vectors", type=int, default=20_000)
    parser.add_argument("--publish-every", type=float, default=60.0)
    parser.add_argument("--warm-up", type=float, default=60.0)
    parser.add_argument(
        "--model-from", type=Path, default=DEFAULT_MODEL_SOURCE, help="bundle(s) dir"
    )
    args = parser.parse_args()
    model = ServingModel.from_bundle(args.model_from)
    workdir = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    bundles_dir = workdir / "bundles"
    seeds = itertools.count(1)
    try:
        publish_random_bundle(bundles_dir, model, args.vectors, IndexConfig(), 0)
        with LocalServer(bundles_dir, workdir / "server.log") as server:
            server.wait_ready()
            image_id = httpx.get(f"{server.url}/images/bench/0/img_0000000").json()["image_id"]
            valid = [
                ("upload", {"files": {"image": ("q.jpg", photo_like_jpeg(1), "image/jpeg")}}),
                ("image-id", {"json": {"image_id": image_id, "k": 10}}),
                ("strip-png", {"files": {"image": ("strip.png", strip_png())}}),
            ]
            bad = bad_requests(model.embedding_dim)
            outcome = asyncio.run(
                soak(
                    server,
                    valid,
                    bad,
                    args.clients,
                    args.seconds,
                    args.publish_every,
                    lambda: publish_in_process(bundles_dir, model, args.vectors, next(seeds)),
                )
            )
        print(f"soak: {args.clients} clients, {args.vectors} vectors, {socket.gethostname()}")
        report(outcome, args.seconds, args.warm_up)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

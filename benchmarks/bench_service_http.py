"""The service over loopback HTTP: JPEG uploads one at a time against decode + bare ONNX
forward in process, 16 concurrent clients, and a bundle swap under that load.

Publishes a bundle of N random vectors with the real serving model, starts uvicorn as
`geotriplet serve` does (subprocess, 127.0.0.1) and measures in one run:
  baseline  decode_bytes_to_uint8 (the bundle's preprocessing) + bare ONNX Runtime forward of
            the same model, with the service's session options, in this process;
  http      POST /similar with the same 640x640 JPEG (multipart, k=10), one at a time;
            interleaved with the baseline in blocks. Target: p50 http/baseline <= 1.3.
  load      C clients (httpx, asyncio) posting the JPEG for S seconds: throughput, p50/p99,
            errors (target 0);
  swap      the same load while a second bundle is published (`current` moves, the
            service loads it in the background and swaps): failed requests (target 0) and
            when the new version was first answered.

    .venv/bin/python benchmarks/bench_service_http.py [--vectors 100000] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
from latency import Latency
from local_server import LocalServer
from prometheus_client.parser import text_string_to_metric_families
from serving_data import (
    DEFAULT_MODEL_SOURCE,
    ServingModel,
    photo_like_jpeg,
    publish_random_bundle,
)

from geotriplet_assets.bundle import layout as fmt
from geotriplet_assets.bundle.image_decode import decode_bytes_to_uint8
from geotriplet_assets.config import IndexConfig

TARGET_RATIO = 1.3
_PAUSE_BETWEEN_BLOCKS_S = 0.1
_REQUEST_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Outcome:
    """One request of a load run."""

    seconds: float
    finished_at: float  # wall clock (time.time)
    error: str | None  # None for a 200; the status code or the exception's name otherwise
    version: str | None


class Baseline:
    """Decode + forward as the service's bundle does it, without the service; keeps the
    seconds of each part."""

    def __init__(self, model: ServingModel, model_path: Path) -> None:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._model = model
        self.decode_s: list[float] = []
        self.forward_s: list[float] = []

    def __call__(self, data: bytes) -> np.ndarray:
        started = time.perf_counter()
        pixels = decode_bytes_to_uint8(data, self._model.preprocessing, self._model.decode_limits)
        decoded = time.perf_counter()
        (embeddings,) = self._session.run(["embeddings"], {"images": pixels[None]})
        self.decode_s.append(decoded - started)
        self.forward_s.append(time.perf_counter() - decoded)
        return embeddings


@dataclass
class CpuTotals:
    """CPU seconds of the one-at-a-time phase: this process during the baseline blocks, this
    process and the server during the HTTP blocks."""

    baseline: float = 0.0
    server: float = 0.0
    client: float = 0.0


def upload(client: httpx.Client, jpeg: bytes, k: int) -> httpx.Response:
    response = client.post(
        "/similar", files={"image": ("query.jpg", jpeg, "image/jpeg")}, data={"k": str(k)}
    )
    response.raise_for_status()
    return response


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def stage_totals(client: httpx.Client) -> dict[str, tuple[float, float]]:
    """(sum of seconds, count) of each /similar stage and of whole /similar requests."""
    totals: dict[str, tuple[float, float]] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            label = sample.labels.get("stage") or (
                "request" if sample.labels.get("endpoint") == "/similar" else None
            )
            if label is None or not sample.name.endswith(("_sum", "_count")):
                continue
            total, count = totals.get(label, (0.0, 0.0))
            if sample.name.endswith("_sum"):
                totals[label] = (total + sample.value, count)
            else:
                totals[label] = (total, count + sample.value)
    return totals


def stage_means_ms(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> dict[str, float]:
    means = {}
    for stage, (total, count) in after.items():
        old_total, old_count = before.get(stage, (0.0, 0.0))
        if count > old_count:
            means[stage] = 1000 * (total - old_total) / (count - old_count)
    return means


async def load(
    url: str, jpeg: bytes, k: int, clients: int, stop: asyncio.Event
) -> tuple[list[Outcome], float]:
    """CLIENTS concurrent loops, each posting the JPEG and waiting for the answer, until STOP
    is set; also the seconds the load ran."""
    outcomes: list[Outcome] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client_loop(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            started = time.perf_counter()
            error = version = None
            try:
                response = await client.post(
                    "/similar",
                    files={"image": ("query.jpg", jpeg, "image/jpeg")},
                    data={"k": str(k)},
                )
                if response.status_code == 200:
                    version = response.json()["bundle_version"]
                else:
                    error = str(response.status_code)
            except httpx.HTTPError as failure:
                error = type(failure).__name__
            outcomes.append(Outcome(time.perf_counter() - started, time.time(), error, version))

    started = time.perf_counter()
    async with httpx.AsyncClient(
        base_url=url, limits=limits, timeout=_REQUEST_TIMEOUT_S
    ) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
    return outcomes, time.perf_counter() - started


async def steady_load(
    url: str, jpeg: bytes, k: int, clients: int, seconds: float
) -> tuple[list[Outcome], float]:
    stop = asyncio.Event()
    running = asyncio.create_task(load(url, jpeg, k, clients, stop))
    await asyncio.sleep(seconds)
    stop.set()
    return await running


async def load_with_swap(
    url: str,
    jpeg: bytes,
    k: int,
    clients: int,
    swap_after: float,
    after_move: float,
    publish: Callable[[], float],
) -> tuple[list[Outcome], float, float]:
    """`load` that runs PUBLISH (which returns when `current` moved) SWAP_AFTER seconds in and
    goes on for AFTER_MOVE seconds after it returned; also the wall clock time at which
    `current` moved and the seconds the load ran."""
    stop = asyncio.Event()
    running = asyncio.create_task(load(url, jpeg, k, clients, stop))
    await asyncio.sleep(swap_after)
    moved_at = await asyncio.get_running_loop().run_in_executor(None, publish)
    await asyncio.sleep(after_move)
    stop.set()
    outcomes, seconds = await running
    return outcomes, moved_at, seconds


def publish_in_process(bundles_dir: Path, model: ServingModel, count: int, seed: int) -> float:
    """Publish a bundle from a separate process (the clients' event loop stays undisturbed);
    the wall clock time at which `current` moved."""
    process = multiprocessing.get_context("spawn").Process(
        target=publish_random_bundle, args=(bundles_dir, model, count, IndexConfig(), seed)
    )
    process.start()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"publishing the second bundle failed (exit code {process.exitcode})")
    return (bundles_dir / fmt.CURRENT_POINTER).stat().st_mtime


def summary(outcomes: list[Outcome], seconds: float) -> str:
    ok = [o.seconds for o in outcomes if o.error is None]
    errors = Counter(o.error for o in outcomes if o.error is not None)
    latency = Latency.of(ok)
    return (
        f"{len(outcomes)} requests, {len(ok) / seconds:.1f} answers/s, p50 {latency.p50_ms:.1f} "
        f"ms, p99 {latency.p99_ms:.1f} ms, errors {sum(errors.values())}"
        + (f" {dict(errors)}" if errors else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200, help="one at a time, each way")
    parser.add_argument("--block", type=int, default=20)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--after-swap", type=float, default=20.0, help="seconds of load after `current` moved"
    )
    parser.add_argument("--swap-after", type=float, default=5.0)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--model-from", type=Path, default=DEFAULT_MODEL_SOURCE, help="bundle(s) dir"
    )
    parser.add_argument(
        "--search-threads",
        type=int,
        default=None,
        help="the service's FAISS threads per search (default: the service's own, 1)",
    )
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    model = ServingModel.from_bundle(args.model_from)
    workdir = Path(tempfile.mkdtemp(prefix="bench-http-"))
    bundles_dir = workdir / "bundles"
    try:
        first, publish_s = publish_random_bundle(
            bundles_dir, model, args.vectors, IndexConfig(), seed=0
        )
        jpeg = photo_like_jpeg(seed=7)
        server_environment = {}
        if args.search_threads is not None:
            server_environment["GEOTRIPLET_SERVICE_SEARCH_THREADS"] = str(args.search_threads)
        bare = Baseline(model, first.path / fmt.MODEL)
        with (
            LocalServer(bundles_dir, workdir / "server.log", server_environment) as server,
            httpx.Client(base_url=server.url, timeout=_REQUEST_TIMEOUT_S) as client,
        ):
            ready_s = server.wait_ready()
            for _ in range(10):
                vector = bare(jpeg)[0].tolist()
                upload(client, jpeg, args.k)
            bare.decode_s.clear()
            bare.forward_s.clear()
            baseline: list[float] = []
            http: list[float] = []
            cpu = CpuTotals()
            before = stage_totals(client)
            while len(http) < args.requests:
                started = time.process_time()
                for _ in range(args.block):
                    baseline.append(timed(lambda: bare(jpeg)))
                cpu.baseline += time.process_time() - started
                time.sleep(_PAUSE_BETWEEN_BLOCKS_S)  # let ONNX Runtime's spinning threads rest
                started, server_started = time.process_time(), server.cpu_seconds()
                for _ in range(args.block):
                    http.append(timed(lambda: upload(client, jpeg, args.k)))
                cpu.client += time.process_time() - started
                cpu.server += server.cpu_seconds() - server_started
                time.sleep(_PAUSE_BETWEEN_BLOCKS_S)
            stages = stage_means_ms(before, stage_totals(client))
            vector_http = [
                timed(lambda: client.post("/similar", json={"vector": vector, "k": args.k}))
                for _ in range(args.requests)
            ]
            memory_idle = server.memory_mib()

            steady, steady_s = asyncio.run(
                steady_load(server.url, jpeg, args.k, args.clients, args.seconds)
            )
            memory_loaded = server.memory_mib()

            swap_started = time.time()
            swapped, moved_at, swap_s = asyncio.run(
                load_with_swap(
                    server.url,
                    jpeg,
                    args.k,
                    args.clients,
                    args.swap_after,
                    args.after_swap,
                    lambda: publish_in_process(bundles_dir, model, args.vectors, seed=1),
                )
            )
            ready_after = client.get("/ready").json()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    base, over_http = Latency.of(baseline), Latency.of(http)
    ratio = over_http.p50_ms / base.p50_ms
    print(
        f"bundle: {args.vectors} random vectors, {first.manifest['index']['type']} index "
        f"(published in {publish_s:.1f} s), model {model.info.get('backbone')} "
        f"{model.preprocessing.height}px -> {model.embedding_dim}-d; JPEG 640x640 q90, "
        f"{len(jpeg) / 1024:.0f} KiB; server ready {ready_s:.2f} s after start; "
        f"FAISS threads in the server: {args.search_threads or 'default (1)'}"
    )
    print(f"one request at a time, {args.requests} each, blocks of {args.block}:  p50 ms   p99 ms")
    print(
        f"baseline: decode + bare ONNX forward, in process    "
        f"{base.p50_ms:7.2f}  {base.p99_ms:7.2f}"
    )
    print(
        f"POST /similar, JPEG upload, loopback HTTP           "
        f"{over_http.p50_ms:7.2f}  {over_http.p99_ms:7.2f}"
    )
    print(
        f"ratio HTTP/baseline at p50: {ratio:.3f} (target <= {TARGET_RATIO}: "
        f"{'met' if ratio <= TARGET_RATIO else 'NOT met'})"
    )
    print(
        "server-side mean per upload, ms: "
        + ", ".join(f"{stage} {stages[stage]:.2f}" for stage in ("decode", "embed", "search"))
        + f"; whole /similar request {stages['request']:.2f}"
    )
    print(
        f"baseline parts, p50 ms: decode {Latency.of(bare.decode_s).p50_ms:.2f}, "
        f"ONNX forward {Latency.of(bare.forward_s).p50_ms:.2f}"
    )
    per_request = {
        "baseline": 1000 * cpu.baseline / len(baseline),
        "server": 1000 * cpu.server / len(http),
        "client": 1000 * cpu.client / len(http),
    }
    print(
        f"CPU per request, core-ms: baseline "
        f"{per_request['baseline']:.1f}; HTTP upload: server {per_request['server']:.1f} + client "
        f"{per_request['client']:.1f}; server/baseline "
        f"{per_request['server'] / per_request['baseline']:.3f}"
    )
    vector_latency = Latency.of(vector_http)
    print(
        f"reference: POST /similar JSON vector, one at a time: p50 {vector_latency.p50_ms:.2f} "
        f"ms, p99 {vector_latency.p99_ms:.2f} ms"
    )
    print(f"{args.clients} concurrent clients, {steady_s:.0f} s: {summary(steady, steady_s)}")
    old, new = first.version, ready_after["bundle_version"]
    first_new = min((o.finished_at for o in swapped if o.version == new), default=None)
    last_old = max((o.finished_at for o in swapped if o.version == old), default=None)
    print(f"bundle swap under {args.clients} clients, {swap_s:.0f} s: {summary(swapped, swap_s)}")
    answers = Counter(o.version for o in swapped if o.version is not None)
    print(
        f"  `current` moved {moved_at - swap_started:.1f} s into the run; new version first "
        + (
            f"answered {first_new - moved_at:.2f} s after"
            if first_new is not None and new != old
            else "NEVER answered"
        )
        + (f", old version last answered {last_old - moved_at:.2f} s after" if last_old else "")
        + f"; answers old/new {answers[old]}/{answers[new] if new != old else 0}"
    )
    print(
        "server RSS MiB: idle "
        + ", ".join(f"{k} {v:.0f}" for k, v in memory_idle.items())
        + "; after the steady load "
        + ", ".join(f"{k} {v:.0f}" for k, v in memory_loaded.items())
    )
    print(
        f"1-min load average before/after (other processes share these cores): "
        f"{load_before:.2f}/{os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()

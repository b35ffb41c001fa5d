"""Hot swap: follow `<bundles_dir>/current`, load each new bundle in the background, swap.

Requests read `watcher.current` once at their start and keep that object, so requests in
flight finish on the bundle they started with. A bundle that fails to load leaves the
previous one serving; the failure is kept for /ready, and the same pointer (same name and
modification time) is not tried again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from geotriplet_assets.bundle import layout as fmt
from geotriplet_assets.bundle.load import LoadedBundle

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadFailure:
    bundle: str
    error: str
    at: float


@dataclass(frozen=True)
class _Pointer:
    name: str
    mtime_ns: int


class PointerError(Exception):
    """The `current` pointer is missing or does not name a bundle directory."""


class BundleWatcher:
    def __init__(
        self,
        bundles_dir: Path,
        load: Callable[[Path], LoadedBundle],
        *,
        poll_interval_s: float = 2.0,
        on_loaded: Callable[[LoadedBundle], None] | None = None,
        on_failed: Callable[[LoadFailure], None] | None = None,
    ) -> None:
        self.bundles_dir = Path(bundles_dir)
        self._load = load
        self._poll_interval_s = poll_interval_s
        self._on_loaded = on_loaded
        self._on_failed = on_failed
        self._current: LoadedBundle | None = None
        self._current_name: str | None = None
        self._failed_pointer: _Pointer | None = None
        self._last_failure: LoadFailure | None = None
        self._pointer_problem: str | None = None
        self._loading: str | None = None
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> LoadedBundle | None:
        """The bundle serving now; take it once per request."""
        return self._current

    @property
    def last_failure(self) -> LoadFailure | None:
        """The last load failure, until a bundle loads or `current` names the serving one."""
        return self._last_failure

    @property
    def pointer_problem(self) -> str | None:
        """What is wrong with `current` at the last poll, None when it names a bundle."""
        return self._pointer_problem

    def not_ready_reason(self) -> str:
        # The pointer's state now comes before an older load failure.
        if self._pointer_problem is not None:
            return f"no bundle to load: {self._pointer_problem}"
        if self._last_failure is not None:
            failure = self._last_failure
            return f"bundle {failure.bundle} failed to load: {failure.error}"
        if self._loading is not None:
            return f"loading bundle {self._loading}"
        return f"no bundle loaded yet from {self.bundles_dir}"

    def poll_once(self) -> None:
        """Check the pointer; load and swap in the bundle it names when that is new."""
        with self._poll_lock:
            try:
                pointer = self._read_pointer()
            except PointerError as error:
                if self._pointer_problem != str(error):
                    logger.warning("%s", error)
                self._pointer_problem = str(error)
                return
            self._pointer_problem = None
            if pointer.name == self._current_name:
                self._last_failure = None
                return
            if pointer == self._failed_pointer:
                return
            self._load_and_swap(pointer)

    def start(self) -> None:
        """Poll in a daemon thread (first poll at once) until `stop`; idempotent."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="bundle-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # the watcher must outlive any surprise; it is logged
                logger.exception("bundle watcher poll failed")
            self._stop.wait(self._poll_interval_s)

    def _read_pointer(self) -> _Pointer:
        path = self.bundles_dir / fmt.CURRENT_POINTER
        try:
            mtime_ns = path.stat().st_mtime_ns
            name = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise PointerError(f"{path} does not exist") from None
        except (OSError, UnicodeDecodeError) as error:
            raise PointerError(f"cannot read {path}: {error}") from error
        if not fmt.is_bundle_version(name):
            raise PointerError(f"{path} names {name[:80]!r}, not a bundle version")
        return _Pointer(name=name, mtime_ns=mtime_ns)

    def _load_and_swap(self, pointer: _Pointer) -> None:
        self._loading = pointer.name
        started = time.perf_counter()
        try:
            bundle = self._load(self.bundles_dir / pointer.name)
        except Exception as error:  # any failure leaves the old bundle serving
            failure = LoadFailure(bundle=pointer.name, error=str(error), at=time.time())
            self._failed_pointer = pointer
            self._last_failure = failure
            logger.error("bundle %s failed to load: %s", pointer.name, error)
            if self._on_failed is not None:
                self._on_failed(failure)
            return
        finally:
            self._loading = None
        # Clear the failure before publishing the bundle: /ready reads `current` and then
        # `last_failure`, and must never see the new bundle beside the old failure.
        self._failed_pointer = None
        self._last_failure = None
        self._current_name = pointer.name
        self._current = bundle
        logger.info(
            "serving bundle %s (%d images) after loading it in %.2f s",
            bundle.version,
            bundle.count,
            time.perf_counter() - started,
        )
        if self._on_loaded is not None:
            self._on_loaded(bundle)

"""The service's settings, read from the environment (prefix GEOTRIPLET_SERVICE_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


class ServiceSettings(BaseSettings):
    """Where bundles are, request limits, and how hard the service may use the CPU."""

    # `null` in the environment is None: "every core" for the thread settings
    model_config = SettingsConfigDict(
        env_prefix="GEOTRIPLET_SERVICE_", extra="forbid", env_parse_none_str="null"
    )

    bundles_dir: Path = Field(
        Path("data/bundles"), description="Folder holding the bundles and the `current` pointer."
    )
    default_k: int = Field(10, ge=1, description="Neighbours returned when a query omits k.")
    max_k: int = Field(100, ge=1, description="Largest k a query may ask for.")
    max_batch: int = Field(64, ge=1, description="Most queries in one JSON `queries` request.")
    max_upload_bytes: int = Field(20 * MIB, ge=1, description="Largest request body, in bytes.")
    max_json_bytes: int = Field(
        4 * MIB, ge=1, description="Largest JSON request body, in bytes (checked before parsing)."
    )
    thumbnail_cache_bytes: int = Field(
        32 * MIB, ge=0, description="Most bytes of JPEG thumbnails kept in memory."
    )
    rerank_cache_bytes: int = Field(
        128 * MIB,
        ge=0,
        description="Most bytes of indexed photos' local features (for rerank) kept in memory.",
    )
    max_rerank_candidates: int = Field(
        200,
        ge=1,
        description="Most candidates re-ranked in one request (the sum of rerank_top over a "
        "batch's queries); more is a 422.",
    )
    max_vector_length: int = Field(
        4096, ge=1, description="Most values a query vector may have (any bundle's dimension)."
    )
    max_pixels: int = Field(
        40_000_000, ge=1, description="Largest uploaded image (width x height) decoded."
    )
    max_radius_m: float = Field(
        100_000.0, gt=0, description="Largest radius_m of a geographic filter, in metres."
    )
    poll_interval_s: float = Field(
        2.0, gt=0, description="How often the `current` pointer is checked for a new bundle."
    )
    verify_hashes: bool = Field(True, description="Check every bundle file's SHA-256 on load.")
    onnx_threads: int | None = Field(
        None, ge=1, description="ONNX Runtime intra-op threads (default: every core)."
    )
    search_threads: int | None = Field(
        1,
        ge=1,
        description="FAISS OpenMP threads per search; null (GEOTRIPLET_SERVICE_SEARCH_THREADS="
        "null): every core. Concurrent requests "
        "already use the cores, and one thread each measured faster (docs/benchmarks.md).",
    )
    exact_filter_max_candidates: int = Field(
        50_000,
        ge=0,
        description="A geographic filter matching at most this many images is scored exactly "
        "against vectors.npy; above it, FAISS searches with an id selector.",
    )

    @model_validator(mode="after")
    def _default_k_within_max(self) -> ServiceSettings:
        if self.default_k > self.max_k:
            raise ValueError(f"default_k ({self.default_k}) exceeds max_k ({self.max_k})")
        return self

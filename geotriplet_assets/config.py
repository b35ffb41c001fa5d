"""The one typed configuration of GeoTriplet, loaded from YAML.

It accepts the original project's sections (`data`, `model`, `train`, `logging`, `optuna`,
`auto_batch_size`) so existing configs keep working, adds the new ones, and rejects unknown
keys and bad values with the key named.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

CONFIG_ENV_VAR = "GEOTRIPLET_CONFIG"
DATA_ROOT_ENV_VAR = "GEOTRIPLET_DATA_ROOT"
CACHE_DIR_ENV_VAR = "GEOTRIPLET_CACHE_DIR"
COMPUTE_MODE_ENV_VAR = "GEOTRIPLET_COMPUTE_MODE"
OPTUNA_STORAGE_ENV_VAR = "GEOTRIPLET_OPTUNA_STORAGE"
DEMO_CONFIG_NAME = "demo_config.yaml"


IGNORED_CACHE_SIZE = (
    "data.cache_size has no effect: the original project cached images, GeoTriplet reads "
    "embeddings from their HDF5 shards; the key is accepted so that its configs still load"
)


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


class IgnoredSettingWarning(UserWarning):
    """A key that is accepted for compatibility but changes nothing."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]


class DataConfig(_Section):
    root: str = "data"
    input_dir: str = "demo_city"
    hdf5_path: str | None = None
    batch_size: PositiveInt = 256
    num_workers: NonNegativeInt = 0
    num_difficulty_levels: Annotated[int, Field(ge=1, le=64)] = 5
    ucb_alpha: Annotated[float, Field(gt=0)] = 2.0
    cache_size: NonNegativeInt | None = None
    feature_model: str | None = None
    image_size: PositiveInt | None = None

    @field_validator("cache_size")
    @classmethod
    def _cache_size_has_no_effect(cls, value: int | None) -> int | None:
        if value is not None:
            warnings.warn(IGNORED_CACHE_SIZE, IgnoredSettingWarning, stacklevel=2)
        return value


class ModelConfig(_Section):
    backbone: str = "tf_efficientnet_lite0"
    backbone_weights: str = "package"
    embedding_size: PositiveInt = 128
    hidden_size: PositiveInt | None = None
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1
    margin: Annotated[float, Field(gt=0)] = 0.3
    backbone_output_size: PositiveInt | None = None


SamplingName = Literal[
    "ucb", "ucb_inbatch", "ucb_semihard", "uniform_bands", "random", "pml_semihard"
]
"""training.params.SAMPLING_MODES (this layer may not import training; a test keeps them equal)."""


class TrainConfig(_Section):
    lr: Annotated[float, Field(gt=0)] = 1e-3
    max_epochs: PositiveInt = 30
    precision: Literal["32", "32-true", "16-mixed", "bf16-mixed"] = "16-mixed"
    samples_per_epoch: PositiveInt = 20_000
    seed: int = 42
    warmup_epochs: NonNegativeInt = 1
    weight_decay: Annotated[float, Field(ge=0)] = 1e-4
    difficulty_update_freq: PositiveInt = 10
    sampling: SamplingName = "ucb_inbatch"
    eval_queries: PositiveInt | None = 10_000
    recall_radius_m: Annotated[float, Field(gt=0)] = 25.0

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value


class LoggingConfig(_Section):
    project_name: str = "geo-triplet-net"
    exp_name: str | None = None
    checkpoint_dir: str = "checkpoints"
    offline: bool = True


class OptunaConfig(_Section):
    enabled: bool = False
    storage: str | None = None
    study_name: str = "building_triplet_study"
    project_name: str = "geo-triplet-optuna"
    group_name: str | None = None
    n_trials: PositiveInt = 10
    timeout_s: Annotated[float, Field(gt=0)] | None = None


class AutoBatchSizeConfig(_Section):
    enabled: bool = False
    mode: Literal["power", "binsearch"] = "power"


class CatalogueConfig(_Section):
    workers: PositiveInt | None = None


class EmbeddingConfig(_Section):
    engine: Literal["auto", "onnx", "torch"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: PositiveInt = 32
    num_workers: NonNegativeInt = 1
    min_side: PositiveInt = 32
    max_pixels: PositiveInt = 50_000_000
    cache_dir: str | None = None


class NeighboursConfig(_Section):
    k: PositiveInt = 50


class SplitsConfig(_Section):
    ratios: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 42
    buffer_m: Annotated[float, Field(ge=0)] = 100.0

    @field_validator("ratios")
    @classmethod
    def _ratios_sum_to_one(cls, ratios: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(r < 0 or not math.isfinite(r) for r in ratios):
            raise ValueError(f"ratios must be finite and non-negative, got {list(ratios)}")
        if abs(sum(ratios) - 1.0) > 1e-6:
            raise ValueError(f"ratios must sum to 1 (train, val, test), got {list(ratios)}")
        return ratios


class SynthSettings(_Section):
    preset: Literal["tiny", "demo", "large"] = "demo"
    seed: int = 7


class IndexConfig(_Section):
    type: Literal["auto", "flat", "hnsw", "ivfpq"] = "auto"
    exact_max_vectors: PositiveInt = 200_000
    approximate: Literal["auto", "hnsw", "ivfpq"] = "auto"
    hnsw_max_vectors: PositiveInt = 500_000
    hnsw_m: Annotated[int, Field(ge=4, le=256)] = 32
    hnsw_ef_construction: PositiveInt = 200
    hnsw_ef_search: PositiveInt = 128
    ivf_nlist: PositiveInt | None = None
    ivf_nprobe: PositiveInt = 32
    pq_m: PositiveInt = 16
    pq_nbits: Annotated[int, Field(ge=4, le=12)] = 8
    ivf_rerank: Annotated[int, Field(ge=1, le=100)] = 50
    ivf_target_recall: Annotated[float, Field(gt=0, le=1)] | None = 0.95
    recall_queries: PositiveInt = 1000
    vectors_dtype: Literal["float16", "float32"] = "float16"


class ServingConfig(_Section):
    index: IndexConfig = IndexConfig()
    keep_bundles: PositiveInt = 3
    parity_images: PositiveInt = 16
    parity_tolerance: Annotated[float, Field(gt=0)] = 1e-4
    report_upload_queries: NonNegativeInt = 200
    report_queries: PositiveInt | None = 10_000
    locate_k: Annotated[int, Field(ge=1, le=100)] = 20
    locate_cluster_radius_m: Annotated[float, Field(gt=0)] = 100.0


class SlurmResources(_Section):
    """What one SLURM job of a step asks for (sbatch's options of the same names)."""

    partition: str | None = None
    time: str = "01:00:00"
    cpus_per_task: PositiveInt = 2
    mem: str | None = "4G"
    gres: str | None = None
    extra_args: list[str] = []

    @field_validator("time")
    @classmethod
    def _slurm_time(cls, value: str) -> str:
        if not _SLURM_TIME.fullmatch(value):
            raise ValueError(
                f"time must be SLURM's [days-]hours:minutes:seconds or minutes, got {value!r}"
            )
        return value

    @field_validator("partition", "mem", "gres")
    @classmethod
    def _one_word(cls, value: str | None) -> str | None:
        return _sbatch_word(value)

    @field_validator("extra_args")
    @classmethod
    def _options_only(cls, values: list[str]) -> list[str]:
        for value in values:
            if not value.startswith("--") or _BLANK.search(value):
                raise ValueError(
                    f"extra_args holds sbatch long options (--name=value), got {value!r}"
                )
        return values


_SLURM_TIME = re.compile(r"(\d+-)?\d+(:\d{1,2}){0,2}")
_BLANK = re.compile(r"[\s\x00-\x1f]")


def _sbatch_word(value: str | None) -> str | None:
    """A value written into an #SBATCH line of the job script: one word, so that it can neither
    split the option nor start a line of shell."""
    if value is not None and (not value or _BLANK.search(value)):
        raise ValueError(f"must be one word without spaces or control characters, got {value!r}")
    return value


class TrialWorkers(SlurmResources):
    workers: PositiveInt = 2


class SlurmConfig(_Section):
    """How steps run as SLURM jobs: the job's environment, where its files go, what each asks."""

    python: str = "python"
    job_dir: str = "slurm"
    poll_interval_s: Annotated[float, Field(gt=0)] = 2.0
    parallel_partitions: PositiveInt = 16
    account: str | None = None
    qos: str | None = None
    backbone_embeddings: SlurmResources = SlurmResources()
    hyperparameter_search: TrialWorkers = TrialWorkers()
    projection_head: SlurmResources = SlurmResources()

    @field_validator("account", "qos", "job_dir")
    @classmethod
    def _one_word(cls, value: str | None) -> str | None:
        return _sbatch_word(value)


class ComputeConfig(_Section):
    """Where the heavy steps run: in the Dagster step's own process (local) or as SLURM jobs
    driven by it (slurm). `$GEOTRIPLET_COMPUTE_MODE` sets the mode when the config does not."""

    mode: Literal["local", "slurm"] = Field(
        default_factory=lambda: os.environ.get(COMPUTE_MODE_ENV_VAR) or "local",
        validate_default=True,
    )
    slurm: SlurmConfig = SlurmConfig()

    @field_validator("mode", mode="before")
    @classmethod
    def _known_mode(cls, value: object) -> object:
        if value not in ("local", "slurm"):
            raise ValueError(
                f"compute.mode (or ${COMPUTE_MODE_ENV_VAR}) is local or slurm, got {value!r}"
            )
        return value


class GeoTripletConfig(_Section):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    logging: LoggingConfig = LoggingConfig()
    optuna: OptunaConfig = OptunaConfig()
    auto_batch_size: AutoBatchSizeConfig = AutoBatchSizeConfig()
    catalogue: CatalogueConfig = CatalogueConfig()
    embedding: EmbeddingConfig = EmbeddingConfig()
    neighbours: NeighboursConfig = NeighboursConfig()
    splits: SplitsConfig = SplitsConfig()
    synth: SynthSettings = SynthSettings()
    serving: ServingConfig = ServingConfig()
    compute: ComputeConfig = Field(default_factory=ComputeConfig)

    @model_validator(mode="after")
    def _backbone_names_agree(self) -> GeoTripletConfig:
        feature_model = self.data.feature_model
        if feature_model is not None and feature_model != self.model.backbone:
            raise ValueError(
                f"data.feature_model ({feature_model!r}) and model.backbone "
                f"({self.model.backbone!r}) name different backbones; set one, or both alike"
            )
        return self

    @property
    def data_root(self) -> Path:
        """The folder every relative path resolves against (`GEOTRIPLET_DATA_ROOT` wins)."""
        override = os.environ.get(DATA_ROOT_ENV_VAR)
        return Path(override or self.data.root).expanduser().resolve()

    def resolve(self, path: str | Path) -> Path:
        """A configured path made absolute against the data root."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.data_root / candidate

    @property
    def backbone_cache_dir(self) -> Path:
        """Where backbone exports are cached, for every data root alike (the key is the
        model, its weights' hash and the preprocessing): `GEOTRIPLET_CACHE_DIR`, else
        embedding.cache_dir (relative: against the data root), else the user's cache."""
        configured = os.environ.get(CACHE_DIR_ENV_VAR) or self.embedding.cache_dir
        if configured:
            return self.resolve(configured)
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        return Path(base).expanduser() / "geotriplet" / "backbones"

    @property
    def input_dir(self) -> Path:
        return self.resolve(self.data.input_dir)

    @property
    def dagster_home(self) -> Path:
        return self.data_root / "dagster_home"


def _format_validation_error(source: str, error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            problems.append(f"unknown key '{key}'")
        else:
            problems.append(f"'{key}': {item['msg']} (got {item.get('input')!r})")
    return f"invalid configuration in {source}: " + "; ".join(problems)


def parse_config(text: str, source: str = "<string>") -> GeoTripletConfig:
    """Validate YAML text; errors name the source and every offending key."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source} must hold a mapping of sections, got {type(raw).__name__}")
    try:
        return GeoTripletConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(source, exc)) from exc


def demo_config_text() -> str:
    return resources.files("geotriplet_assets").joinpath(DEMO_CONFIG_NAME).read_text("utf-8")


def load_config(path: str | Path | None = None) -> GeoTripletConfig:
    """Load PATH, else `$GEOTRIPLET_CONFIG`, else the embedded demo config."""
    chosen = path or os.environ.get(CONFIG_ENV_VAR)
    if not chosen:
        return parse_config(demo_config_text(), source=f"embedded {DEMO_CONFIG_NAME}")
    config_path = Path(chosen).expanduser()
    if not config_path.is_file():
        raise ConfigError(f"config file {config_path} does not exist")
    return parse_config(config_path.read_text("utf-8"), source=str(config_path))

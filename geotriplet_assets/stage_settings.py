"""What each stage takes from the configuration, as the plain values its code accepts.

Stage code never sees the whole `GeoTripletConfig`: the assets, the CLI and the benchmarks
turn it into these values here, in one place.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from geotriplet_assets.bundle.preprocessing import DecodeLimits
from geotriplet_assets.config import OPTUNA_STORAGE_ENV_VAR, GeoTripletConfig
from geotriplet_assets.features.backbone import BackboneSpec
from geotriplet_assets.paths import ArtefactLayout
from geotriplet_assets.training.params import HeadParams, TrackingSettings, TrainingSettings

STUDY_FILE = "optuna/studies.db"
SQLITE_PREFIX = "sqlite:///"


def backbone_spec(config: GeoTripletConfig) -> BackboneSpec:
    return BackboneSpec(
        model_name=config.model.backbone,
        weights=config.model.backbone_weights,
        image_size=config.data.image_size,
        seed=config.train.seed,
    )


def decode_limits(config: GeoTripletConfig) -> DecodeLimits:
    return DecodeLimits(min_side=config.embedding.min_side, max_pixels=config.embedding.max_pixels)


def params_from_config(config: GeoTripletConfig) -> HeadParams:
    return HeadParams(
        lr=config.train.lr,
        weight_decay=config.train.weight_decay,
        embedding_size=config.model.embedding_size,
        hidden_size=config.model.hidden_size,
        dropout=config.model.dropout,
        margin=config.model.margin,
        num_difficulty_levels=config.data.num_difficulty_levels,
        ucb_alpha=config.data.ucb_alpha,
        batch_size=config.data.batch_size,
        warmup_epochs=config.train.warmup_epochs,
    )


def settings_from_config(config: GeoTripletConfig, data_root: Path) -> TrainingSettings:
    """Run settings of CONFIG; the W&B directory lies under DATA_ROOT."""
    return TrainingSettings(
        max_epochs=config.train.max_epochs,
        samples_per_epoch=config.train.samples_per_epoch,
        seed=config.train.seed,
        difficulty_update_freq=config.train.difficulty_update_freq,
        sampling=config.train.sampling,
        precision=config.train.precision,
        auto_batch_size=config.auto_batch_size.enabled,
        auto_batch_size_mode=config.auto_batch_size.mode,
        locate_k=config.serving.locate_k,
        locate_cluster_radius_m=config.serving.locate_cluster_radius_m,
        eval_queries=config.train.eval_queries,
        recall_radius_m=config.train.recall_radius_m,
        tracking=TrackingSettings(
            project=config.logging.project_name,
            experiment_name=config.logging.exp_name,
            offline=config.logging.offline,
            save_dir=ArtefactLayout(data_root).wandb_dir,
        ),
    )


def study_storage_url(config: GeoTripletConfig) -> str:
    """`$GEOTRIPLET_OPTUNA_STORAGE`, else optuna.storage, else a SQLite file under the data
    root. Parallel trial workers (compute.mode: slurm) need a server database such as Postgres.

    A relative SQLite path (sqlite:///relative.db) resolves against the data root,
    like every other path of the config; its folder is created.
    """
    url = (
        os.environ.get(OPTUNA_STORAGE_ENV_VAR)
        or config.optuna.storage
        or f"{SQLITE_PREFIX}{STUDY_FILE}"
    )
    if not url.startswith(SQLITE_PREFIX):
        return url
    path = config.resolve(url.removeprefix(SQLITE_PREFIX))
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"{SQLITE_PREFIX}{path}"


def study_settings(config: GeoTripletConfig, data_root: Path) -> TrainingSettings:
    """Run settings for trials: W&B project and group from the config's optuna section."""
    settings = settings_from_config(config, data_root)
    tracking = replace(
        settings.tracking, project=config.optuna.project_name, group=config.optuna.group_name
    )
    return replace(settings, tracking=tracking)

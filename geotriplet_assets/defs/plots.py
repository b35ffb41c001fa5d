"""Pictures for materialisation metadata (matplotlib, headless)."""

from __future__ import annotations

import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

_SPLIT_COLOURS = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}
_MAX_PANELS = 12
_MAX_POINTS_PER_PANEL = 20_000  # a seeded sample beyond it: the picture is the same at 80 dpi


def region_maps(points: pd.DataFrame, colour_by: str | None = None, title: str = "") -> Any:
    """One small map per DatasetID of the points' lat/lon (regions are far apart)."""
    dataset_ids = sorted(points["dataset_id"].unique())[:_MAX_PANELS]
    columns = min(4, max(1, len(dataset_ids)))
    rows = math.ceil(len(dataset_ids) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.0 * rows), squeeze=False)
    for axis in axes.flat[len(dataset_ids) :]:
        axis.set_visible(False)
    for axis, dataset_id in zip(axes.flat, dataset_ids, strict=False):
        region = points[points["dataset_id"] == dataset_id]
        count = len(region)
        if count > _MAX_POINTS_PER_PANEL:
            region = region.sample(_MAX_POINTS_PER_PANEL, random_state=0)
        if colour_by is None:
            axis.scatter(region["lon"], region["lat"], s=4, color="tab:blue")
        else:
            for label, group in region.groupby(colour_by, observed=True):
                colour = _SPLIT_COLOURS.get(str(label), "lightgrey")
                axis.scatter(group["lon"], group["lat"], s=4, color=colour, label=str(label))
            axis.legend(fontsize=6, markerscale=2)
        shown = "" if count == len(region) else f", {len(region):,} shown"
        axis.set_title(f"DatasetID {dataset_id} ({count:,}{shown})", fontsize=8)
        axis.tick_params(labelsize=6)
        axis.set_aspect(1 / max(np.cos(np.radians(region["lat"].mean())), 0.05))
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def histogram(values: np.ndarray, xlabel: str, title: str, bins: int = 50) -> Any:
    figure, axis = plt.subplots(figsize=(5, 3))
    axis.hist(values, bins=bins, color="tab:blue")
    axis.set_xlabel(xlabel)
    axis.set_ylabel("count")
    axis.set_title(title, fontsize=10)
    return figure


def training_curves(history: pd.DataFrame) -> Any:
    """Train loss and validation recall@1 per epoch, with each band's share of triplets."""
    figure, (loss_axis, bands_axis) = plt.subplots(1, 2, figsize=(9, 3))
    epochs = history["epoch"] if len(history) else []
    if len(history):
        loss_axis.plot(epochs, history["train_loss"], color="tab:red", label="train loss")
        recall_axis = loss_axis.twinx()
        recall_axis.plot(epochs, history["val/recall@1"], color="tab:blue", label="val recall@1")
        recall_axis.set_ylabel("val recall@1", color="tab:blue")
        shares = np.array(history["band_share"].tolist(), dtype=float)
        for band in range(shares.shape[1]):
            bands_axis.plot(epochs, shares[:, band], label=f"band {band}")
        bands_axis.legend(fontsize=6)
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("train loss", color="tab:red")
    loss_axis.set_title("training", fontsize=10)
    bands_axis.set_xlabel("epoch")
    bands_axis.set_ylabel("share of triplets")
    bands_axis.set_title("UCB band choices", fontsize=10)
    figure.tight_layout()
    return figure

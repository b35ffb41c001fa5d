"""Building blocks for rich materialisation metadata: preview tables and inline plots."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
from dagster._core.definitions.metadata import normalize_metadata


def _column_type(dtype: object) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    return "string"


def preview_table(frame: pd.DataFrame, rows: int = 10) -> dg.TableMetadataValue:
    """The first ROWS rows of FRAME as a Dagster table, types inferred from the dtypes."""
    head = frame.head(rows)
    columns = [
        dg.TableColumn(str(name), _column_type(dtype)) for name, dtype in head.dtypes.items()
    ]
    records = [
        dg.TableRecord({str(k): _plain(v) for k, v in row.items()})
        for row in head.to_dict(orient="records")
    ]
    return dg.MetadataValue.table(records=records, schema=dg.TableSchema(columns=columns))


def _plain(value: Any) -> str | int | float | bool | None:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def counts_table(counts: Mapping[str, int], key_name: str, value_name: str = "count"):
    frame = pd.DataFrame({key_name: list(counts), value_name: list(counts.values())})
    return preview_table(frame, rows=len(frame))


def figure_markdown(figure: Any, alt: str) -> dg.MarkdownMetadataValue:
    """A matplotlib figure embedded in markdown as a PNG data URI (shown in the Dagster UI)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{encoded})")


def file_size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


def serialized_metadata(metadata: Mapping[str, Any]) -> str:
    """METADATA as Dagster's own serialisation: how a SLURM job hands its step's metadata
    (tables, plots and paths included) back over Pipes."""
    plain = {
        key: _plain(value) if isinstance(value, np.generic) else value
        for key, value in metadata.items()
    }
    return dg.serialize_value(normalize_metadata(plain))


def deserialized_metadata(text: str) -> dict[str, dg.MetadataValue]:
    """The metadata a job sent; Dagster's deserialiser builds only its registered value types."""
    values = dg.deserialize_value(text, dict)
    if not all(isinstance(value, dg.MetadataValue) for value in values.values()):
        raise ValueError("the job's result is not a mapping of Dagster metadata values")
    return values

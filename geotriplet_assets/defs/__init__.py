"""Dagster only: the assets of each stage with their checks, the resource, partitions,
sensor, executor, and the metadata and plots shown in the UI."""

"""Partitions: one per DatasetID, the unit in which the real data arrives (a map region)."""

import dagster as dg

DATASET_PARTITIONS = dg.DynamicPartitionsDefinition(name="dataset_id")

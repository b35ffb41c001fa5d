"""Reads the records of an offline W&B run log (run-<id>.wandb), for tests.

The file is a 7-byte header (":W&B", magic, version) then 32 KiB blocks of
chunks: crc32 (4 bytes), length (2 bytes, little-endian), type (1 byte: full,
first, middle, last), payload. Payloads are serialised `Record` protobufs.
"""

from __future__ import annotations

import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2

HEADER_BYTES = 7
BLOCK_BYTES = 32 * 1024
CHUNK_HEADER_BYTES = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_wandb_records(path: Path) -> list[wandb_internal_pb2.Record]:
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run log")
    records = []
    position = HEADER_BYTES
    pending = b""
    while position + CHUNK_HEADER_BYTES <= len(data):
        left_in_block = BLOCK_BYTES - position % BLOCK_BYTES
        if left_in_block < CHUNK_HEADER_BYTES:
            position += left_in_block
            continue
        _, length, kind = struct.unpack_from("<IHB", data, position)
        payload = data[position + CHUNK_HEADER_BYTES : position + CHUNK_HEADER_BYTES + length]
        position += CHUNK_HEADER_BYTES + length
        pending = payload if kind in (FULL, FIRST) else pending + payload
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records

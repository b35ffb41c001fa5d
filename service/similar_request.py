"""Read a `POST /similar` body (JSON or multipart) into validated queries, before any lookup."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from service.schemas import RequestModels, SearchParameters, describe_errors

IMAGE_FIELD = "image"
JSON_MEDIA_TYPE = "application/json"
MULTIPART_MEDIA_TYPE = "multipart/form-data"
_MAX_FORM_FIELDS = 16
_MAX_FORM_FIELD_BYTES = 64 * 1024


@dataclass(frozen=True)
class SimilarRequest:
    """Validated queries; `image` holds the upload's bytes for a multipart request."""

    queries: list[SearchParameters]
    batch: bool
    image: bytes | None = None


def image_format(data: bytes) -> str | None:
    """'jpeg', 'png' or 'webp' from the file's signature; None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


async def read_similar_request(request: Request) -> SimilarRequest:
    """The dependency that parses and validates the body; raises HTTPException (4xx)."""
    models: RequestModels = request.app.state.request_models
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == JSON_MEDIA_TYPE:
        body = await _read_bounded_body(request, request.app.state.settings.max_json_bytes)
        # Parsing and validating a large body takes CPU time: off the event loop.
        return await run_in_threadpool(_read_json, body, models)
    if media_type == MULTIPART_MEDIA_TYPE:
        return await _read_multipart(request, models, request.app.state.settings.max_upload_bytes)
    raise HTTPException(
        415,
        f"unsupported content type {media_type or '(none)'!r}: send application/json "
        f"or multipart/form-data with a file field {IMAGE_FIELD!r}",
    )


async def _read_bounded_body(request: Request, max_bytes: int) -> bytes:
    """The body, refused with a 413 as soon as it is known to exceed MAX_BYTES."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, f"JSON body exceeds the limit of {max_bytes} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise HTTPException(413, f"JSON body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _read_json(body: bytes, models: RequestModels) -> SimilarRequest:
    try:
        document = json.loads(body)
    # ValueError: bad syntax or encoding, an integer of over 4300 digits;
    # RecursionError: nesting deeper than the parser goes.
    except (ValueError, RecursionError) as error:
        raise HTTPException(422, f"request body is not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise HTTPException(422, "request body must be a JSON object")
    batch = "queries" in document
    # strict: JSON has types, so `"k": true` or `"k": "5"` is an error, not 1 or 5
    try:
        if batch:
            queries: list[SearchParameters] = list(
                models.batch.model_validate(document, strict=True).queries
            )
        else:
            queries = [models.query.model_validate(document, strict=True)]
    except ValidationError as error:
        raise HTTPException(422, describe_errors(error.errors())) from error
    return SimilarRequest(queries=queries, batch=batch)


async def _read_multipart(
    request: Request, models: RequestModels, max_bytes: int
) -> SimilarRequest:
    form = await request.form(
        max_files=1, max_fields=_MAX_FORM_FIELDS, max_part_size=_MAX_FORM_FIELD_BYTES
    )
    try:
        fields: dict[str, Any] = {}
        upload: UploadFile | None = None
        for name, value in form.multi_items():
            if name in fields or (name == IMAGE_FIELD and upload is not None):
                raise HTTPException(422, f"form field {name!r} is given more than once")
            if name == IMAGE_FIELD:
                if not isinstance(value, UploadFile):
                    raise HTTPException(422, f"form field {IMAGE_FIELD!r} must be a file")
                upload = value
            elif isinstance(value, UploadFile):
                raise HTTPException(422, f"form field {name!r} must be a value, not a file")
            elif value != "":
                fields[name] = value
        if upload is None:
            raise HTTPException(422, f"multipart request needs a file field {IMAGE_FIELD!r}")
        try:
            parameters = models.upload.model_validate(fields)
        except ValidationError as error:
            raise HTTPException(422, describe_errors(error.errors())) from error
        data = await upload.read(max_bytes + 1)
    finally:
        await form.close()
    if len(data) > max_bytes:
        raise HTTPException(413, f"image exceeds the limit of {max_bytes} bytes")
    if not data:
        raise HTTPException(415, "the uploaded image is empty")
    if image_format(data) is None:
        raise HTTPException(415, "not a JPEG, PNG or WebP image")
    return SimilarRequest(queries=[parameters], batch=False, image=data)

# The retrieval service image: FastAPI on port 8000 over the current search bundle. No torch, no
# Dagster: service/requirements.txt plus the project installed without its dependencies.
#
#   docker build -f docker/service.Dockerfile -t geotriplet-service .
#
# Build arguments: PYTHON_IMAGE (default: the official python:3.11-slim); PIP_EXTRA_INDEX_URL and
# PIP_FIND_LINKS (pip's own settings, used while building only).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ARG PIP_EXTRA_INDEX_URL=""
ARG PIP_FIND_LINKS=""
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv \
    && pip install --quiet --upgrade pip
COPY service/requirements.txt /tmp/build/service/requirements.txt
RUN pip install --quiet -r /tmp/build/service/requirements.txt
# Loaded by nothing the service imports, about 100 MB: pyarrow's Flight and S3 libraries, its
# headers and tests (pyarrow.fs guards its S3 import); numpy's test suites; onnxruntime's
# offline tooling (transformers, tools, quantization, datasets: inference is in capi); and
# setuptools. Without them the image stays well under 700 MB with OpenCV for re-ranking (it
# measured 696 MB with only pyarrow trimmed). The import check below loads what it uses.
RUN site=$(python -c "import os, sysconfig; print(sysconfig.get_paths()['purelib'])") \
    && rm -rf "$site"/pyarrow/libarrow_flight.so* "$site"/pyarrow/libarrow_s3.so* \
        "$site"/pyarrow/_flight.*.so "$site"/pyarrow/_s3fs.*.so "$site"/pyarrow/include \
        "$site"/pyarrow/tests \
        "$site"/onnxruntime/transformers "$site"/onnxruntime/tools \
        "$site"/onnxruntime/quantization "$site"/onnxruntime/datasets \
    && find "$site"/numpy -type d -name tests -prune -exec rm -rf {} + \
    && pip uninstall --quiet -y setuptools
COPY pyproject.toml README.md /tmp/build/
COPY geotriplet_assets /tmp/build/geotriplet_assets
COPY service /tmp/build/service
RUN pip install --quiet --no-deps /tmp/build \
    && pip uninstall --quiet -y pip \
    && python -c "import service.app, cv2, onnxruntime, pyarrow.parquet, pyarrow.fs, numpy"

FROM ${PYTHON_IMAGE}
COPY --from=build /opt/venv /opt/venv
RUN useradd --system --uid 10001 --user-group --no-create-home geotriplet
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GEOTRIPLET_SERVICE_BUNDLES_DIR=/data/bundles
USER geotriplet
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
CMD ["uvicorn", "--factory", "service.app:create_app", "--host", "0.0.0.0", "--port", "8000"]

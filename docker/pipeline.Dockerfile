# The GeoTriplet pipeline image: the Dagster gRPC code server (runs execute in it, launched by
# the DefaultRunLauncher), and with another command the Dagster webserver and daemon.
#
#   docker build -f docker/pipeline.Dockerfile -t geotriplet-pipeline .
#
# Build arguments:
#   PYTHON_IMAGE        base image with Python 3.11 (default: the official python:3.11-slim)
#   TORCH_INDEX_URL     index that torch and torchvision come from; the default is PyTorch's
#                       CPU-only index (no CUDA libraries, a much smaller image); use
#                       https://pypi.org/simple for PyPI's CUDA builds on a GPU node
#   TORCH_REQUIREMENTS  what to install from it (default: "torch torchvision")
#   PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS
#                       pip's own settings, for a mirror or local wheels; used while building only
#
# Dependencies are all wheels, so there is no compiler to leave behind and a single stage keeps
# the build's disk use to one copy of the (large) torch layer.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_REQUIREMENTS="torch torchvision"
ARG PIP_EXTRA_INDEX_URL=""
ARG PIP_FIND_LINKS=""
# dagster-postgres has no release for dagster 1.13.28 (its last, 0.29.27, pins dagster 1.13.27):
# it is installed without its exact pin, and PYTHONWARNINGS below silences the version-mismatch
# warning that dagster would otherwise print in every process. Drop both once the versions meet.
ARG DAGSTER_POSTGRES_REQUIREMENT="dagster-postgres==0.29.27"

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python3 -m venv /opt/venv \
    && pip install --quiet --upgrade pip

RUN pip install --quiet --index-url "$TORCH_INDEX_URL" $TORCH_REQUIREMENTS

# the project's dependencies in their own layer, so that a code change reuses it
COPY pyproject.toml /tmp/build/pyproject.toml
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/build/pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/build/requirements.txt \
    && pip install --quiet -r /tmp/build/requirements.txt psycopg2-binary \
    && pip install --quiet --no-deps "$DAGSTER_POSTGRES_REQUIREMENT" \
    && rm -rf /tmp/build

# SLURM's client commands (sbatch, scontrol, scancel, sacct) for compute.mode: slurm; they
# authenticate through the MUNGE socket of the compose cluster's controller (docker/slurm/)
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-client \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/*

COPY pyproject.toml README.md /tmp/build/
COPY geotriplet_assets /tmp/build/geotriplet_assets
COPY service /tmp/build/service
RUN pip install --quiet --no-deps /tmp/build \
    && rm -rf /tmp/build \
    && python -c "import dagster_postgres, geotriplet_assets.definitions"

RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/geotriplet geotriplet \
    && mkdir -p /data /opt/dagster/home \
    && chown geotriplet:geotriplet /data /opt/dagster/home
COPY dagster.yaml workspace.yaml /opt/dagster/
COPY docker/slurm/slurm.conf /etc/slurm/slurm.conf
COPY docker/slurm/demo.yaml /opt/geotriplet/slurm-demo.yaml
COPY docker/pipeline-entrypoint.sh /usr/local/bin/geotriplet-entrypoint
COPY docker/pipeline-healthcheck.sh /usr/local/bin/geotriplet-healthcheck
RUN ln -s /opt/dagster/dagster.yaml /opt/dagster/home/dagster.yaml

ENV DAGSTER_HOME=/opt/dagster/home \
    GEOTRIPLET_DATA_ROOT=/data \
    HF_HUB_OFFLINE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    PYTHONWARNINGS="ignore:Found version mismatch between:UserWarning"
USER geotriplet
WORKDIR /home/geotriplet
VOLUME /data
EXPOSE 3000 4000
HEALTHCHECK --interval=15s --timeout=20s --start-period=300s --retries=5 \
    CMD ["geotriplet-healthcheck"]
ENTRYPOINT ["geotriplet-entrypoint"]
CMD ["code-server"]

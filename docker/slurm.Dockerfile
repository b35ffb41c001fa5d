# The compose stack's SLURM cluster (docker compose --profile slurm): the pipeline image, so that
# jobs run GeoTriplet's own environment, plus Debian's SLURM daemons, MUNGE and MariaDB for the
# accounting that sacct reads. One image for every role of docker/slurm-entrypoint.sh:
#   controller   munged, MariaDB, slurmdbd and slurmctld (a head node)
#   node         munged and slurmd (a compute node)
#
#   docker build -f docker/slurm.Dockerfile --build-arg PIPELINE_IMAGE=geotriplet-pipeline \
#     -t geotriplet-slurm .
ARG PIPELINE_IMAGE=geotriplet-pipeline:latest
FROM ${PIPELINE_IMAGE}
USER root
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        slurmctld slurmd slurmdbd munge mariadb-server procps \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/*
COPY docker/slurm-entrypoint.sh /usr/local/bin/geotriplet-slurm-entrypoint
ENTRYPOINT ["geotriplet-slurm-entrypoint"]
CMD ["node"]
HEALTHCHECK --interval=5s --timeout=10s --start-period=120s --retries=6 \
    CMD ["geotriplet-slurm-entrypoint", "health"]

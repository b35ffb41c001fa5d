# Stand-in for the official python:3.11-slim, built from the local Debian rootfs
# (see ../build-local-base-images.sh). Debian bookworm's Python is 3.11.
ARG DEBIAN_IMAGE=geotriplet-local/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/* \
    && ln -s /usr/bin/python3 /usr/local/bin/python
CMD ["python3"]

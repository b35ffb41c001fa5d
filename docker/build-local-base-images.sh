#!/usr/bin/env bash
# Build the base images of the GeoTriplet images locally, for machines that reach Debian's
# package mirror but no container registry. It makes:
#   geotriplet-local/debian:bookworm      a minimal Debian rootfs made by debootstrap
#   geotriplet-local/python:3.11-slim     Debian's Python 3.11 with venv (stands in for python:3.11-slim)
#   geotriplet-local/postgres:15          Debian's PostgreSQL 15 behind an entrypoint that honours
#                                         the official image's POSTGRES_USER/PASSWORD/DB (stands in
#                                         for postgres:16)
# Then build and run the stack with them:
#   PYTHON_IMAGE=geotriplet-local/python:3.11-slim POSTGRES_IMAGE=geotriplet-local/postgres:15 \
#     docker compose up -d --build
#
# Needs root, debootstrap and a running Docker engine. The CA bundle named by CA_BUNDLE (default:
# this machine's) is copied into the Debian rootfs, so that pip and apt inside containers trust
# the same authorities as this machine; the Dockerfiles themselves carry nothing of it.
# Existing images are kept unless --force is given.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
suite="${DEBIAN_SUITE:-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ca_bundle="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
debian_image="${LOCAL_DEBIAN_IMAGE:-geotriplet-local/debian:${suite}}"
python_image="${LOCAL_PYTHON_IMAGE:-geotriplet-local/python:3.11-slim}"
postgres_image="${LOCAL_POSTGRES_IMAGE:-geotriplet-local/postgres:15}"
force=0
[[ "${1:-}" == "--force" ]] && force=1

have_image() { [[ $force == 0 ]] && docker image inspect "$1" >/dev/null 2>&1; }

if ! have_image "$debian_image"; then
    command -v debootstrap >/dev/null || { echo "debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
    [[ -r "$ca_bundle" ]] || { echo "CA bundle $ca_bundle is not readable" >&2; exit 1; }
    rootfs="$(mktemp -d /var/tmp/geotriplet-rootfs.XXXXXX)"
    trap 'rm -rf "$rootfs"' EXIT
    echo "debootstrap $suite from $mirror into $rootfs"
    debootstrap --variant=minbase --include=ca-certificates "$suite" "$rootfs" "$mirror" >/dev/null
    # the machine's bundle, also where update-ca-certificates would pick it up again
    install -m 0644 "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
    install -m 0644 "$ca_bundle" "$rootfs/usr/local/share/ca-certificates/build-host-bundle.crt"
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
        > "$rootfs/etc/apt/apt.conf.d/90geotriplet-no-recommends"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    tar -C "$rootfs" --numeric-owner -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        --change 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' \
        --change 'CMD ["bash"]' \
        - "$debian_image" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
    echo "built $debian_image"
fi

if ! have_image "$python_image"; then
    docker build --quiet --build-arg DEBIAN_IMAGE="$debian_image" -t "$python_image" \
        -f "$here/local-base/python.Dockerfile" "$here/local-base" >/dev/null
    echo "built $python_image"
fi

if ! have_image "$postgres_image"; then
    docker build --quiet --build-arg DEBIAN_IMAGE="$debian_image" -t "$postgres_image" \
        -f "$here/local-base/postgres.Dockerfile" "$here/local-base" >/dev/null
    echo "built $postgres_image"
fi

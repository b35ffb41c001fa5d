# The reverse proxy in front of the retrieval service: Debian's nginx with the timeouts,
# connection caps and body buffering of docker/proxy/nginx.conf.template.
#
#   docker build -f docker/proxy.Dockerfile -t geotriplet-proxy .
#
# Build argument: PYTHON_IMAGE, the Debian-based image the others use (its Python runs the
# healthcheck; default python:3.11-slim).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE}
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        nginx-light gettext-base \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10002 --user-group --no-create-home geotriplet-proxy
COPY docker/proxy/nginx.conf.template /etc/geotriplet/nginx.conf.template
COPY docker/proxy/proxy-entrypoint.sh /usr/local/bin/proxy-entrypoint.sh
USER geotriplet-proxy
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]
ENTRYPOINT ["/usr/local/bin/proxy-entrypoint.sh"]

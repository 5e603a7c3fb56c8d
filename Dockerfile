# Runtime image: the service and its bundled model, no training dependencies.
#
# Build it with scripts/build-image.sh (docker or podman when present, else buildah on a Debian base
# made by debootstrap). The script prepares the build context first: the project's wheel and every
# runtime dependency's wheel (wheels/) and the model directory (models/), so the build itself needs
# no network (it runs with --network none) and leaves no build/ or *.egg-info behind.
#
# Any base with Python 3.11 and its venv module works: python:3.11-slim, or the debootstrap one.
ARG BASE=docker.io/library/python:3.11-slim
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY wheels /tmp/wheels
# A virtual environment keeps pip off the base's system Python (Debian marks it externally managed);
# pip and setuptools leave it once the wheels are in (nothing installs at run time).
RUN python3 -m venv /opt/alignment \
 && /opt/alignment/bin/pip install --no-index --find-links /tmp/wheels -c /tmp/wheels/constraints.txt \
        --no-cache-dir --disable-pip-version-check prosthetic-alignment \
 && /opt/alignment/bin/pip uninstall --yes --quiet pip setuptools \
 && rm -rf /tmp/wheels \
 && (useradd --uid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin align \
     || echo "align:x:10001:10001::/nonexistent:/usr/sbin/nologin" >> /etc/passwd)
COPY models /app/models
WORKDIR /app
USER 10001:10001

# Inside a container the pod network is not loopback: serve TLS by mounting a certificate and key
# (ALIGN_TLS_CERT_FILE / ALIGN_TLS_KEY_FILE), or terminate TLS in a mesh and keep this explicit
# opt-in. Worker i serves its metrics on ALIGN_METRICS_PORT + i: the range below covers 8 workers.
ENV PATH=/opt/alignment/bin:$PATH \
    ALIGN_ADDRESS=0.0.0.0:50051 \
    ALIGN_MODELS_DIR=/app/models \
    ALIGN_WORKERS=2 \
    ALIGN_METRICS_PORT=9464 \
    ALIGN_METRICS_ADDRESS=0.0.0.0 \
    ALIGN_ALLOW_INSECURE_REMOTE=true \
    ALIGN_LOG_FORMAT=json
EXPOSE 50051 9464 9465 9466 9467 9468 9469 9470 9471

# The project's client: exit 0 only when health is SERVING (plaintext; with TLS on the serving port
# override it with --ca ...). Kubernetes ignores HEALTHCHECK: use its native gRPC probes.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-m", "service.client", "--address", "127.0.0.1:50051", "--timeout", "3", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "service"]

# Runtime image: the service and its bundled model, no training dependencies.
# Build: docker build -t prosthetic-alignment .   Run: docker run -p 50051:50051 prosthetic-alignment
FROM python:3.11-slim AS runtime
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml constraints.txt README.md ./
COPY service ./service
RUN pip install --no-cache-dir -c constraints.txt . && useradd --uid 10001 --no-create-home align
COPY models ./models
USER 10001
EXPOSE 50051 9090
# Inside a container the pod network is not loopback: serve TLS by mounting a certificate and key
# (ALIGN_TLS_CERT_FILE / ALIGN_TLS_KEY_FILE), or terminate TLS in a mesh and keep this explicit opt-in.
ENV ALIGN_ADDRESS=0.0.0.0:50051 \
    ALIGN_MODELS_DIR=/app/models \
    ALIGN_METRICS_PORT=9090 \
    ALIGN_METRICS_ADDRESS=0.0.0.0 \
    ALIGN_ALLOW_INSECURE_REMOTE=true
# Kubernetes: use a native gRPC probe (grpc: {port: 50051}); the health service needs no token.
ENTRYPOINT ["python", "-m", "service"]

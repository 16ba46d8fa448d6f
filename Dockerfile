# syntax=docker/dockerfile:1
# The edml scorer image: `edml serve`, the Bytewax scoring dataflow.
#
#   docker build -t edml:$(git rev-parse --short HEAD) .
#
# Base image pinned to an exact Python patch release and Debian release. CI should also pin the
# digest it resolved, e.g.
#   --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest from `docker buildx imagetools inspect`>
# (not hard-coded here: it was written where no registry could be queried to read the real value).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- builder: the edml wheel and a virtualenv with the pinned dependencies --------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/edml
WORKDIR /src

# Dependencies first, from pyproject.toml with the versions of requirements.lock: this layer is
# rebuilt only when those two files change, not on every source edit.
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.runtime.txt \
    && /opt/edml/bin/pip install -c requirements.lock -r requirements.runtime.txt

# The package itself, as a wheel (the same artefact the CI package stage builds with `pip wheel`).
COPY . .
RUN /opt/edml/bin/pip wheel --no-deps -w /wheels . \
    && /opt/edml/bin/pip install --no-deps /wheels/edml-*.whl \
    && /opt/edml/bin/edml --help > /dev/null

# --- runtime: the virtualenv on a clean base, as an unprivileged user ------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="edml scorer" \
      org.opencontainers.image.description="Bytewax scoring dataflow: trips + model topic -> trip-duration predictions" \
      org.opencontainers.image.licenses="Apache-2.0"

# uid/gid 10001: the Kubernetes StatefulSet runs as (and sets fsGroup to) the same ids.
RUN groupadd --system --gid 10001 edml \
    && useradd --system --uid 10001 --gid edml --home-dir /var/lib/edml --no-create-home \
       --shell /usr/sbin/nologin edml \
    && mkdir -p /var/lib/edml \
    && chown edml:edml /var/lib/edml

COPY --from=builder /opt/edml /opt/edml

ENV PATH=/opt/edml/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    EDML_STATE_DIR=/var/lib/edml \
    EDML_METRICS_PORT=9100

USER 10001:10001
WORKDIR /var/lib/edml

# 9100: Prometheus /metrics and /healthz; 2101: Bytewax cluster traffic between processes.
EXPOSE 9100 2101

ENTRYPOINT ["edml"]
CMD ["serve"]

# conform as a container job. Build: podman/docker build -t conform .
# CI builds it from a locally made Debian base: --build-arg BASE_IMAGE=localhost/bookworm-base
# (scripts/container-test). One post per container:
#   docker run -i conform run - --dest s3://bucket/out < post.json
#   docker run -e CONFORM_JOB_URI=s3://bucket/jobs/post.json -e CONFORM_DEST=s3://bucket/out conform
# Exit codes: 0 done, 1 failed for good (don't retry), 75 temporary failure (retry), 2 invalid job.
ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1
# The official image has python3 with pip; a plain Debian base needs python3-venv.
RUN if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
      && rm -rf /var/lib/apt/lists/*; fi
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY presets ./presets
RUN pip install --no-cache-dir .

FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg fonts-dejavu-core \
    && if ! command -v python3 >/dev/null; then apt-get install -y --no-install-recommends python3; fi \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/venv /opt/venv
COPY presets /app/presets
RUN useradd --create-home --uid 10001 conform && mkdir -p /work && chown conform /work
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CONFORM_PRESETS_DIR=/app/presets \
    CONFORM_WORKDIR=/work
VOLUME ["/work"]
WORKDIR /work
USER conform
ENTRYPOINT ["conform"]
# `run` with no JOB reads $CONFORM_JOB_URI; pass `run -` (with -i) for a job on stdin, or any
# other command (batch, worker) instead.
CMD ["run"]

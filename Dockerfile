# Two images from one file (docker compose builds both):
#   docker build --target bot    -t mpox-screen-bot .     # Telegram side: no TensorFlow
#   docker build --target worker -t mpox-screen-worker .  # screens photos: TensorFlow, LiteRT, model
# Dependencies come from requirements/*.txt (exact versions, installed with --require-hashes).

# python:3.11-slim pinned by digest: a rebuild gets the same base, not whatever the tag points to
# today. To move it: docker buildx imagetools inspect python:3.11-slim (first "Digest:" line).
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9534e5a8e315485d4061ed659af0fd78a284c015f9b73661b41d6bab25604534

# --- the project as a wheel, from a fresh copy of its packages -------------------------------------
# No placeholder packages and no earlier build/ folder here (.dockerignore keeps a local one out):
# setuptools once installed stale placeholders from build/ instead of the real files (issue 14).
FROM ${PYTHON_IMAGE} AS project
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements/build.txt /tmp/build.txt
RUN python -m venv /opt/build && /opt/build/bin/pip install --require-hashes -r /tmp/build.txt
WORKDIR /src
COPY pyproject.toml README.md ./
COPY model model
COPY worker worker
COPY bot bot
COPY training training
COPY docker/verify_install.py /tmp/verify_install.py
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
    && python /tmp/verify_install.py manifest /src > /wheels/source-manifest.json

# --- one virtual environment per image: locked dependencies first (cached), then the project ------
FROM ${PYTHON_IMAGE} AS bot-venv
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements/bot.txt /tmp/requirements.txt
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --require-hashes -r /tmp/requirements.txt
COPY --from=project /wheels /tmp/wheels
RUN /opt/venv/bin/pip install --no-deps --no-index /tmp/wheels/*.whl

FROM ${PYTHON_IMAGE} AS worker-venv
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements/worker.txt /tmp/requirements.txt
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --require-hashes -r /tmp/requirements.txt
COPY --from=project /wheels /tmp/wheels
RUN /opt/venv/bin/pip install --no-deps --no-index /tmp/wheels/*.whl

# --- what both images share: a user that owns nothing but /data ------------------------------------
# Code, venv and model stay root's: a compromised process cannot rewrite them (compose also mounts
# the root file system read-only). /data is the bot's volume; /tmp is a tmpfs in compose.
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="mpox-screen" \
      org.opencontainers.image.description="mpox screening service on Telegram (a screen, not a diagnosis)"
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app \
    && install -d -o app -g app -m 0700 /data
WORKDIR /app
COPY docker/healthcheck.py docker/verify_install.py /app/
COPY --from=project /wheels/source-manifest.json /app/source-manifest.json
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HEALTH_FILE=/tmp/health \
    MPLCONFIGDIR=/tmp/matplotlib \
    KERAS_HOME=/tmp/keras \
    TF_CPP_MIN_LOG_LEVEL=2
USER app

FROM runtime AS bot
COPY --from=bot-venv /opt/venv /opt/venv
ENV DATABASE_PATH=/data/bot.sqlite3
# Fails the build when the packages are not the checkout's, or the bot needs a missing dependency.
RUN python -I /app/verify_install.py check /app/source-manifest.json \
    && python -c "import bot.__main__" && rm -rf /tmp/matplotlib /tmp/keras
# The bot touches HEALTH_FILE every 5 s while it polls (or serves its webhook) and Redis answers.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-I", "-S", "/app/healthcheck.py", "15"]
CMD ["python", "-m", "bot"]

FROM runtime AS worker
COPY --from=worker-venv /opt/venv /opt/venv
COPY models/demo /app/models/demo
ENV MODEL_BUNDLE=/app/models/demo
RUN python -I /app/verify_install.py check /app/source-manifest.json \
    && python -c "import worker.__main__" && rm -rf /tmp/matplotlib /tmp/keras
# A worker touches HEALTH_FILE at least every 5 s while its model is loaded and its heartbeat
# reaches Redis; loading TensorFlow and the model takes ~10 s on an idle core, 40 s on a busy one.
HEALTHCHECK --interval=10s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-I", "-S", "/app/healthcheck.py", "15"]
CMD ["python", "-m", "worker"]

# syntax=docker/dockerfile:1
# A patch-pinned base: a rebuild months from now gets the same Python.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
# `--build-arg EXTRAS=sandbox` adds what the offline sandbox draws with (numpy); a bot that
# talks to useapi.net does not need it. PyAV (with its FFmpeg) is always in: it checks the
# videos users send and converts voice notes for lip-sync.
ARG EXTRAS=""
# Dependencies first, from pyproject.toml alone: this layer is rebuilt when they change,
# not on every source or README edit.
COPY pyproject.toml ./
RUN python -c "import sys, tomllib; project = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
extras = [name for name in sys.argv[1].split(',') if name]; \
print('\n'.join(project['dependencies'] + [d for name in extras for d in project['optional-dependencies'][name]]))" \
        "$EXTRAS" > requirements.txt \
    && pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.txt
COPY README.md ./
COPY bot ./bot
COPY adapters ./adapters
COPY storage ./storage
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    BOT_DATABASE=/data/bot.sqlite3 \
    CONSOLE_OUTPUT_DIR=/data/videos \
    BOT_HTTP_PORT=8080
RUN useradd --create-home --uid 10001 --user-group bot && mkdir /data && chown 10001:10001 /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
# Numeric, so the runtime can check it is not root without reading /etc/passwd.
USER 10001:10001
WORKDIR /home/bot
VOLUME ["/data"]
EXPOSE 8080
# Asks the bot itself, which reads BOT_HTTP_PORT like the server does.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s CMD ["pixverse-bot", "healthcheck"]
# SIGTERM stops the loops and closes the database cleanly; running jobs resume on the next start.
STOPSIGNAL SIGTERM
ENTRYPOINT ["pixverse-bot"]
CMD ["run"]

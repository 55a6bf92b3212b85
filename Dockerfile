# swe-realtime gateway image: slim, non-root, with a health check.
# Build: docker build -t swe-realtime .   Run: docker run -e JWT_SECRET=... -p 8000:8000 swe-realtime
FROM python:3.11-slim AS build
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY server ./server
# The generated contracts ship inside the package (served at /docs, /asyncapi.yaml, /openapi.json).
COPY contracts ./contracts
# The locked dependencies, then the gateway itself, into a virtual environment to copy.
RUN uv venv /opt/venv && VIRTUAL_ENV=/opt/venv uv sync --frozen --no-dev --extra gateway --active --no-editable

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app gateway
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    HOST=0.0.0.0 \
    PORT=8000 \
    PYTHONUNBUFFERED=1
USER gateway
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/health', timeout=2)"
# SIGTERM drains: clients are told to reconnect elsewhere, then the process exits (< 10 s).
STOPSIGNAL SIGTERM
CMD ["swe-realtime", "serve"]

# swe-realtime recipes. Each one installs what it needs (uv for Python, npm for node tests).

set shell := ["bash", "-euo", "pipefail", "-c"]

# Run the gateway in dev mode: random secret unless JWT_SECRET is set, demo tokens printed.
serve *args:
    uv run --frozen swe-realtime serve --dev {{ args }}

# Install everything the tests need, check lint and types, run every test.
test *args: lint node
    uv run --frozen pytest {{ args }}

# Formatting, lint and strict typing.
lint: sync
    uv run --frozen ruff format --check .
    uv run --frozen ruff check .
    uv run --frozen mypy

# Regenerate contracts/ from the event models (--check: fail if they are out of date).
codegen *args: sync
    uv run --frozen python -m codegen {{ args }}

# Throughput and latency benchmarks against a bare python-socketio baseline (--full: longer).
bench *args: sync
    uv run --frozen python -m bench {{ args }}

# Python environment from uv.lock.
sync:
    uv sync --frozen

# socket.io-client for the JavaScript tests, from tests/node/package-lock.json.
node:
    npm ci --prefix tests/node --no-audit --no-fund --loglevel=error

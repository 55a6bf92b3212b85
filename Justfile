# swe-realtime recipes. Each one installs what it needs (uv for Python, npm for node tests).

set shell := ["bash", "-euo", "pipefail", "-c"]

# Run the gateway in dev mode: random secret unless JWT_SECRET is set, demo tokens printed.
serve *args:
    uv run --frozen swe-realtime serve --dev {{ args }}

# The loop while editing, in seconds: formatting, lint, strict types (mypy's cache makes a
# second run incremental) and the unit tests, those that start no process, no server and no
# socket (tests/conftest.py marks them).
check: lint
    uv run --frozen pytest -q -p no:cacheprovider -m unit

# Install everything the tests need, check lint, types and generated files, run every test,
# TEST_WORKERS (default 3) xdist workers at once: most tests wait on sockets, processes and
# timers, so three on two cores beat two (measured: 5 min with three on a near-idle machine,
# 7.5 with two at a load of 4; four were no faster than three). A module's tests stay in one worker
# (--dist loadfile): test_consumers_typescript's session fixture installs into, then removes
# from, one shared node_modules, and module fixtures (a wheel, two venvs) are made once.
# (`--dist loadgroup` would say so per module, but pytest 9.2's node ids undo its groups:
# pytest-xdist issue 1386.) Arguments go to pytest as given: `just test -m "not browser"`,
# `just test tests/test_cluster.py -n 0` (no xdist).
[positional-arguments]
test *args: lint node
    uv run --frozen python -m codegen --check
    uv run --frozen pytest -n "${TEST_WORKERS:-3}" --dist loadfile "$@"

# The fault, timing and cluster tests with two processes burning a core each beside them (CI
# runs it after `just test`): under load a test may take longer, never fail. The burners
# end with the recipe, whatever its outcome.
[positional-arguments]
test-under-load *args: node
    #!/usr/bin/env bash
    set -euo pipefail
    burners=()
    trap 'kill "${burners[@]}" 2>/dev/null || true' EXIT
    for _ in 1 2; do
        python3 -c 'while True: pass' &
        burners+=($!)
    done
    uv run --frozen pytest -n "${TEST_WORKERS:-3}" --dist loadfile \
        tests/test_cluster.py tests/test_cluster_idle.py tests/test_cluster_presence.py \
        tests/test_cluster_promises.py tests/test_cluster_soak.py tests/test_redis_faults.py \
        tests/test_scale_out.py tests/test_budget.py tests/test_abuse.py tests/test_soak.py \
        tests/test_resilience.py "$@"

# The soaks for longer than `just test` gives them: `just soak --minutes 30` the cluster soak
# (tests/test_cluster_soak.py: three gateways on a private Redis, members coming and going,
# lulls; 20 s in `just test`); `just soak hostile --minutes 30` every hostile client at once
# against one gateway (tests/test_soak.py: 8 s in `just test`; a warm-up half as long first).
[positional-arguments]
soak *args: sync
    #!/usr/bin/env bash
    set -euo pipefail
    minutes=1
    which=cluster
    while (( $# )); do
        case "$1" in
            --minutes) minutes="${2:-}"; shift $(( $# < 2 ? 1 : 2 )) ;;
            cluster|hostile) which="$1"; shift ;;
            *) echo "usage: just soak [cluster|hostile] [--minutes N]" >&2; exit 2 ;;
        esac
    done
    if ! [[ "$minutes" =~ ^[1-9][0-9]*$ ]]; then
        echo "just soak: --minutes takes a whole number of minutes, at least 1 (got '$minutes')" >&2
        exit 2
    fi
    if [[ "$which" == hostile ]]; then
        SOAK_SECONDS=$(( minutes * 60 )) uv run --frozen pytest tests/test_soak.py
    else
        CLUSTER_SOAK_SECONDS=$(( minutes * 60 )) uv run --frozen pytest tests/test_cluster_soak.py
    fi

# The tests that touch patched library internals (server/protocol/) and Redis, against the
# oldest versions pyproject.toml allows, in .venv-lowest (CI runs it after `just test`). The
# test tools keep their locked versions; an old python-engineio client's deprecated aiohttp
# call is not the gateway's concern. The three fault tests once left out here (a crowd
# killed mid-stream, a cluster master killed, presence on a Redis Cluster) had fixed
# deadlines a busy machine overran; since those were lengthened they pass at the floors,
# in parallel and beside two CPU-burning processes too.
test-lowest: node
    uv venv -q --allow-existing .venv-lowest
    uv export -q --frozen --only-group dev --no-emit-project --no-hashes -o .venv-lowest/dev.txt
    uv pip compile -q --upgrade pyproject.toml --extra gateway --resolution lowest-direct -o .venv-lowest/lowest.txt
    uv pip install -q --python .venv-lowest -r .venv-lowest/dev.txt
    uv pip install -q --python .venv-lowest -r .venv-lowest/lowest.txt
    uv pip install -q --python .venv-lowest --no-deps -e .
    .venv-lowest/bin/python -m pytest -p no:cacheprovider -n "${TEST_WORKERS:-3}" --dist loadfile \
        -W "ignore:parameter 'timeout' of type 'float' is deprecated:DeprecationWarning" \
        tests/test_compat.py tests/test_memory.py tests/test_slim.py tests/test_resilience.py \
        tests/test_abuse.py tests/test_connect.py tests/test_recovery.py tests/test_cluster.py \
        tests/test_scale_out.py tests/test_cluster_presence.py tests/test_sessions.py \
        tests/test_frames.py tests/test_budget.py tests/test_tokens.py tests/test_writer.py tests/test_admin.py \
        tests/test_pubsub.py tests/test_redis_faults.py tests/test_room_message.py \
        tests/test_seams.py tests/test_delivery.py

# Formatting, lint and strict typing.
lint: sync
    uv run --frozen ruff format --check .
    uv run --frozen ruff check .
    uv run --frozen mypy

# Regenerate contracts/ from the event models (--check: fail with a diff if they are stale).
codegen *args: sync
    uv run --frozen python -m codegen {{ args }}

# Report contract changes against a git ref (default: main); fails on a breaking one.
compat ref="main": sync
    uv run --frozen python -m codegen --breaking-against {{ ref }}

# Fan-out, targeted, latency (and with --full, 10,000-connection capacity) benchmarks beside
# a bare python-socketio server and Node socket.io; writes bench/results/. `just bench
# --curves` instead: latency against offered load and RSS against connections, gateway and
# Node, plotted (about 7 minutes; `--curves --quick`: a one-minute smoke run). `just bench
# --cluster [--quick]`: the cluster path, two instances on Redis, beside Node's Redis adapters.
bench *args: sync
    npm ci --prefix bench/node --no-audit --no-fund --loglevel=error
    uv run --frozen --group bench python -m bench {{ args }}

# Copy socket.io-client's browser bundle (the npm package the tests pin) for the inspector page.
vendor: node
    cp tests/node/node_modules/socket.io-client/dist/socket.io.min.js server/inspector/vendor/

# Scaling out: the cost of rooms an instance does not serve, publish throughput on one Redis
# and on a three-master Redis Cluster; writes bench/results/scale_out.{md,json}.
bench-scale-out: sync
    uv run --frozen python -m bench.scale_out

# Python environment from uv.lock.
sync:
    uv sync --frozen

# Test tools: socket.io-client, typescript, @asyncapi/parser (npm, tests/node); the consumer
# matrices' tools (tests/consumers/: tsc, vite, the oldest socket.io-client; @asyncapi/cli,
# Modelina, openapi-typescript, ajv); chromium, nginx (Debian).
# `npm ci` only where node_modules was not installed from the present lock (and package.json,
# and node version): a stamp of their hash is kept inside node_modules, which `npm ci` deletes.
node:
    #!/usr/bin/env bash
    set -euo pipefail
    for project in tests/node tests/consumers/typescript tests/consumers/contracts; do
        stamp="$project/node_modules/.installed-from"
        wanted=$(cat "$project/package.json" "$project/package-lock.json" <(node --version) | sha256sum)
        if [[ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]]; then
            npm ci --prefix "$project" --no-audit --no-fund --loglevel=error
            echo "$wanted" > "$stamp"
        fi
    done
    command -v chromium >/dev/null && test -x /usr/sbin/nginx || \
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium nginx)

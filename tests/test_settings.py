"""Start-up: every configuration mistake stops the gateway with one clear line."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import jwt
import pytest
import socketio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sanic import Sanic

from swe_realtime import cli
from swe_realtime.app import create_app
from swe_realtime.errors import SettingsError
from swe_realtime.settings import DEFAULT_TIMINGS, Settings, Timings
from tests.support import ADMIN, CLI, SECRET, Client, InProcessAPI, ServerProcess, make_token


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def forge_hs256(claims: dict[str, Any], key: bytes) -> str:
    """An HS256 token signed by hand (PyJWT rightly refuses to use a PEM as an HMAC secret)."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(claims).encode())
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


def clean_environ() -> dict[str, str]:
    """This process's environment without the gateway's variables a developer may have set."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "CORS_", "MAX_", "PORT"))}


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``swe-realtime`` command, in a process of its own."""
    return subprocess.run(
        [str(CLI), *args], env={**clean_environ(), **env}, capture_output=True, text=True, timeout=30
    )


def cli_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str], *args: str
) -> tuple[int, str, str]:
    """``cli.main`` in this process with ``env`` as its whole environment: (exit status,
    stdout, stderr). For what the command decides (a refusal, a token); a process start costs
    a second and a half of imports each, and a few tests with ``run_cli`` show the installed
    command does the same."""
    monkeypatch.setattr(os, "environ", {**clean_environ(), **env})
    try:
        status = cli.main(args)
    except SystemExit as stopped:  # argparse refusing an argument
        status = stopped.code if isinstance(stopped.code, int) else 2
    out, err = capsys.readouterr()
    return status, out, err


REFUSALS = [
    ({}, "no JWT key: set JWT_SECRET or JWT_PUBLIC_KEY (or run with --dev)"),
    ({"JWT_SECRET": SECRET, "JWT_PUBLIC_KEY": pem(RSA_KEY)}, "set JWT_SECRET or JWT_PUBLIC_KEY, not both"),
    ({"JWT_SECRET": "too-short"}, "JWT_SECRET is 9 bytes; HMAC secrets need at least 32"),
    (
        {"JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----"},
        "JWT_PUBLIC_KEY is not a PEM",
    ),
    (
        {"JWT_SECRET": SECRET, "JWT_ALGORITHMS": "HS257"},
        "JWT_ALGORITHMS: 'HS257' cannot be used with JWT_SECRET",
    ),
    ({"JWT_SECRET": SECRET, "JWT_ALGORITHMS": "none"}, "JWT_ALGORITHMS: 'none' cannot be used"),
    (
        {"JWT_SECRET": SECRET, "JWT_ALGORITHMS": "RS256"},
        "JWT_ALGORITHMS: 'RS256' cannot be used with JWT_SECRET",
    ),
    (
        {"JWT_PUBLIC_KEY": pem(RSA_KEY), "JWT_ALGORITHMS": "HS256"},
        "'HS256' cannot be used with the JWT_PUBLIC_KEY",
    ),
    (
        {"JWT_PUBLIC_KEY": pem(EC_KEY), "JWT_ALGORITHMS": "RS256"},
        "'RS256' cannot be used with the JWT_PUBLIC_KEY",
    ),
    ({"JWT_SECRET": SECRET, "MAX_CONNECTIONS": "lots"}, "MAX_CONNECTIONS must be an integer, got 'lots'"),
    ({"JWT_SECRET": SECRET, "MAX_PAYLOAD_BYTES": "0"}, "MAX_PAYLOAD_BYTES must be at least 1024, got 0"),
    ({"JWT_SECRET": SECRET, "METRICS_TOKEN": "a"}, "METRICS_TOKEN is 1 bytes; it needs at least 32"),
    ({"JWT_SECRET": SECRET, "JWT_LEEWAY": "-1"}, "JWT_LEEWAY must be at least 0"),
    ({"JWT_SECRET": SECRET, "CONNECT_TIMEOUT": "0"}, "CONNECT_TIMEOUT must be at least 1"),
    ({"JWT_SECRET": SECRET, "MAX_QUEUED_BYTES": "100"}, "MAX_QUEUED_BYTES must be at least 65536"),
    ({"JWT_SECRET": SECRET, "AUTH_FAILURES_PER_MINUTE": "0"}, "AUTH_FAILURES_PER_MINUTE must be at least 1"),
    (
        {"JWT_SECRET": SECRET, "CORS_ORIGINS": "example.com"},
        "CORS_ORIGINS: 'example.com' is not '*' or an http(s)",
    ),
    ({"JWT_SECRET": SECRET, "PING_TIMEOUT": "-1"}, "PING_TIMEOUT must be at least 0.1 and at most 3600"),
]


def assert_refused(status: int, stderr: str, message: str) -> None:
    """Exit status 2 and one line on stderr, naming the problem."""
    assert status == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("swe-realtime: configuration error: ")
    assert message in lines[0]


@pytest.mark.parametrize(("env", "message"), REFUSALS, ids=[r[1][:40] for r in REFUSALS])
def test_bad_settings_refuse_to_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str], message: str
) -> None:
    status, _, err = cli_in_process(monkeypatch, capsys, env, "serve", "--port", "1")
    assert_refused(status, err, message)


@pytest.mark.parametrize(("env", "message"), [REFUSALS[0], REFUSALS[-1]], ids=["no key", "PING_TIMEOUT"])
def test_the_installed_command_refuses_to_start(env: dict[str, str], message: str) -> None:
    """The process itself: its exit status and its one line, as a crash loop's log shows them."""
    result = run_cli(env, "serve", "--port", "1")
    assert_refused(result.returncode, result.stderr, message)


TIMINGS = {
    "REDIS_HEALTH_CHECK_INTERVAL": "redis_health_check",
    "ROOM_SWEEP_INTERVAL": "room_sweep",
    "HEARTBEAT_INTERVAL": "heartbeat",
    "PRESENCE_TICK": "presence_tick",
    "PRESENCE_GRACE": "presence_grace",
    "PING_INTERVAL": "ping_interval",
    "PING_TIMEOUT": "ping_timeout",
    "TIMELINE_STEP": "timeline_step",
}
"""Each interval's variable, and its field in ``Settings.timings``."""


def timings_from(env: dict[str, str]) -> Timings:
    return Settings.from_env({"JWT_SECRET": SECRET, **env}).timings


def test_intervals_default_to_the_documented_values() -> None:
    assert timings_from({}) == Timings(
        redis_health_check=5.0,
        room_sweep=1.0,
        heartbeat=2.0,
        presence_tick=3.0,
        presence_grace=6.0,
        ping_interval=25.0,
        ping_timeout=20.0,
        timeline_step=2.0,
    )


@pytest.mark.parametrize(("variable", "field"), TIMINGS.items())
@pytest.mark.parametrize(("raw", "seconds"), [("0.2", 0.2), (" 7 ", 7.0), ("1e1", 10.0), ("60.5", 60.5)])
def test_an_interval_takes_fractional_seconds(variable: str, field: str, raw: str, seconds: float) -> None:
    # The shortest heartbeat and the longest grace, so that the one set stays between them.
    env = {"HEARTBEAT_INTERVAL": "0.1", "PRESENCE_GRACE": "3600", variable: raw}
    assert getattr(timings_from(env), field) == seconds
    assert timings_from({variable: ""}) == DEFAULT_TIMINGS  # set but empty: the default


@pytest.mark.parametrize("variable", TIMINGS)
@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("soon", "must be a number of seconds, got 'soon'"),
        ("25s", "must be a number of seconds, got '25s'"),
        ("0", "must be at least 0.1 and at most 3600 seconds, got 0"),
        ("-2", "must be at least 0.1 and at most 3600 seconds, got -2"),
        ("0.05", "must be at least 0.1 and at most 3600 seconds, got 0.05"),
        ("3600.5", "must be at least 0.1 and at most 3600 seconds, got 3600.5"),
        ("25000", "must be at least 0.1 and at most 3600 seconds, got 25000"),
        ("nan", "must be at least 0.1 and at most 3600 seconds, got nan"),
        ("inf", "must be at least 0.1 and at most 3600 seconds, got inf"),
    ],
)
def test_a_bad_interval_is_refused_by_name(variable: str, raw: str, problem: str) -> None:
    with pytest.raises(SettingsError) as refused:
        timings_from({variable: raw})
    assert str(refused.value) == f"{variable} {problem}"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PRESENCE_GRACE": "2"}, "PRESENCE_GRACE (2 s) must be longer than HEARTBEAT_INTERVAL (2 s)"),
        (
            {"HEARTBEAT_INTERVAL": "0.5", "PRESENCE_GRACE": "0.3"},
            "PRESENCE_GRACE (0.3 s) must be longer than HEARTBEAT_INTERVAL (0.5 s)",
        ),
        ({"HEARTBEAT_INTERVAL": "10"}, "PRESENCE_GRACE (6 s) must be longer than HEARTBEAT_INTERVAL (10 s)"),
    ],
)
def test_the_presence_grace_outlasts_a_heartbeat(env: dict[str, str], message: str) -> None:
    """After Redis lost its data, every heartbeat is missing until the next beat: a grace
    shorter than that would sweep live instances."""
    with pytest.raises(SettingsError, match=r"^" + re.escape(message)):
        timings_from(env)


def test_the_ping_settings_reach_engineio() -> None:
    app = create_app(Settings.from_env({"JWT_SECRET": SECRET, "PING_INTERVAL": "0.5", "PING_TIMEOUT": "1.5"}))
    assert (app.sio.eio.ping_interval, app.sio.eio.ping_timeout) == (0.5, 1.5)


async def test_the_timeline_step_reaches_the_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """The step the instances API reports is the one the console spaces its charts by."""
    monkeypatch.setattr(Sanic, "__call__", Sanic.__call__)  # sanic-testing replaces it for good
    app = create_app(Settings.from_env({"JWT_SECRET": SECRET, "TIMELINE_STEP": "0.5"}))
    status, body = await InProcessAPI(app.sanic)("GET", "/api/v1/instances", ADMIN)
    assert status == 200, body
    assert body["step"] == 0.5


def test_token_command_mints_a_verifiable_token() -> None:
    sub, project = "660e8400-e29b-41d4-a716-446655440001", "550e8400-e29b-41d4-a716-446655440000"
    result = run_cli(
        {"JWT_SECRET": SECRET},
        "token",
        "--sub",
        sub,
        "--projects",
        project,
        "--roles",
        "admin",
        "--ttl",
        "60",
    )
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["sub"] == sub
    assert claims["projects"] == [project]
    assert claims["roles"] == ["admin"]
    assert claims["exp"] - claims["iat"] == 60


def test_token_command_refuses_bad_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sub = "660e8400-e29b-41d4-a716-446655440001"
    assert cli_in_process(monkeypatch, capsys, {"JWT_SECRET": SECRET}, "token", "--sub", "alice")[0] == 2
    status, _, _ = cli_in_process(
        monkeypatch, capsys, {"JWT_SECRET": SECRET}, "token", "--sub", sub, "--roles", "root"
    )
    assert status == 2
    status, _, err = cli_in_process(
        monkeypatch, capsys, {"JWT_PUBLIC_KEY": pem(RSA_KEY)}, "token", "--sub", sub
    )
    assert status == 2
    assert "minting needs JWT_SECRET" in err


@pytest.mark.parametrize(("key", "algorithm"), [(RSA_KEY, "RS256"), (EC_KEY, "ES256")])
async def test_public_key_with_issuer_and_audience(
    start_server: Callable[..., ServerProcess],
    clients: Callable[[], Client],
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    algorithm: str,
) -> None:
    one_line_pem = pem(key).replace("\n", "\\n")
    server = start_server(
        {"JWT_PUBLIC_KEY": one_line_pem, "JWT_ISSUER": "auth.swe", "JWT_AUDIENCE": "realtime"}
    )
    signed: dict[str, Any] = {"secret": key, "algorithm": algorithm}

    good = await clients().connect(server.url, make_token(iss="auth.swe", aud="realtime", **signed))
    assert (await good.next("connection_established"))["type"] == "connection.established"

    public_pem = pem(key)
    cases = {
        "Token issuer is not accepted": make_token(iss="evil", aud="realtime", **signed),
        "Token audience is not accepted": make_token(iss="auth.swe", aud="other", **signed),
        "Token lacks the required claim 'iss'": make_token(aud="realtime", **signed),
        # HS/RS confusion: an HMAC token "signed" with the public key must not pass.
        "Invalid or expired token": forge_hs256(
            {"sub": str(uuid4()), "exp": int(time.time()) + 60, "iss": "auth.swe", "aud": "realtime"},
            public_pem.encode(),
        ),
    }
    for message, token in cases.items():
        client = clients()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(server.url, token)
        assert client.connect_error["message"] == message

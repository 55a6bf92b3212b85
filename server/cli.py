"""``swe-realtime``: ``serve`` runs the gateway, ``token`` mints a token for development."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from uuid import UUID

from swe_realtime.errors import SettingsError
from swe_realtime.events._examples import PROJECT_ID, USER_ID
from swe_realtime.settings import Settings, tls_settings

try:
    from swe_realtime.serve import serve
    from swe_realtime.sessions.auth import Role, mint_token
    from swe_realtime.telemetry.logs import configure_logging
except ModuleNotFoundError as missing:  # the base install: models and emitter, no server
    raise SystemExit(
        f"swe-realtime: the gateway is not installed ({missing.name} is missing):"
        " pip install 'swe-realtime[gateway]'"
    ) from None

DEMO_USER = UUID(USER_ID)  # the ids of the API document's examples
DEMO_PROJECT = UUID(PROJECT_ID)
DEV_ADMIN = UUID("ad000000-0000-4000-8000-000000000001")
"""The dev admin's own ``sub``: were it the demo user's, an operator's console and admin
calls would be listed among that user's connections and counted toward its limits."""
DEV_TOKEN_TTL = 24 * 3600


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ, dev=getattr(args, "dev", False))
    except SettingsError as exc:
        print(f"swe-realtime: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "token":
        return _token(settings, args)
    return _serve(settings, args)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    try:
        tls = settings.tls
        if args.ssl_cert or args.ssl_key:
            tls = tls_settings(args.ssl_cert or None, args.ssl_key or None)
        settings = dataclasses.replace(
            settings,
            host=args.host if args.host is not None else settings.host,
            port=args.port if args.port is not None else settings.port,
            workers=args.workers if args.workers is not None else settings.workers,
            tls=tls,
        )
        if settings.workers > 1 and settings.redis is None:
            raise SettingsError("--workers above 1 needs REDIS_URL: the workers share events through Redis")
    except SettingsError as exc:
        print(f"swe-realtime: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(fmt=settings.log_format)
    if settings.dev:
        _print_dev_banner(settings)
    return serve(settings)


def _print_dev_banner(settings: Settings) -> None:
    user = mint_token(settings.jwt, sub=DEMO_USER, projects=[DEMO_PROJECT], ttl_seconds=DEV_TOKEN_TTL)
    admin = mint_token(
        settings.jwt, sub=DEV_ADMIN, roles=[Role.ADMIN, Role.SERVICE], ttl_seconds=DEV_TOKEN_TTL
    )
    base = f"{'https' if settings.tls else 'http'}://{settings.host}:{settings.port}"
    origin = (
        "a secret from JWT_SECRET" if not settings.jwt.generated else "a random secret (valid until exit)"
    )
    print(
        f"swe-realtime dev mode: tokens are signed with {origin}.\n"
        f"Demo user {DEMO_USER}, member of project {DEMO_PROJECT}:\n"
        f"  {user}\n"
        f"Admin {DEV_ADMIN} (for the admin API, GET {base}/api/v1/connections, and publishing):\n"
        f"  {admin}\n"
        f"Operator console: {base}/inspector#token={admin}\n"
        "Connect with socket.io-client:\n"
        f'  const socket = io("{base}/ws", {{ auth: {{ token: "{user}" }} }});',
        flush=True,
    )


def _token(settings: Settings, args: argparse.Namespace) -> int:
    if settings.jwt.secret is None:
        print("swe-realtime: minting needs JWT_SECRET; a public key can only verify", file=sys.stderr)
        return 2
    print(
        mint_token(
            settings.jwt,
            sub=args.sub,
            projects=args.projects,
            roles=args.roles,
            ttl_seconds=args.ttl,
        )
    )
    return 0


def _uuid_list(raw: str) -> list[UUID]:
    try:
        return [UUID(item.strip()) for item in raw.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of UUIDs: {raw!r}") from None


def _role_list(raw: str) -> list[Role]:
    try:
        return [Role(item.strip()) for item in raw.split(",") if item.strip()]
    except ValueError:
        choices = ", ".join(role.value for role in Role)
        raise argparse.ArgumentTypeError(f"roles are {choices}; got {raw!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="swe-realtime", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", help="interface to bind (default: HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default: PORT or 8000)")
    serve.add_argument("--dev", action="store_true", help="random secret if none is set; print demo tokens")
    serve.add_argument(
        "--workers", type=int, help="worker processes (default: WORKERS or 1; >1 needs REDIS_URL)"
    )
    serve.add_argument("--ssl-cert", help="certificate chain file: serve https/wss (default: SSL_CERT)")
    serve.add_argument("--ssl-key", help="private key file for --ssl-cert (default: SSL_KEY)")

    token = commands.add_parser("token", help="mint a token signed with JWT_SECRET")
    token.add_argument("--sub", type=UUID, required=True, help="subject: the user (or agent) UUID")
    token.add_argument("--projects", type=_uuid_list, default=[], help="comma-separated project UUIDs")
    token.add_argument("--roles", type=_role_list, default=[], help="comma-separated: admin,service,agent")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    return parser


if __name__ == "__main__":
    sys.exit(main())

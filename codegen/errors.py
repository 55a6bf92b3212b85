"""Errors of the generator."""

from swe_realtime.errors import GatewayError


class CodegenError(GatewayError, RuntimeError):
    """The catalogue cannot be rendered (for instance, two models share a schema name)."""

"""Contracts generated from the event catalogue in ``server/events``.

Generation is pure: the same catalogue gives the same bytes. It reads the models and never
imports the socket server.
"""

from codegen.errors import CodegenError
from codegen.render import render

__all__ = ["CodegenError", "render"]

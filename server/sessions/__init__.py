"""Connections: the ``/ws`` namespace and its commands, tokens and principals, who may join
which room, the live connections, rate limits and agent presence.
"""

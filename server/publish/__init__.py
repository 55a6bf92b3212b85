"""Publishing: validate an event against its model, route it to its rooms, hand it to a sink.

The broadcaster and its typed methods need only pydantic; the message format (header and
ready frame) is what every sink and every receiving instance share.
"""

"""Everything Redis: the connection, the rooms' streams and channels, their health, the stats
and presence summed over instances, the admin bus, and the emitter of a process without a
gateway.
"""

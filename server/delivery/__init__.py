"""From a published event to the members of its rooms on this instance: fan-out, the gate
of a connection catching up, history and recovery, one copy per member for events of
several rooms. In memory here; over Redis, server/cluster/ builds on these.
"""

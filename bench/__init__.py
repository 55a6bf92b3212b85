"""Benchmarks of the gateway against a bare python-socketio server measured in the same run."""

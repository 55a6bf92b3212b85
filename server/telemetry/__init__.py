"""What the gateway counts and logs: Prometheus metrics, the log format, the audit trail.

Any layer may record here; this package imports nothing else of the gateway.
"""

"""swe-realtime: the real-time Socket.IO gateway of the SWE Agent platform."""

__version__ = "0.1.0"

"""HTTP routes of the gateway, one blueprint per module; the bodies as models (models.py).

Nothing is imported here: codegen reads models.py without the web server's libraries.
"""

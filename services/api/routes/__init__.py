"""The offer API's routes, one router per touchpoint (``ops``: health, readiness, metrics)."""

"""The Celery broker: kombu's Redis transport with a crash-safe fetch (see transport.py)."""

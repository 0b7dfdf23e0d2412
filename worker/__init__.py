"""zapdispatch worker package. `celery -A worker` finds the Celery application as `worker.app`."""

from worker.celery_app import app

__all__ = ["app"]

"""Health check and alerts: poll Evolution, record status changes, raise alerts.

`health_check.HealthMonitor` is the job (a plain class; the Celery task `zapdispatch.health_check`
is a one-line adapter around `run_health_check`). Policy is pure and lives in `states.py`
(Evolution state → instance status) and `rules.py` (alert conditions and transitions);
`alert_manager.py` applies transitions and drains the notification outbox through `notifiers.py`.
"""

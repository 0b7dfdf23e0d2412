"""Evolution webhooks in: parse (`events.py`), authenticate (`auth.py`), apply (`service.py`).

The API's `POST /webhooks/evolution` route is the only caller; nothing here knows FastAPI.
"""

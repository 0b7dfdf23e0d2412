"""The status API (FastAPI): dashboard, stats, health, `/metrics` and the page at `/`."""

from worker.api.app import create_app
from worker.api.auth import InsecureBind
from worker.api.deps import ApiDeps, deps_from_resources
from worker.api.server import serve

__all__ = ["ApiDeps", "InsecureBind", "create_app", "deps_from_resources", "serve"]

"""Data model: tables, enums, frozen views and the repository that serves them."""

from models import tables
from models.base import Base
from models.enums import InstanceStatus, MessageState

metadata = Base.metadata

__all__ = [
    "Base",
    "InstanceStatus",
    "MessageState",
    "metadata",
    "tables",
]

"""Evolution API boundary: a sync client for sends, an async one for health polls."""

from worker.evolution.client import (
    AsyncEvolutionClient,
    EvolutionClient,
    InstanceState,
    SentText,
)
from worker.evolution.errors import (
    EvolutionAuthError,
    EvolutionError,
    InstanceRateLimited,
    InstanceUnavailable,
    PermanentRecipientError,
    RecipientNotOnWhatsApp,
    TransientEvolutionError,
)

__all__ = [
    "AsyncEvolutionClient",
    "EvolutionAuthError",
    "EvolutionClient",
    "EvolutionError",
    "InstanceRateLimited",
    "InstanceState",
    "InstanceUnavailable",
    "PermanentRecipientError",
    "RecipientNotOnWhatsApp",
    "SentText",
    "TransientEvolutionError",
]

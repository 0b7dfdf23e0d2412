"""Evolution API boundary: a sync client for sends, an async one for health polls."""

from worker.evolution.bodies import InstanceState, SentText, StoredMessage
from worker.evolution.client import AsyncEvolutionClient, EvolutionClient
from worker.evolution.errors import (
    EvolutionAuthError,
    EvolutionError,
    EvolutionLicenceRequired,
    InstanceRateLimited,
    InstanceUnavailable,
    LookUpUnavailable,
    PermanentRecipientError,
    RecipientNotOnWhatsApp,
    SendOutcomeUnknown,
    TransientEvolutionError,
)

__all__ = [
    "AsyncEvolutionClient",
    "EvolutionAuthError",
    "EvolutionClient",
    "EvolutionError",
    "EvolutionLicenceRequired",
    "InstanceRateLimited",
    "InstanceState",
    "InstanceUnavailable",
    "LookUpUnavailable",
    "PermanentRecipientError",
    "RecipientNotOnWhatsApp",
    "SendOutcomeUnknown",
    "SentText",
    "StoredMessage",
    "TransientEvolutionError",
]

"""Per-instance caps (per local hour and day) and send spacing, atomic across workers.

`RedisLimiter` is the real one (one Lua call per reserve); `MemoryLimiter` is a double with
the same behaviour for unit tests. Policy values and rules live in `policy.py`.
"""

from worker.limiter.memory import MemoryLimiter
from worker.limiter.policy import (
    Candidate,
    InstanceUsage,
    Limiter,
    NoCapacity,
    Reservation,
    SpacingPolicy,
)
from worker.limiter.redis_backend import RedisLimiter

__all__ = [
    "Candidate",
    "InstanceUsage",
    "Limiter",
    "MemoryLimiter",
    "NoCapacity",
    "RedisLimiter",
    "Reservation",
    "SpacingPolicy",
]

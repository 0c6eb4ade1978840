"""What makes two configs the same: everything but where a run goes.

One definition for resume (`airush.config_hash`), the leaderboard (runs that differ only in their seed are one
row) and reproduce: output paths, the tracking store, Hydra's own settings, `resume` and what `reproduce`
adds say where or how a run is recorded, never what it computes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

# Top-level keys that say where a run goes, not what it computes.
NOT_COMPUTED = ("paths", "mlflow", "resume", "hydra", "reproduce_of")


def computes(key: str) -> bool:
    """A (flattened, dotted) config key that changes what a run computes."""
    return key.split(".", 1)[0] not in NOT_COMPUTED


def config_hash(tree: dict[str, Any]) -> str:
    """What the run computes, as 16 hex digits: equal hashes = identical resolved configs (outputs aside)."""
    kept = {k: v for k, v in tree.items() if computes(k)}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]

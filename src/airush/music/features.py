"""How play counts become the training matrix's weights (users x items CSR)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from airush.errors import ConfigError

SCHEMES = ("binary", "log", "raw")


@dataclass
class InteractionWeights:
    """What `features=` builds for the music task: play counts -> training weights. A user's own scheme
    implements `transform` and declares `task = "music"` (or subclasses this)."""

    task = "music"
    scheme: str = "log"

    def transform(self, plays: sp.csr_matrix) -> sp.csr_matrix:
        """binary: 1 per played item; log: log(1 + plays); raw: the play counts."""
        if self.scheme not in SCHEMES:
            raise ConfigError(f"features.scheme '{self.scheme}' unknown; choose from: {', '.join(SCHEMES)}")
        weights = plays.astype(np.float32, copy=True)
        if self.scheme == "binary":
            weights.data[:] = 1.0
        elif self.scheme == "log":
            weights.data = np.log1p(weights.data)
        return weights

"""How play counts become the training matrix's weights (users x items CSR)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from airush.model import check_settings, one_of

SCHEMES = ("binary", "log", "raw")


@dataclass
class InteractionWeights:
    """What `features=` builds for the music task: play counts -> training weights. A user's own scheme
    implements `transform` and declares `task = "music"` (or subclasses this)."""

    task = "music"
    ranges: ClassVar[dict[str, str]] = {"scheme": one_of(SCHEMES)}

    scheme: str = "log"

    def transform(self, plays: sp.csr_matrix) -> sp.csr_matrix:
        """binary: 1 per played item; log: log(1 + plays); raw: the play counts."""
        check_settings("features", self)
        weights = plays.astype(np.float32, copy=True)
        if self.scheme == "binary":
            weights.data[:] = 1.0
        elif self.scheme == "log":
            weights.data = np.log1p(weights.data)
        return weights

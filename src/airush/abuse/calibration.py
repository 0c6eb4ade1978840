"""Calibrated probabilities for a detector's scores: a map fitted on valid (Platt or isotonic) that turns a
score into P(bot), stored as plain JSON numbers in the model's `airush_model.json`, never pickled.

A detector's score ranks sessions; how many of the sessions scored 0.8 are bots depends on the class balance
and on how the model was trained (class weights, early stopping), so the raw score is not a probability.
Ranking metrics and thresholds stay on the score; `probability` is the calibrated value, judged by the
Brier score and the expected calibration error (ECE) on test, with a reliability table and diagram.

- platt: a logistic regression on the score's log-odds, P = sigmoid(a * logit(score) + b) (Platt 1999, with
  his smoothed targets so a perfectly separated valid does not push a to infinity). Strictly increasing when
  a > 0, so it keeps the ranking. When valid shows no increasing relation (a <= 0) the map is the constant
  valid bot rate: the scores told valid nothing.
- isotonic: the non-decreasing step function closest to valid's labels (pool adjacent violators, as
  scikit-learn's IsotonicRegression, linear between its knots, clipped outside them). Flexible, but it ties
  scores that fall on one step.
- none: probability = score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

METHODS = ("platt", "isotonic", "none")
EPS = 1e-12  # scores are clipped into [EPS, 1 - EPS] before their log-odds are taken
RELIABILITY_BINS = 10  # equal-width probability bins of the reliability table and diagram


@dataclass(frozen=True)
class Calibration:
    method: str  # one of METHODS
    a: float = 1.0  # platt: slope on the score's log-odds
    b: float = 0.0  # platt: intercept
    knots_x: tuple[float, ...] = ()  # isotonic: scores of the step function's knots, increasing
    knots_y: tuple[float, ...] = ()  # isotonic: P(bot) at each knot, non-decreasing

    def probability(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        if self.method == "platt":
            return _sigmoid(self.a * _logit(scores) + self.b)
        if self.method == "isotonic":
            return np.interp(scores, self.knots_x, self.knots_y)
        return scores.copy()

    def to_json(self) -> dict[str, Any]:
        if self.method == "platt":
            return {"method": "platt", "a": self.a, "b": self.b}
        if self.method == "isotonic":
            return {"method": "isotonic", "knots_x": list(self.knots_x), "knots_y": list(self.knots_y)}
        return {"method": "none"}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibration:
        """From `to_json`'s dict, checked: it comes from a model file, which is untrusted input."""
        method = data.get("method")
        if method not in METHODS:
            raise ValueError(f"calibration method {method!r}; expected one of {', '.join(METHODS)}")
        if method == "platt":
            a, b = float(data["a"]), float(data["b"])
            if not (np.isfinite(a) and np.isfinite(b)):
                raise ValueError("platt calibration with a non-finite a or b")
            return cls("platt", a=a, b=b)
        if method == "isotonic":
            x = np.asarray(data["knots_x"], dtype=np.float64)
            y = np.asarray(data["knots_y"], dtype=np.float64)
            if len(x) == 0 or x.shape != y.shape or np.any(np.diff(x) < 0) or np.any(np.diff(y) < 0):
                raise ValueError("isotonic calibration whose knots are not non-decreasing pairs")
            if not (np.all(np.isfinite(x)) and np.all((y >= 0) & (y <= 1))):
                raise ValueError("isotonic calibration with knots outside [0, 1] or not finite")
            return cls("isotonic", knots_x=tuple(x.tolist()), knots_y=tuple(y.tolist()))
        return cls("none")


def fit_calibration(y_true: np.ndarray, scores: np.ndarray, method: str) -> Calibration:
    """The map from score to P(bot) that fits valid's labels best under `method` (module docstring)."""
    y = np.asarray(y_true, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if method == "none":
        return Calibration("none")
    if method == "platt":
        return _fit_platt(y, scores)
    if method == "isotonic":
        return _fit_isotonic(y, scores)
    raise ValueError(f"calibration method {method!r}; expected one of {', '.join(METHODS)}")


def _fit_platt(y: np.ndarray, scores: np.ndarray) -> Calibration:
    from scipy.optimize import minimize

    positives = y.sum()
    negatives = len(y) - positives
    # Platt's targets: (N+ + 1) / (N+ + 2) for bots, 1 / (N- + 2) for humans
    target = np.where(y > 0, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    z = _logit(scores)

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = params
        margin = a * z + b
        p = _sigmoid(margin)
        # cross-entropy with soft targets, written with logaddexp so it stays finite for any margin
        value = np.sum(target * np.logaddexp(0, -margin) + (1 - target) * np.logaddexp(0, margin))
        residual = p - target
        return float(value), np.array([np.dot(residual, z), residual.sum()])

    prior = np.log((positives + 1) / (negatives + 1))
    fitted = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    a, b = (float(v) for v in fitted.x)
    if not (fitted.success and a > 0 and np.isfinite(b)):
        return Calibration("platt", a=0.0, b=float(prior))
    return Calibration("platt", a=a, b=b)


def _fit_isotonic(y: np.ndarray, scores: np.ndarray) -> Calibration:
    from sklearn.isotonic import IsotonicRegression

    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, y)
    return Calibration(
        "isotonic",
        knots_x=tuple(float(v) for v in fitted.X_thresholds_),
        knots_y=tuple(float(v) for v in fitted.y_thresholds_),
    )


def brier_score(y_true: np.ndarray, probability: np.ndarray) -> float:
    """Mean squared difference between P(bot) and the label (0 is perfect, 0.25 is a constant 0.5)."""
    y = np.asarray(y_true, dtype=np.float64)
    return float(np.mean((np.asarray(probability, dtype=np.float64) - y) ** 2))


def reliability_table(y_true: np.ndarray, probability: np.ndarray, bins: int = RELIABILITY_BINS):
    """Per equal-width probability bin (the last one closed): sessions, mean P(bot), observed bot rate.
    Empty bins are left out."""
    import pandas as pd

    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(probability, dtype=np.float64)
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    counts = np.bincount(which, minlength=bins)
    mean_p = np.bincount(which, weights=p, minlength=bins)
    rate = np.bincount(which, weights=y, minlength=bins)
    kept = counts > 0
    return pd.DataFrame(
        {
            "bin_low": np.arange(bins)[kept] / bins,
            "bin_high": (np.arange(bins)[kept] + 1) / bins,
            "sessions": counts[kept],
            "mean_probability": mean_p[kept] / counts[kept],
            "bot_rate": rate[kept] / counts[kept],
        }
    )


def expected_calibration_error(y_true: np.ndarray, probability: np.ndarray, bins: int = RELIABILITY_BINS):
    """Sessions-weighted mean |mean P(bot) - observed bot rate| over the reliability table's bins."""
    table = reliability_table(y_true, probability, bins)
    weights = table["sessions"] / table["sessions"].sum()
    return float(np.sum(weights * np.abs(table["mean_probability"] - table["bot_rate"])))


def _logit(scores: np.ndarray) -> np.ndarray:
    clipped = np.clip(scores, EPS, 1 - EPS)
    return np.log(clipped) - np.log1p(-clipped)


def _sigmoid(margin: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0, -margin))

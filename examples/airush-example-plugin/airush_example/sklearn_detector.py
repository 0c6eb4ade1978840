"""A scikit-learn logistic regression as an airush abuse detector (`model=sklearn_logreg`).

scikit-learn fits it: missing values (NaN, ±inf: airush's features leave them where a session has nothing to
measure) become the training medians, columns are standardised, and `LogisticRegression` learns the weights.
Scoring is plain numpy over those learned arrays, the same before and after `save`/`load`, so a served model
gives exactly the run's test scores. Saved as npz + json: nothing is pickled.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np

from airush.abuse.models import Detector

ARRAYS = "logreg.npz"  # medians, means, scales, coefficients, intercept: one row per feature
META = "logreg.json"  # feature names, in the order of the arrays


class SklearnLogRegDetector(Detector):
    # settings are checked before a run starts: types from the annotations, ranges from here
    ranges: ClassVar[dict[str, str]] = {"C": "> 0", "max_iter": ">= 1"}

    def __init__(self, C: float = 1.0, max_iter: int = 1000, balance_classes: bool = True, seed: int = 0):
        self.C = C  # inverse L2 strength
        self.max_iter = max_iter
        self.balance_classes = balance_classes  # bots are a minority: weight classes to equal totals
        self.seed = seed

    def fit(self, X_train, y_train, X_valid, y_valid, bar=None) -> SklearnLogRegDetector:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        self.feature_names_ = [str(c) for c in X_train.columns]
        raw = _finite(X_train[self.feature_names_])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a column that is NaN throughout: median NaN
            medians = np.nanmedian(raw, axis=0)
        self.medians_ = np.where(np.isfinite(medians), medians, 0.0)  # never measured in train: 0
        filled = np.where(np.isnan(raw), self.medians_, raw)
        scaler = StandardScaler().fit(filled)
        self.means_ = scaler.mean_
        self.scales_ = scaler.scale_  # 1 for constant columns
        classifier = LogisticRegression(
            C=self.C,
            max_iter=self.max_iter,
            class_weight="balanced" if self.balance_classes else None,
            random_state=self.seed,
        ).fit(scaler.transform(filled), np.asarray(y_train))
        self.coef_ = classifier.coef_[0].astype(np.float64)
        self.intercept_ = float(classifier.intercept_[0])
        self.history_: dict = {}
        if bar is not None:
            bar.advance()
        return self

    def predict_proba(self, X) -> np.ndarray:
        from scipy.special import expit

        raw = _finite(X[self.feature_names_])
        filled = np.where(np.isnan(raw), self.medians_, raw)
        return expit(((filled - self.means_) / self.scales_) @ self.coef_ + self.intercept_)

    def feature_importance(self):
        """|weight| of each standardised feature, largest first."""
        import pandas as pd

        weights = pd.Series(np.abs(self.coef_), index=self.feature_names_, name="|standardised weight|")
        return weights.sort_values(ascending=False, kind="stable")

    def save(self, directory: Path) -> None:
        self.save_params(directory)
        np.savez(
            directory / ARRAYS,
            medians=self.medians_,
            means=self.means_,
            scales=self.scales_,
            coef=self.coef_,
            intercept=np.asarray([self.intercept_]),
        )
        (directory / META).write_text(json.dumps({"feature_names": self.feature_names_}, indent=1))

    @classmethod
    def load(cls, directory: Path) -> SklearnLogRegDetector:
        model = cls.from_params(directory)
        model.feature_names_ = json.loads((directory / META).read_text())["feature_names"]
        with np.load(directory / ARRAYS, allow_pickle=False) as data:
            model.medians_, model.means_, model.scales_ = data["medians"], data["means"], data["scales"]
            model.coef_, model.intercept_ = data["coef"], float(data["intercept"][0])
        return model


def _finite(frame) -> np.ndarray:
    """The frame as float64 with ±inf as NaN (missing)."""
    values = frame.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    values[~np.isfinite(values)] = np.nan
    return values

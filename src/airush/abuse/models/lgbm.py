"""LightGBM over session features, class-weighted and early-stopped on valid log-loss."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np

from airush.abuse.models import Detector


class LightGBMDetector(Detector):
    supports_gpu = False  # the PyPI wheel is CPU-only
    ranges: ClassVar[dict[str, str]] = {
        "learning_rate": "> 0",
        "num_leaves": ">= 2",
        "min_child_samples": ">= 0",
        "feature_fraction": "(0, 1]",
        "bagging_fraction": "(0, 1]",
        "bagging_freq": ">= 0 (0 = no bagging)",
        "lambda_l2": ">= 0",
        "num_boost_round": ">= 1",
        "early_stopping_rounds": ">= 1",
        "num_threads": ">= 0 (0 = OpenMP's default)",
    }

    def __init__(
        self,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_child_samples: int = 20,
        feature_fraction: float = 0.9,
        bagging_fraction: float = 0.9,
        bagging_freq: int = 1,
        lambda_l2: float = 1.0,
        num_boost_round: int = 1000,
        early_stopping_rounds: int = 50,
        balance_classes: bool = True,
        num_threads: int = 1,
        seed: int = 0,
    ) -> None:
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.feature_fraction = feature_fraction
        self.bagging_fraction = bagging_fraction
        self.bagging_freq = bagging_freq
        self.lambda_l2 = lambda_l2
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.balance_classes = balance_classes
        self.num_threads = num_threads
        self.seed = seed

    def training_steps(self) -> int:
        return int(self.num_boost_round)

    def params(self, y_train: np.ndarray) -> dict:
        positives = max(int(y_train.sum()), 1)
        return {
            "objective": "binary",
            "metric": ["binary_logloss", "auc"],  # the first drives early stopping
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": self.bagging_freq,
            "lambda_l2": self.lambda_l2,
            "scale_pos_weight": (len(y_train) - positives) / positives if self.balance_classes else 1.0,
            "num_threads": self.num_threads,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }

    def fit(self, X_train, y_train, X_valid, y_valid, bar=None) -> LightGBMDetector:
        import lightgbm as lgb

        train = lgb.Dataset(X_train, label=np.asarray(y_train), free_raw_data=False)
        valid = lgb.Dataset(X_valid, label=np.asarray(y_valid), reference=train)
        evals: dict = {}
        callbacks = [
            lgb.early_stopping(self.early_stopping_rounds, first_metric_only=True, verbose=False),
            lgb.record_evaluation(evals),
        ]
        if bar is not None:
            callbacks.append(lambda env: bar.advance())
        self.booster_ = lgb.train(
            self.params(np.asarray(y_train)),
            train,
            num_boost_round=self.num_boost_round,
            valid_sets=[train, valid],
            valid_names=["train", "valid"],
            callbacks=callbacks,
        )
        self.best_iteration_ = int(self.booster_.best_iteration or self.booster_.current_iteration())
        self.history_ = {
            f"{split}_{metric}": dict(enumerate(values, start=1))
            for split, by_metric in evals.items()
            for metric, values in by_metric.items()
        }
        self.feature_names_ = list(X_train.columns)
        return self

    def predict_proba(self, X) -> np.ndarray:
        return self.booster_.predict(X[self.feature_names_], num_iteration=self.best_iteration_)

    def feature_importance(self):
        """Total gain per feature, largest first."""
        import pandas as pd

        gain = self.booster_.feature_importance(importance_type="gain", iteration=self.best_iteration_)
        return pd.Series(gain, index=self.feature_names_, name="gain").sort_values(ascending=False)

    def save(self, directory: Path) -> None:
        self.save_params(directory)
        self.booster_.save_model(str(directory / "model.txt"), num_iteration=self.best_iteration_)
        meta = {"feature_names": self.feature_names_, "best_iteration": self.best_iteration_}
        (directory / "meta.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, directory: Path) -> LightGBMDetector:
        import lightgbm as lgb

        meta = json.loads((directory / "meta.json").read_text())
        model = cls.from_params(directory)
        model.booster_ = lgb.Booster(model_file=str(directory / "model.txt"))
        model.feature_names_ = meta["feature_names"]
        model.best_iteration_ = model.booster_.current_iteration()
        return model

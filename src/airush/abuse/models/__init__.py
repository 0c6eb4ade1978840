"""Abuse models: the `Detector` interface every abuse model implements (airush's and a user's own).

Settings in `__init__` (scikit-learn style), learned state in `fit` (attributes ending in `_`)::

    fit(X_train, y_train, X_valid, y_valid, bar=None) -> self   # valid drives early stopping
    predict_proba(X) -> np.ndarray                               # P(bot), one per row of X
    save(directory) / load(directory) (classmethod)              # plain files, no pickles; load keeps settings
    training_steps() -> int                                      # the most `bar.advance()` calls fit makes
    feature_importance() -> pd.Series | None                     # optional, logged as a plot and a table
    history_: dict[str, dict[int, float]]                        # optional per-iteration curves for MLflow

What X is depends on the class attribute `inputs`: "features" (default) gives a DataFrame of the configured
feature set, one row per session; "sequences" gives `airush.abuse.sequences.SessionSequences`, the raw
per-event inputs. Capabilities are class flags: `supports_gpu` (fit also takes `devices`, an
`airush.compute.devices.DevicePlan`) and `supports_distributed` (DDP ranks).
"""

from __future__ import annotations

from pathlib import Path

from airush.model import Model


class Detector(Model):
    task = "abuse"
    inputs = "features"  # or "sequences"

    def fit(self, X_train, y_train, X_valid, y_valid, bar=None) -> Detector:
        raise NotImplementedError

    def predict_proba(self, X):
        raise NotImplementedError

    def feature_importance(self):
        """Per feature, how much the score relies on it (largest first); None when the model cannot say."""
        return None

    def save(self, directory: Path) -> None:
        raise NotImplementedError

    @classmethod
    def load(cls, directory: Path) -> Detector:
        raise NotImplementedError

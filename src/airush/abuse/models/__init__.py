"""Abuse models: each takes a session feature table and scores P(bot) per session.

Protocol every model implements (scikit-learn style: settings in __init__, learned state ends in `_`)::

    fit(X_train, y_train, X_valid, y_valid, bar=None) -> self   # valid drives early stopping
    predict_proba(X) -> np.ndarray                               # P(bot), one per row
    save(directory) / load(directory) (classmethod)              # no pickles
    history_: dict[str, dict[int, float]]                        # per-iteration curves for MLflow
"""

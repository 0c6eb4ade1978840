"""Calibrated probabilities (airush.abuse.calibration) checked against scikit-learn: isotonic equals
IsotonicRegression, Platt equals a logistic regression on the score's log-odds with Platt's targets, Brier
equals brier_score_loss and the reliability table equals calibration_curve; a calibrated run reports them,
saves them with its model and `airush predict` answers with the same probabilities."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import brier_score_loss, roc_auc_score

from airush.abuse.calibration import (
    Calibration,
    brier_score,
    expected_calibration_error,
    fit_calibration,
    reliability_table,
)

from conftest import SMALL, run_airush


def overconfident(seed: int, n: int = 2000):
    """Labels with a 10% bot rate and scores that overstate P(bot), as from a detector trained with class
    weights: margins N(+-1.5, 1) by class, score = sigmoid(2 * margin + 2)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(int)
    margin = rng.normal(np.where(y == 1, 1.5, -1.5), 1.0)
    return y, 1 / (1 + np.exp(-(2.0 * margin + 2.0)))


@pytest.mark.parametrize("seed", [0, 1])
def test_isotonic_is_scikit_learns_isotonic_regression(seed):
    y, scores = overconfident(seed)
    fitted = fit_calibration(y[:1000], scores[:1000], "isotonic")
    reference = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(scores[:1000], y[:1000])
    np.testing.assert_allclose(
        fitted.probability(scores[1000:]), reference.predict(scores[1000:]), atol=1e-12
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_platt_is_a_logistic_regression_on_log_odds_with_platts_targets(seed):
    from scipy.optimize import minimize_scalar

    y, scores = overconfident(seed)
    fitted = fit_calibration(y, scores, "platt")
    z = np.log(scores / (1 - scores))
    positives, negatives = y.sum(), len(y) - y.sum()
    target = np.where(y == 1, (positives + 1) / (positives + 2), 1 / (negatives + 2))

    def loss(a, b):
        p = 1 / (1 + np.exp(-(a * z + b)))
        return -np.sum(target * np.log(p) + (1 - target) * np.log(1 - p))

    # independent check: for the fitted slope the intercept minimises the loss, and the pair beats nearby ones
    best_b = minimize_scalar(lambda b: loss(fitted.a, b), bounds=(-20, 20), method="bounded").x
    assert fitted.b == pytest.approx(best_b, abs=1e-3)
    for da, db in ((0.01, 0), (-0.01, 0), (0, 0.01), (0, -0.01)):
        assert loss(fitted.a, fitted.b) <= loss(fitted.a + da, fitted.b + db)
    # the true log-odds are 3 m - log(9) for margin m and the score's are 2 m + 2: a = 1.5, b = -log(9) - 3
    assert fitted.a == pytest.approx(1.5, abs=0.25)
    assert fitted.b == pytest.approx(-np.log(9) - 3, abs=0.6)
    assert fitted.probability(scores).mean() == pytest.approx(y.mean(), abs=0.01)
    # strictly increasing: the ranking (ROC-AUC) is the score's
    assert roc_auc_score(y, fitted.probability(scores)) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_platt_without_an_increasing_relation_is_the_valid_bot_rate():
    y = np.array([1, 1, 0, 0, 0, 0])
    scores = np.array([0.1, 0.2, 0.7, 0.8, 0.9, 0.95])  # bots score lower: nothing to calibrate
    fitted = fit_calibration(y, scores, "platt")
    assert fitted.a == 0.0
    np.testing.assert_allclose(fitted.probability(scores), (2 + 1) / (6 + 2))


@pytest.mark.parametrize("seed", [0, 1])
def test_brier_ece_and_reliability_table_against_scikit_learn(seed):
    y, scores = overconfident(seed)
    assert brier_score(y, scores) == pytest.approx(brier_score_loss(y, scores), abs=1e-12)
    table = reliability_table(y, scores, bins=10)
    bot_rate, mean_probability = calibration_curve(y, scores, n_bins=10, strategy="uniform")
    np.testing.assert_allclose(table["bot_rate"], bot_rate, atol=1e-12)
    np.testing.assert_allclose(table["mean_probability"], mean_probability, atol=1e-12)
    assert table["sessions"].sum() == len(y)
    ece = expected_calibration_error(y, scores)
    expected = np.sum(table["sessions"] / len(y) * np.abs(mean_probability - bot_rate))
    assert ece == pytest.approx(expected, abs=1e-12)
    # calibrating on half and scoring the other half lowers Brier and ECE of these overconfident scores
    for method in ("platt", "isotonic"):
        calibrated = fit_calibration(y[:1000], scores[:1000], method).probability(scores[1000:])
        assert brier_score(y[1000:], calibrated) < brier_score(y[1000:], scores[1000:])
        assert expected_calibration_error(y[1000:], calibrated) < expected_calibration_error(
            y[1000:], scores[1000:]
        )


@pytest.mark.parametrize("method", ["platt", "isotonic", "none"])
def test_a_calibration_goes_through_json_unchanged(method):
    y, scores = overconfident(3, n=300)
    fitted = fit_calibration(y, scores, method)
    loaded = Calibration.from_json(json.loads(json.dumps(fitted.to_json())))
    np.testing.assert_array_equal(loaded.probability(scores), fitted.probability(scores))


@pytest.mark.parametrize(
    "data",
    [
        {"method": "magic"},
        {"method": "platt", "a": float("nan"), "b": 0.0},
        {"method": "isotonic", "knots_x": [0.2, 0.1], "knots_y": [0.1, 0.2]},
        {"method": "isotonic", "knots_x": [0.1, 0.2], "knots_y": [0.3, 1.5]},
        {"method": "isotonic", "knots_x": [], "knots_y": []},
    ],
)
def test_a_calibration_read_from_a_model_file_is_checked(data):
    with pytest.raises(ValueError):
        Calibration.from_json(data)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_a_run_reports_calibration_and_predict_gives_its_probabilities(method, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run = run_airush(
        [*SMALL["abuse"], f"task.calibration={method}", f"hydra.run.dir={tmp_path}/run"], tmp_path, uri
    )
    assert run.returncode == 0, run.stderr[-3000:]
    evaluation = tmp_path / "run" / "evaluation"
    predictions = pd.read_parquet(evaluation / "test_predictions.parquet")
    assert (evaluation / "reliability.png").stat().st_size > 0
    table = pd.read_csv(evaluation / "reliability.csv")
    assert table["sessions"].sum() == len(predictions)

    import mlflow

    client = mlflow.MlflowClient(uri)
    (found,) = client.search_runs([client.get_experiment_by_name("abuse").experiment_id])
    metrics = found.data.metrics
    y, p = predictions["label"].to_numpy(), predictions["probability"].to_numpy()
    assert metrics["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-9)
    assert metrics["brier_uncalibrated"] == pytest.approx(brier_score_loss(y, predictions["score"]), abs=1e-9)
    assert (
        metrics["strict_threshold"] <= metrics["threshold"] or metrics["strict_fpr"] <= metrics["fpr"] + 1e-9
    )

    # predict on the same data: the run's test sessions get the run's probabilities, flagged at either threshold
    out = tmp_path / "predicted.parquet"
    asked = run_airush(
        ["predict", found.info.run_id, *SMALL["abuse"], "--out", str(out), "--threshold", "target_fpr"],
        tmp_path,
        uri,
    )
    assert asked.returncode == 0, asked.stderr[-3000:]
    predicted = pd.read_parquet(out).set_index("session_id").loc[predictions["session_id"]]
    np.testing.assert_allclose(predicted["probability"], p, rtol=1e-9, atol=1e-12)
    flagged = predicted["score"].to_numpy() >= metrics["strict_threshold"]
    np.testing.assert_array_equal(predicted["flagged"].to_numpy(), flagged)

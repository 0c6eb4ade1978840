"""Top-N export: exactly N distinct unplayed items per user, the data set's own ids, CSV and JSON agree."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from airush.errors import ConfigError
from airush.music.export import check_top_n, top_n_for_all_users, write_top_n

from conftest import SMALL


def test_export_lists_n_unseen_items_in_score_order(tmp_path):
    rng = np.random.default_rng(0)
    scores = rng.random((30, 50)).astype(np.float32)
    seen = sp.csr_matrix((rng.random((30, 50)) < 0.3).astype(np.float32))
    top = top_n_for_all_users(lambda users: scores[users], seen, 10, batch_users=7)
    check_top_n(top, seen, 10)
    for user in range(30):
        played = set(seen[user].indices)
        expected = [i for i in np.argsort(-scores[user], kind="stable") if i not in played][:10]
        assert top[user].tolist() == expected

    user_ids = np.array([f"u{i}" for i in range(30)])
    item_ids = np.arange(1000, 1050)
    csv_path, json_path = write_top_n(top, user_ids, item_ids, tmp_path)
    table = pd.read_csv(csv_path)
    assert len(table) == 300 and table.groupby("user")["item"].nunique().eq(10).all()
    records = json.loads(json_path.read_text())
    assert records[3] == {"id": "u3", "songs": (item_ids[top[3]]).tolist(), "tags": []}
    assert table[table["user"] == "u3"].sort_values("rank")["item"].tolist() == records[3]["songs"]


def test_export_refuses_users_with_too_few_unplayed_items():
    seen = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 0, 0]], np.float32))
    top = top_n_for_all_users(lambda users: np.ones((len(users), 4), np.float32), seen, 3)
    with pytest.raises(ConfigError, match="top_n=3 but user 0 has only 2 items left"):
        check_top_n(top, seen, 3)


@pytest.mark.slow
def test_run_logs_recommendations_as_artifacts(compose_cfg, tracking_uri):
    from airush.runner import run

    run(compose_cfg(["task=music", "model=itemknn", "task.recommend.top_n=20", *SMALL["music"]]))
    client = mlflow.MlflowClient(tracking_uri)
    (found,) = client.search_runs([client.get_experiment_by_name("music").experiment_id])
    names = {a.path.split("/")[-1] for a in client.list_artifacts(found.info.run_id, "evaluation")}
    assert {"recommendations.csv", "recommendations.json"} <= names

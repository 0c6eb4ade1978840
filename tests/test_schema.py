"""The typed config check (`airush.config.schema`): every bad value is one line naming the key, the value and
what is allowed, exit 2, before any MLflow run exists; airush's own configs all pass; a user's class is
checked the same way as airush's."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

import pytest

from airush.errors import ConfigError
from airush.music.models import Recommender

from conftest import SMALL, run_airush

# (overrides, the key the message names, the bad value as the message prints it; None: the key is the mistake)
BAD = [
    # top level: the shorthands and trainer
    (["seed=abc"], "seed", "'abc'"),
    (["seed=-1"], "seed", "-1"),
    (["gpus=-1"], "gpus", "-1"),
    (["gpus=abc"], "gpus", "'abc'"),
    (["lr=fast"], "lr", "'fast'"),
    (["lr=0"], "lr", "0"),
    (["lr=-1e-3"], "lr", "-0.001"),
    (["resume=maybe"], "resume", "'maybe'"),
    (["trainer.devices=0"], "trainer.devices", "0"),
    (["trainer.precision=fp8"], "trainer.precision", "'fp8'"),
    (["trainer.accelerator=tpu"], "trainer.accelerator", "'tpu'"),
    (["+trainer.device=2"], "trainer.device", None),
    # abuse: task, data, models
    (["task.primary_metric=accuracy"], "task.primary_metric", "'accuracy'"),
    (["task.split.ratios.train=-1"], "task.split.ratios.train", "-1"),
    (["task.scope=galaxy"], "task.scope", "'galaxy'"),
    (["task.min_action_events=0"], "task.min_action_events", "0"),
    (["data.n_users=abc"], "data.n_users", "'abc'"),
    (["data.n_users=0"], "data.n_users", "0"),
    (["data.bot_share=1.5"], "data.bot_share", "1.5"),
    (["data.bot_share=-0.1"], "data.bot_share", "-0.1"),
    (["data.bot_kinds=[macro,robot]"], "data.bot_kinds", "'robot'"),
    (["data=balabit", "data.max_test_sessions=0"], "data.max_test_sessions", "0"),
    (["model.learning_rate=-1"], "model.learning_rate", "-1"),
    (["model.num_leaves=1"], "model.num_leaves", "1"),
    (["model.feature_fraction=0"], "model.feature_fraction", "0"),
    (["model.num_boost_round=abc"], "model.num_boost_round", "'abc'"),
    (["+model.factor=8"], "model.factor", None),
    (["model=seq", "model.dropout=1.5"], "model.dropout", "1.5"),
    (["model=seq", "model.max_events=0"], "model.max_events", "0"),
    (["model=seq", "model.kernel_size=4"], "model.kernel_size", "4"),
    # music: task, data, features, models
    (["task=music", "task.ks=[0]"], "task.ks", "[0]"),
    (["task=music", "task.ks=[]"], "task.ks", "[]"),
    (["task=music", "task.primary_metric=ndcg_at_5"], "task.primary_metric", "'ndcg_at_5'"),
    (["task=music", "task.filter.min_user_items=-1"], "task.filter.min_user_items", "-1"),
    (["task=music", "+task.filter.min_users=3"], "task.filter.min_users", None),
    (["task=music", "task.eval_batch_users=0"], "task.eval_batch_users", "0"),
    (["task=music", "task.split.method=nope"], "task.split.method", "'nope'"),
    (["task=music", "task.recommend.top_n=-3"], "task.recommend.top_n", "-3"),
    (["task=music", "data.n_items=abc"], "data.n_items", "'abc'"),
    (["task=music", "data.new_item_share=1.0"], "data.new_item_share", "1.0"),
    (["task=music", "data.popularity_exponent=-1"], "data.popularity_exponent", "-1"),
    (["task=music", "data=movielens", "data.weight=count"], "data.weight", "'count'"),
    (["task=music", "data=melon", "data.playlists=[]"], "data.playlists", "[]"),
    (["task=music", "features.scheme=cubic"], "features.scheme", "'cubic'"),
    (["task=music", "model=als", "model.factors=-1"], "model.factors", "-1"),
    (["task=music", "model=als", "model.iterations=0"], "model.iterations", "0"),
    (["task=music", "model=bpr", "model.learning_rate=0"], "model.learning_rate", "0"),
    (["task=music", "model=itemknn", "model.similarity=jaccard"], "model.similarity", "'jaccard'"),
    (["task=music", "model=twotower", "model.id_dropout=1.0"], "model.id_dropout", "1.0"),
    (["task=music", "model=ease", "model.l2=0"], "model.l2", "0"),
]
IDS = [" ".join(overrides) for overrides, _, _ in BAD]


def with_small_data(overrides: list[str]) -> list[str]:
    """The case's overrides after the task's small data settings (those it does not set itself)."""
    task = "music" if "task=music" in overrides else "abuse"
    if any(o.startswith("data=") for o in overrides):
        return overrides  # another data set: SMALL's keys are the synthetic ones'
    keys = {o.lstrip("+").split("=")[0] for o in overrides}
    return [*(o for o in SMALL[task] if o.split("=")[0] not in keys), *overrides]


def assert_names_key_and_value(line: str, key: str, value: str | None) -> None:
    assert key in line, line
    if value is not None:
        assert value in line, line


@pytest.mark.parametrize(("overrides", "key", "value"), BAD, ids=IDS)
def test_bad_value_is_refused_before_anything_is_built(overrides, key, value, compose_cfg):
    from airush.runner import build

    cfg = compose_cfg(with_small_data(overrides))
    with pytest.raises(ConfigError) as err:
        build(cfg)
    message = str(err.value)
    assert "\n" not in message
    assert_names_key_and_value(message, key, value)


def test_the_walk_covers_every_kind_of_setting():
    assert len(BAD) >= 30
    keys = {key for _, key, _ in BAD}
    assert {"seed", "gpus", "lr", "resume"} <= keys
    for prefix in ("trainer.", "task.", "model.", "data.", "features."):
        assert any(key.startswith(prefix) for key in keys), prefix


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory) -> dict[str, tuple]:
    """Every bad value through the installed CLI, two subprocesses at a time: id -> (result, store path)."""

    def one(case_id: str, overrides: list[str]):
        cwd = tmp_path_factory.mktemp("cli")
        for name in ("balabit", "melon", "movielens"):  # there, if empty: a missing folder is refused first
            (cwd / "data" / name).mkdir(parents=True)
        store = cwd / "mlflow.db"
        return case_id, (
            run_airush(with_small_data(overrides), cwd=cwd, tracking_uri=f"sqlite:///{store}"),
            store,
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(lambda case: one(*case), zip(IDS, [o for o, _, _ in BAD], strict=True)))


@pytest.mark.slow
@pytest.mark.parametrize(("overrides", "key", "value"), BAD, ids=IDS)
def test_cli_refuses_bad_value_in_one_line_exit_2_and_no_run(overrides, key, value, cli_results):
    result, store = cli_results[" ".join(overrides)]
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("airush: error: "), result.stderr
    assert_names_key_and_value(lines[0], key, value)
    assert mlflow_runs(store) == 0


def mlflow_runs(store: Path) -> int:
    """Runs recorded in a sqlite tracking store (0 when no store or no runs table was created)."""
    if not store.exists():
        return 0
    with sqlite3.connect(store) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] if "runs" in tables else 0


def shipped_configs() -> list[list[str]]:
    """Every task x model x data x features airush ships, plus its experiment and scope=account setting;
    file paths that must be given are filled in (build reads no file)."""
    from airush.config.choices import packaged_choices

    choices = packaged_choices()
    required = {"events": ["data.events=e.csv", "data.sessions=s.csv"], "plays": ["data.interactions=p.csv"]}
    configs = []
    for task in ("abuse", "music"):
        for model in choices.options_for_task("model", task):
            for data in choices.options_for_task("data", task):
                configs.append([f"task={task}", f"model={model}", f"data={data}", *required.get(data, [])])
        for features in choices.options_for_task("features", task):
            configs.append([f"task={task}", f"features={features}"])
    configs.append(["task.scope=account", "data=balabit", "features=actions"])
    configs += [[f"experiment={name}"] for name in choices.options("experiment")]
    return configs


@pytest.mark.parametrize("overrides", shipped_configs(), ids=" ".join)
def test_shipped_configs_pass_the_check(overrides, compose_cfg):
    from airush.runner import build

    build(compose_cfg(overrides))


class ShelfRecommender(Recommender):
    """A user's own model, as it would live in their package: its ranges beside its settings."""

    ranges: ClassVar[dict[str, str]] = {
        "shelves": ">= 1",
        "mode": "in {fast, exact}",
        "decay": "(0, 1] (1 = no decay)",
        "tags": "non-empty",
    }

    def __init__(
        self,
        shelves: int = 3,
        mode: str = "fast",
        decay: float = 0.5,
        tags: tuple[str, ...] = ("pop",),
        seed: int = 0,
    ) -> None:
        self.shelves, self.mode, self.decay, self.tags, self.seed = shelves, mode, decay, tags, seed


USER_MODEL = ["task=music", "model=pop", f"model._target_={__name__}.ShelfRecommender"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["+model.shelves=0"], "model.shelves must be >= 1, got 0"),
        (["+model.shelves=two"], "model.shelves must be a whole number >= 1, got 'two'"),
        (["+model.mode=slow"], "model.mode 'slow' unknown; choose from: fast, exact"),
        (["+model.decay=0"], "model.decay must be in (0, 1] (1 = no decay), got 0"),
        (["+model.tags=[]"], "model.tags is empty; it must be a non-empty list of strings, got []"),
        (["+model.tags=[1]"], "model.tags must be a non-empty list of strings, got [1]"),
        (
            ["+model.shelf=2"],
            "model.shelf unknown; choose from: shelves, mode, decay, tags, seed",
        ),
    ],
)
def test_a_users_model_is_checked_from_its_own_annotations_and_ranges(overrides, message, compose_cfg):
    from airush.runner import build

    with pytest.raises(ConfigError) as err:
        build(compose_cfg([*USER_MODEL, *overrides]))
    assert str(err.value) == message


def test_a_users_model_with_good_settings_passes_and_is_checked_when_built_by_hand(compose_cfg):
    from airush.runner import build

    built = build(compose_cfg([*USER_MODEL, "+model.shelves=5", "+model.mode=exact", "+model.tags=[jazz]"]))
    assert built.model_cls is ShelfRecommender
    ShelfRecommender(shelves=2).check_params()
    with pytest.raises(ConfigError, match=r"^model\.decay must be in \(0, 1\] \(1 = no decay\), got 1\.5$"):
        ShelfRecommender(decay=1.5).check_params()


def test_a_class_taking_any_keyword_accepts_any_key_and_a_bad_rule_names_the_class():
    from airush.config.schema import check_settings

    class Open(Recommender):
        ranges: ClassVar[dict[str, str]] = {"size": ">= 1"}

        def __init__(self, size: int = 1, **extra) -> None:
            self.size = size

    check_settings("model", Open, {"size": 2, "anything": "goes"})
    with pytest.raises(ConfigError, match=r"^model\.size must be >= 1, got 0$"):
        check_settings("model", Open, {"size": 0})

    class Typo(Recommender):
        ranges: ClassVar[dict[str, str]] = {"size": "between 1 and 2"}

        def __init__(self, size: int = 1) -> None:
            self.size = size

    with pytest.raises(ConfigError, match=r"Typo\.ranges\['size'\]: cannot read 'between 1 and 2'"):
        check_settings("model", Typo, {"size": 1})


@pytest.mark.parametrize(
    ("rule", "good", "bad"),
    [
        (">= 1", [1, 2.5], [0, -1, float("nan")]),
        ("> 0", [1e-9], [0, -3]),
        ("< 1", [0.99], [1]),
        ("<= 1", [1], [1.01]),
        ("[0, 1)", [0, 0.5], [1, -0.1]),
        ("(0, 1]", [1, 0.1], [0, 1.1]),
        ("odd >= 1", [1, 3], [2, -1, 1.0]),
    ],
)
def test_rule_grammar(rule, good, bad):
    from airush.config.schema import parse_rule

    parsed = parse_rule(rule)
    assert all(parsed.holds(v) for v in good)
    assert not any(parsed.holds(v) for v in bad)


def test_every_task_reports_what_its_primary_metric_may_name(compose_cfg):
    from airush.runner import build

    abuse = build(compose_cfg([])).task
    assert "roc_auc" in abuse.reported_metrics() and "threshold" not in abuse.reported_metrics()
    music = build(compose_cfg(["task=music", "task.ks=[5]", "task.primary_metric=recall_at_5"])).task
    assert music.reported_metrics()[:2] == ["ndcg_at_5", "recall_at_5"]
    build(compose_cfg(["task.primary_metric=recall_macro"]))  # recall_<kind>


def test_objects_configured_inside_a_setting_are_checked_against_their_own_classes():
    from airush.abuse.features import CombinedFeatures
    from airush.config.schema import check_settings

    parts = [
        {"_target_": "airush.abuse.features.SessionFeatures", "keyboard": True},
        {"_target_": "airush.abuse.action_features.ActionFeatures", "pause_ms": -5},
    ]
    with pytest.raises(ConfigError, match=r"^features\.parts\[1\]\.pause_ms must be > 0, got -5$"):
        check_settings("features", CombinedFeatures, {"parts": parts})
    parts[1] = {"_target_": "airush.abuse.features.SessionFeatures", "mouse": "yes"}
    with pytest.raises(ConfigError, match=r"^features\.parts\[1\]\.mouse must be true or false, got 'yes'$"):
        check_settings("features", CombinedFeatures, {"parts": parts})

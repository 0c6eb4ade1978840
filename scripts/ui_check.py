"""What a user sees of airush's runs in MLflow's UI, checked in a real browser.

    python scripts/ui_check.py [--out outputs/ui_check] [--port 0]

Makes a store with the real `airush` CLI on small data (an abuse run, a music run, a 3-job music sweep), serves
it with `mlflow server --app-name airush` as `airush ui` does (one worker, job execution off, on 127.0.0.1, in
its own process group), opens it in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) and
asserts what must be on screen: `/airush` lands on the experiments list, and an experiment clicked there
opens on its runs table; the experiment opens on the runs view of "Model training" (not the GenAI overview) with the metric columns,
the logged model and the dataset; a run's page lists its logged model and dataset; the logged model's page
shows the run's metrics and params; the dataset's profile and schema; the evaluation plots; the sweep's
children under its parent. Each page is screenshotted into --out (`NN_what.png`), with `ui_check.json`
listing every check. Exit 0 when all hold, 1 otherwise, 2 when Chromium or Playwright is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BIN = Path(sys.executable).parent
SMALL_ABUSE = [
    "data.n_users=60",
    "data.sessions_per_user=5",
    "data.bot_share=0.15",
    "data.mouse_actions=[3,8]",
]
SMALL_MUSIC = ["data.n_users=300", "data.n_items=400", "data.n_artists=40"]
RUNS = {  # what the store holds, made as a user would
    "abuse": ["task=abuse", *SMALL_ABUSE],
    "music": ["task=music", *SMALL_MUSIC],
    "sweep": ["-m", "task=music", "model=pop,itemknn,ease", *SMALL_MUSIC],
}
PAGE_TIMEOUT_MS = 60_000  # the first page compiles nothing but a 2-core machine may be busy
VIEWPORT = {"width": 1800, "height": 1000}
# MLflow's assistant panel opens itself on a first visit and covers a third of every page
CLOSED_ASSISTANT = (
    "window.localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');"
    "window.localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=REPO / "outputs" / "ui_check", help="screenshots and report"
    )
    parser.add_argument("--port", type=int, default=0, help="the server's port (0: a free one)")
    parser.add_argument(
        "--store", type=Path, help="check this sqlite file (a store ui_check made before) instead"
    )
    args = parser.parse_args(argv)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        print("ui_check: needs Playwright for Python: pip install playwright", file=sys.stderr)
        return 2
    if not Path(CHROMIUM).exists():
        print(f"ui_check: needs {CHROMIUM}: apt-get install -y chromium chromium-driver", file=sys.stderr)
        return 2

    out = args.out.resolve()
    if args.store is not None:
        uri = f"sqlite:///{args.store.resolve()}"
        out.mkdir(parents=True, exist_ok=True)
    else:
        if out.exists():
            shutil.rmtree(out)
        store = out / "store"
        store.mkdir(parents=True)
        uri = f"sqlite:///{store / 'mlflow.db'}"
        for name, overrides in RUNS.items():
            make_run(name, overrides, store, uri)

    port = args.port or free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(uri, port, out / "server.log")
    try:
        wait_until_up(f"{base}/health", server, out / "server.log")
        checks = Checks(out)
        check_ui(base, uri, checks)
    finally:
        stop_group(server)
    checks.write()
    failed = [c for c in checks.results if not c["ok"]]
    for check in checks.results:
        print(
            f"{'ok  ' if check['ok'] else 'FAIL'} {check['what']}"
            + ("" if check["ok"] else f": {check['detail']}")
        )
    print(f"{len(checks.results) - len(failed)}/{len(checks.results)} checks hold; screenshots in {out}")
    return 1 if failed else 0


def make_run(name: str, overrides: list[str], cwd: Path, uri: str) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "COLUMNS": "200"}
    result = subprocess.run(
        [str(BIN / "airush"), *overrides],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    (cwd / f"airush_{name}.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise SystemExit(f"ui_check: `airush {' '.join(overrides)}` failed:\n{result.stderr[-2000:]}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(uri: str, port: int, log_path: Path) -> subprocess.Popen:
    """`mlflow server` in its own process group (setsid), so stopping it stops every process it started."""
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [str(BIN / "mlflow"), "server", "--backend-store-uri", uri, "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1", "--app-name", "airush"]  # as `airush ui` serves it
    log = open(log_path, "w")  # noqa: SIM115  (held open for the server's lifetime)
    return subprocess.Popen(
        ["setsid", *command], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
    )


def wait_until_up(url: str, server: subprocess.Popen, log_path: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    f"ui_check: mlflow server did not start:\n{log_path.read_text()[-3000:]}"
                ) from None
            time.sleep(0.5)


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (setsid made it its leader), SIGKILL if it lingers."""
    for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


class Checks:
    """Named assertions about pages, each with the screenshot that shows it."""

    def __init__(self, out: Path) -> None:
        self.out, self.results, self.shots = out, [], 0

    def check(self, what: str, ok: bool, detail: str = "", shot: str = "") -> bool:
        self.results.append({"what": what, "ok": bool(ok), "detail": detail, "screenshot": shot})
        return ok

    def screenshot(self, page, name: str) -> str:
        self.shots += 1
        file = f"{self.shots:02d}_{name}.png"
        page.screenshot(path=str(self.out / file), full_page=False)
        return file

    def write(self) -> None:
        (self.out / "ui_check.json").write_text(json.dumps(self.results, indent=1))


def check_ui(base: str, uri: str, checks: Checks) -> None:
    """Open every page a user looks at and check it (see the module's docstring)."""
    import mlflow
    from playwright.sync_api import sync_playwright

    from airush.tracking.store import experiment_url

    client = mlflow.MlflowClient(uri)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            context.add_init_script(CLOSED_ASSISTANT)
            page = context.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            check_landing(page, checks, base)
            for task, primary, plot in (
                ("abuse", "roc_auc", "roc.png"),
                ("music", "ndcg_at_10", "metrics_over_k.png"),
            ):
                experiment = client.get_experiment_by_name(task)
                runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
                single = next(
                    r
                    for r in runs
                    if "mlflow.parentRunId" not in r.data.tags and "airush.sweep" not in r.data.tags
                )
                check_runs_view(
                    page, checks, experiment_url(base, experiment.experiment_id), task, primary, single
                )
                check_run_page(page, checks, base, task, primary, single)
                check_logged_model_page(page, checks, base, client, task, primary, single)
                check_plot(page, checks, base, task, single, plot)
            check_sweep(page, checks, base, client)
        finally:
            browser.close()


ML = "workflowType=machine_learning"  # the sidebar's "Model training", as airush's links open it


def body_text(page) -> str:
    return page.inner_text("body")


def wait_for_text(page, text: str) -> bool:
    try:
        page.get_by_text(text, exact=False).first.wait_for(state="visible")
        return True
    except Exception:
        return False


def check_landing(page, checks: Checks, base: str) -> None:
    """What `airush ui` opens: /airush, then the experiments list; clicking an experiment there (MLflow's own
    link, no airush parameter) opens its runs table, not the GenAI overview."""
    page.goto(f"{base}/airush")
    listed = wait_for_text(page, "abuse")
    shot = checks.screenshot(page, "experiments_list")
    checks.check(
        "/airush opens MLflow's experiments list", listed and "#/experiments" in page.url, page.url, shot
    )
    page.get_by_role("link", name="abuse", exact=True).first.click()
    page.wait_for_url("**/experiments/*")
    shown = wait_for_text(page, "Run Name") or wait_for_text(page, "Run name")
    shot = checks.screenshot(page, "experiment_from_list")
    text = body_text(page)
    checks.check(
        "an experiment clicked in MLflow's list opens on the runs table",
        shown and "Token Usage" not in text and "Traces" not in text.split("Runs")[0][-200:],
        page.url,
        shot,
    )


def check_runs_view(page, checks: Checks, url: str, task: str, primary: str, run) -> None:
    """The link airush prints: the runs table of "Model training" with the metric, dataset and model columns."""
    page.goto(url)
    shown = wait_for_text(page, run.info.run_name[:20])
    wait_for_text(page, f"valid_{primary}")
    shot = checks.screenshot(page, f"{task}_runs_view")
    text = body_text(page)
    checks.check(
        f"{task}: the experiment opens on its runs table", shown and "/runs" in page.url, page.url, shot
    )
    checks.check(
        f"{task}: not the GenAI overview",
        "Token Usage" not in text and "workflowType=machine_learning" in page.url,
        page.url,
        shot,
    )
    headers = [primary, f"valid_{primary}"]
    checks.check(
        f"{task}: metric columns {', '.join(headers)} with the run's value",
        all(h in text for h in headers) and f"{run.data.metrics[primary]}"[:6] in text,
        f"{run.data.metrics[primary]}",
        shot,
    )
    dataset = run.inputs.dataset_inputs[0].dataset
    checks.check(
        f"{task}: Dataset column names {dataset.name} ({dataset.digest[:12]}…)",
        f"{dataset.name} ({dataset.digest[:12]}" in text,
        dataset.name,
        shot,
    )
    checks.check(
        f"{task}: Models column links the logged model", "Models" in text and "\nmodel" in text, "", shot
    )

    page.get_by_text(f"{dataset.name} ({dataset.digest[:12]}", exact=False).first.click()
    opened = wait_for_text(page, "fingerprint")
    shot = checks.screenshot(page, f"{task}_dataset")
    text = body_text(page)
    fingerprint = run.data.tags["data.fingerprint"]
    checks.check(
        f"{task}: the dataset's page shows its profile (rows, full fingerprint) and schema",
        opened and fingerprint[:40] in text.replace("\n", "") and "rows" in text,
        "",
        shot,
    )
    page.keyboard.press("Escape")


def check_run_page(page, checks: Checks, base: str, task: str, primary: str, run) -> None:
    experiment_id, run_id = run.info.experiment_id, run.info.run_id
    page.goto(f"{base}/#/experiments/{experiment_id}/runs/{run_id}?{ML}")
    wait_for_text(page, primary)
    if wait_for_text(page, "Logged models"):  # below the metrics and params: scrolled to
        page.get_by_text("Logged models").first.scroll_into_view_if_needed()
    shot = checks.screenshot(page, f"{task}_run_page")
    text = body_text(page)
    checks.check(f"{task}: the run page lists its logged model", "Logged models (1)" in text, "", shot)
    dataset = run.inputs.dataset_inputs[0].dataset
    checks.check(
        f"{task}: the run page lists its dataset", f"{dataset.name} ({dataset.digest[:12]}" in text, "", shot
    )
    checks.check(
        f"{task}: the run page shows its metrics and params",
        primary in text and "Parameters (" in text,
        "",
        shot,
    )


def check_logged_model_page(page, checks: Checks, base: str, client, task: str, primary: str, run) -> None:
    experiment_id, model_id = run.info.experiment_id, run.data.tags["airush.model_id"]
    linked = len(client.get_logged_model(model_id).metrics)  # the run's results, each linked to the model
    page.goto(f"{base}/#/experiments/{experiment_id}/models/{model_id}?{ML}")
    wait_for_text(page, "Datasets used")
    loaded = wait_for_text(page, f"Metrics ({linked})")
    wait_for_text(page, f"{run.data.metrics[primary]}"[:6])
    shot = checks.screenshot(page, f"{task}_logged_model")
    text = body_text(page)
    checks.check(f"{task}: the logged model is Ready", "Ready" in text, "", shot)
    checks.check(
        f"{task}: the logged model shows the run's {linked} metrics by dataset and its params",
        loaded
        and f"{primary}\n" in text
        and f"{run.data.metrics[primary]}"[:6] in text
        and "Parameters (" in text,
        "",
        shot,
    )
    dataset = run.inputs.dataset_inputs[0].dataset.name
    checks.check(
        f"{task}: the logged model names its source run and dataset",
        run.info.run_name[:20] in text and dataset in text,
        "",
        shot,
    )
    page.goto(f"{base}/#/experiments/{experiment_id}/models?{ML}")
    listed = wait_for_text(page, run.info.run_name[:20])
    shot = checks.screenshot(page, f"{task}_logged_models")
    checks.check(f"{task}: the experiment's Models tab lists the run's model", listed, "", shot)


def check_plot(page, checks: Checks, base: str, task: str, run, plot: str) -> None:
    experiment_id, run_id = run.info.experiment_id, run.info.run_id
    page.goto(f"{base}/#/experiments/{experiment_id}/runs/{run_id}/artifacts/evaluation/{plot}?{ML}")
    try:  # the artifact viewer draws the file as the page's one large image (its src is a blob: URL)
        handle = page.wait_for_function(
            "() => [...document.images].map(i => i.complete ? i.naturalWidth : 0).find(w => w >= 200)"
        )
        width, detail = int(handle.json_value()), ""
    except Exception as err:
        width, detail = 0, str(err).splitlines()[0]
    detail = detail or f"{width} px wide"
    shot = checks.screenshot(page, f"{task}_plot")
    checks.check(f"{task}: the evaluation plot evaluation/{plot} shows", width > 0, detail, shot)


def check_sweep(page, checks: Checks, base: str, client) -> None:
    experiment = client.get_experiment_by_name("music")
    (parent,) = client.search_runs([experiment.experiment_id], "tags.`airush.sweep` = 'parent'")
    children = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    checks.check("sweep: 3 children recorded", len(children) == 3, str(len(children)))
    from airush.tracking.store import experiment_url

    page.goto(experiment_url(base, experiment.experiment_id))
    wait_for_text(page, parent.info.run_name[:20])
    parent_row = page.locator("[role=row]", has_text=parent.info.run_name[:20]).first
    parent_row.locator("[col-id='attributes.`Run Name`'] button").first.click()  # the row's expander
    names = [child.info.run_name[:20] for child in children]
    shown = all(wait_for_text(page, name) for name in names)
    shot = checks.screenshot(page, "sweep_children")
    checks.check(
        "sweep: the parent's 3 children show under it in the runs table", shown, ", ".join(names), shot
    )


if __name__ == "__main__":
    sys.exit(main())

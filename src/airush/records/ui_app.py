"""MLflow's own tracking server app with one page of airush's, `/airush`, that opens the UI on MLflow's
"Machine learning" view: `airush ui` serves it through MLflow's supported plugin hook (the `mlflow.app`
entry point `airush`, `mlflow ui --app-name airush`).

Why a page: MLflow 3.17 decides which view an experiment opens on (GenAI overview or the runs table) from one
browser setting, the sidebar's workflow switch (`mlflow.workflowType_v1` in the UI's localStorage, GenAI
until the user switches), or a `workflowType` URL parameter; it reads no experiment tag or server setting
for it. That setting belongs to the UI's origin, so only a page served from the same host and port can
write it: `/airush` writes "machine_learning" once and goes on to the experiments (or to one
experiment's runs table). A user can switch back in the sidebar at any time; nothing else is changed.
"""

from __future__ import annotations

LANDING_PATH = "/airush"
WORKFLOW_SETTING = "mlflow.workflowType_v1"  # MLflow UI's localStorage key for the sidebar switch
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>airush · MLflow</title></head>
<body>
<p>Opening MLflow's runs view… (<a id="go" href="./#/experiments">continue</a>)</p>
<script>
try {{ localStorage.setItem("{setting}", JSON.stringify("machine_learning")); }} catch (e) {{}}
location.replace("{target}");
</script>
</body></html>
"""


def landing_target(experiment: str | None) -> str:
    """Where the page goes: an experiment's runs table (digits only, so the id cannot smuggle a script or
    another address into the page) or the experiments list."""
    if experiment and experiment.isdigit():
        return f"./#/experiments/{experiment}/runs?viewStateShareKey=airush&workflowType=machine_learning"
    return "./#/experiments?workflowType=machine_learning"


def landing_page(experiment: str | None = None) -> str:
    return PAGE.format(setting=WORKFLOW_SETTING, target=landing_target(experiment))


def create_app():
    """MLflow's ASGI app (what `mlflow ui` serves by default) with `/airush` added to its Flask app."""
    from flask import request
    from mlflow.server import app as flask_app
    from mlflow.server.fastapi_app import app

    if "airush_landing" not in flask_app.view_functions:
        flask_app.add_url_rule(
            LANDING_PATH, "airush_landing", lambda: landing_page(request.args.get("experiment"))
        )
    return app

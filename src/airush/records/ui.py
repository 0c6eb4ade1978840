"""`airush ui`: MLflow's UI on the store `airush` records to from here (MLFLOW_TRACKING_URI, else
./outputs/mlflow.db), not on a store chosen by where the airush repo happens to be.

A database store is served with `mlflow ui --app-name airush` on loopback: MLflow's own app plus a landing
page, `/airush`, that opens the UI on its Machine learning view (`airush.records.ui_app`); a tracking server already has its UI, so its
address is printed instead. The store is never created here: a mistyped path must not open an empty UI.
"""

from __future__ import annotations

import os
import shutil
import sys
from urllib.parse import urlsplit

from airush.errors import UserError
from airush.inference.serve import mlflow_server_environment
from airush.records.runs import OneLineParser, default_tracking_uri, open_store
from airush.records.ui_app import LANDING_PATH
from airush.tracking.store import redact_uri


def main(argv: list[str]) -> int:
    parser = OneLineParser(prog="airush ui", description="Open MLflow's UI on the store airush records to.")
    parser.add_tracking_uri()
    parser.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    args = parser.parse_args(argv)
    uri = args.tracking_uri or default_tracking_uri()
    if urlsplit(uri).scheme in ("http", "https"):
        print(f"airush: {redact_uri(uri)} is a tracking server: its UI is at that address")
        return 0
    open_store(uri)  # refuses a store that does not exist, in one line
    beside_python = os.path.join(os.path.dirname(sys.executable), "mlflow")  # this venv's, activated or not
    mlflow = beside_python if os.path.exists(beside_python) else shutil.which("mlflow") or beside_python
    if not os.path.exists(mlflow):
        raise UserError("airush ui needs MLflow's UI: pip install mlflow")
    command = [mlflow, "ui", "--backend-store-uri", uri, "--host", args.host, "--port", str(args.port)]
    command += ["--app-name", "airush"]  # MLflow's app plus the /airush landing page (airush.records.ui_app)
    address = f"http://{args.host}:{args.port}"
    print(f"airush: MLflow UI on {redact_uri(uri)}: open {address}{LANDING_PATH}", flush=True)
    print(
        f"airush: (it opens on MLflow's Machine learning view; one experiment: {address}{LANDING_PATH}"
        "?experiment=ID)",
        flush=True,
    )
    if args.dry_run:
        print(" ".join(redact_uri(part) for part in command))
        return 0
    os.execve(mlflow, command, mlflow_server_environment())  # the UI replaces this process: Ctrl-C stops it

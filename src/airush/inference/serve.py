"""`airush serve MODEL`: MLflow's scoring server (`mlflow models serve`) on a verified copy of a run's model.

The model is downloaded and checked as `airush predict` checks it (flavor and sha256, `trained.py`), then
served from that local copy with the current environment (`--env-manager local`), so what answers is exactly
what was verified; the copy is removed when the server stops. POST to `/invocations` what the run's
`mlflow.pyfunc.load_model(...).predict` takes (music: `{"dataframe_split": {"columns": ["user"], "data":
[[id], ...]}}`; abuse: session rows or raw events), with `params` such as `{"k": 20}` where the model has them.
"""

from __future__ import annotations

import os
import subprocess
import sys

from airush.errors import EnvironmentFailure, UserError


def main(argv: list[str]) -> int:
    from airush.records.runs import OneLineParser, default_tracking_uri

    parser = OneLineParser(
        prog="airush serve",
        description="Serve a recorded run's model over HTTP (MLflow's /invocations) after verifying it.",
    )
    parser.add_model()
    parser.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    parser.add_argument("--port", type=int, default=5001, help="default 5001")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes (default 1)")
    parser.add_tracking_uri()
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port}: a TCP port is 1-65535")
    if args.workers < 1:
        raise UserError(f"--workers {args.workers}: at least 1")
    from airush.inference.trained import trained_model

    with trained_model(args.tracking_uri or default_tracking_uri(), args.model) as trained:
        print(
            f"airush: serving run {trained.run_id}'s {trained.task} model (sha256 {trained.sha256[:12]}) "
            f"at http://{args.host}:{args.port}/invocations",
            file=sys.stderr,
            flush=True,
        )
        return serve(str(trained.model_dir), args.host, args.port, args.workers)


def serve_command(model_dir: str, host: str, port: int, workers: int = 1) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        model_dir,
        "--env-manager",
        "local",
        "-h",
        host,
        "-p",
        str(port),
        "-w",
        str(workers),
    ]


def mlflow_server_environment() -> dict[str, str]:
    """This environment with this interpreter's `bin` first on PATH: `mlflow models serve` and `mlflow ui` start
    `uvicorn` by name, which a venv that was never activated (`.venv/bin/airush serve ...`) would not find, or
    would find in another Python."""
    bin_dir = os.path.dirname(sys.executable)  # not resolved: a venv's python is a symlink out of the venv
    path = os.environ.get("PATH", "")
    return os.environ | {"PATH": os.pathsep.join([bin_dir, path]) if path else bin_dir}


def serve(model_dir: str, host: str, port: int, workers: int = 1) -> int:
    """Run the server until it stops (or this process is interrupted: then it is stopped too)."""
    try:
        server = subprocess.Popen(
            serve_command(model_dir, host, port, workers),
            stdin=subprocess.DEVNULL,
            env=mlflow_server_environment(),
        )
    except OSError as err:
        raise EnvironmentFailure(f"cannot start mlflow models serve: {err}") from None
    try:
        code = server.wait()
    except BaseException:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        raise
    if code != 0:
        raise EnvironmentFailure(f"mlflow models serve exited with code {code}")
    return 0

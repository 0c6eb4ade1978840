#!/usr/bin/env bash
# The abuse detector on each feature set x 3 seeds (synthetic data), jobs in parallel, one MLflow parent run.
# Rerunning it resumes: jobs whose identical config already finished are reused (add resume=false to retrain).
#
#   scripts/sweep_abuse.sh                 # then: airush leaderboard --task abuse --all
#   scripts/sweep_abuse.sh model=seq       # any extra overrides
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
AIRUSH="${AIRUSH:-$(command -v airush || echo "${ROOT}/.venv/bin/airush")}"
exec "$AIRUSH" -m task=abuse \
  features=all,keyboard,mouse \
  seed=1,2,3 \
  hydra/launcher=joblib hydra.launcher.n_jobs="${N_JOBS:-2}" \
  "$@"

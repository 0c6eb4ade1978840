#!/usr/bin/env bash
# Every music model x 3 seeds on the built-in synthetic data, jobs in parallel, one MLflow parent run.
# Rerunning it resumes: jobs whose identical config already finished are reused (add resume=false to retrain).
#
#   scripts/sweep_music.sh                 # then: airush leaderboard --task music
#   scripts/sweep_music.sh data=lastfm data.root=/path/to/lastfm-hetrec2k    # any extra overrides
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
AIRUSH="${AIRUSH:-$(command -v airush || echo "${ROOT}/.venv/bin/airush")}"
exec "$AIRUSH" -m task=music \
  model=pop,itemknn,content,als,bpr,ease \
  seed=1,2,3 \
  hydra/launcher=joblib hydra.launcher.n_jobs="${N_JOBS:-2}" \
  "$@"

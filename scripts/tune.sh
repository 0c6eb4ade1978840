#!/usr/bin/env bash
# Hyperparameter search with Optuna for one search space in conf/hparams_search/, optimising the task's
# primary metric on valid. The study is stored (outputs/optuna.db), so rerunning continues it.
#
#   scripts/tune.sh music_als                       # 20 trials (the space's default)
#   scripts/tune.sh abuse_lgbm hydra.sweeper.n_trials=40
set -euo pipefail
if [[ $# -lt 1 || "$1" == -h || "$1" == --help ]]; then
  echo "usage: scripts/tune.sh SPACE [overrides...]; spaces:" \
    $(ls "$(dirname "${BASH_SOURCE[0]}")/../conf/hparams_search" | sed 's/\.yaml$//') >&2
  exit 2
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
AIRUSH="${AIRUSH:-$(command -v airush || echo "${ROOT}/.venv/bin/airush")}"
space="$1"; shift
exec "$AIRUSH" -m "hparams_search=${space}" "$@"

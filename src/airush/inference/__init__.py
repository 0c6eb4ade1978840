"""Using a trained run's model on new data: `airush predict` (files of predictions) and `airush serve`
(MLflow's scoring server), both on a verified local copy of the run's MLflow Model (`trained.py`)."""

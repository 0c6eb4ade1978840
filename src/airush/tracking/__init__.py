"""The MLflow record: the store, what each run records, sweeps, and a run's model as an MLflow Model."""

"""airush: a local NSML. Hydra configs in, trained models and an MLflow record out."""

__version__ = "0.1.0"

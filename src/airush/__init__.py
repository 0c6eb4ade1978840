"""airush: a local NSML. Hydra configs in, trained models and an MLflow record out.

Python API (a notebook, a script): `cfg = airush.compose(["task=music", "model=ease"])`, then
`metrics = airush.run(cfg)`.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "compose", "run"]


def __getattr__(name: str):
    # lazy, so `airush --help` does not pay for Hydra's compose API or the training code
    if name in ("compose", "run"):
        from airush import api

        return getattr(api, name)
    raise AttributeError(f"module 'airush' has no attribute {name!r}")

"""Hydra configs for airush, shipped inside the package as ``airush.conf`` (see pyproject's package-dir)."""

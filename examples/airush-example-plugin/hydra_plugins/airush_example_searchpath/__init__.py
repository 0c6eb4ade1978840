"""Puts `pkg://airush_example.conf` on Hydra's config search path once this package is installed, so
`airush model=sklearn_logreg` finds the example's configs from any directory (see searchpath.py)."""

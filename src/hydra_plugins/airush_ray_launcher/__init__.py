"""`hydra/launcher=ray`: each sweep job a Ray task on a running Ray cluster (see launcher.py). Lives under
Hydra's `hydra_plugins` namespace because Hydra finds launchers there only."""

"""`hydra/sweeper=airush_optuna`: Optuna HPO for `airush -m` (see sweeper.py). Lives under Hydra's
`hydra_plugins` namespace because Hydra instantiates sweepers from there only."""

"""The example's configs (model/, features/, hparams_search/): `pkg://airush_example.conf` on Hydra's search
path, or `airush --config-dir <this folder>`."""

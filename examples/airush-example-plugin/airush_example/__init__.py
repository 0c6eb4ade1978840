"""An out-of-tree airush plugin: an abuse detector, a music recommender and an abuse feature set of one's own,
each one module here and one yaml under `conf/`. airush finds the yaml files through Hydra's search path
(`airush --config-dir airush_example/conf`, or installed: `hydra_plugins/airush_example_searchpath`)."""

"""Hydra discovers every `SearchPathPlugin` under the `hydra_plugins` namespace package (which, being a
namespace shared by every installed plugin, has no __init__.py) and lets it extend the config search path."""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class AirushExampleSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        # appended: airush's own configs still win on a name clash
        search_path.append(provider="airush-example", path="pkg://airush_example.conf")

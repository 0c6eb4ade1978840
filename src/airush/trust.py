"""Which code a recorded run or model may make airush import: airush's own, and packages the user trusts.

A recorded config, a model folder or a run from a shared store is input anyone with write access to that store
could have edited. What it names (`_target_`s, a model class, its serving wrapper) is imported only from the
allow-list: the `airush` package itself and the top-level packages listed in AIRUSH_TRUSTED_PACKAGES
(comma-separated, e.g. `my_airush_plugin,team_models`), the user's own plugins.
"""

from __future__ import annotations

import os

from airush.errors import UserError

TRUSTED_ENV = "AIRUSH_TRUSTED_PACKAGES"
BUILT_IN = ("airush",)


def trusted_packages() -> tuple[str, ...]:
    extra = [p.strip() for p in os.environ.get(TRUSTED_ENV, "").split(",") if p.strip()]
    return (*BUILT_IN, *extra)


def is_trusted(path: str) -> bool:
    """`path` (a dotted class or function path) lies inside a trusted package."""
    top = str(path).split(".", 1)[0]
    return top in trusted_packages()


def check_trusted(path: str, what: str) -> None:
    if not is_trusted(path):
        raise UserError(
            f"{what} names '{path}', outside the packages airush trusts ({', '.join(trusted_packages())}); "
            f"if it is your own plugin, add its package to {TRUSTED_ENV}"
        )

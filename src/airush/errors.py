"""Mistakes a user can fix. The CLI prints them as one line and exits 2; anything else is our bug."""


class UserError(Exception):
    """A problem with the user's config or data, explained in one line."""

    exit_code = 2


class SweepFailed(UserError):
    """A sweep ran but produced nothing to choose from (every trial failed): one line, exit 1."""

    exit_code = 1


class ConfigError(UserError):
    """The composed config asks for something that cannot run."""


class DataError(UserError):
    """Input data does not match its documented schema.

    The message names the file, row and column, and what was expected.
    """

    def __init__(
        self, message: str, *, path: str | None = None, row: int | None = None, column: str | None = None
    ):
        where = ", ".join(
            part
            for part in (
                str(path) if path is not None else None,
                f"row {row}" if row is not None else None,
                f"column '{column}'" if column is not None else None,
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)

"""The one exception type whose message is meant for the user."""


class ClickfanError(Exception):
    """A failure the user can act on.

    The CLI prints ``str(error)`` (what failed and what to do) and exits with
    ``exit_code``, never a traceback.
    """

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

"""Errors the user can cause; the CLI prints them as one line, never as a traceback."""

__all__ = ["UserError", "as_user_error"]


class UserError(Exception):
    """Bad input from the user: a name, a parameter, a file. ``exit_code`` is the CLI status."""

    exit_code = 2


class as_user_error:
    """Context manager turning the given exception types into :class:`UserError`.

    Components raise ``TypeError``/``ValueError`` naming the bad parameter; the registry raises
    ``LookupError`` for unknown names. At the CLI boundary all of those are the user's input.
    """

    def __init__(self, *types):
        self._types = types or (TypeError, ValueError, LookupError)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and issubclass(exc_type, self._types):
            message = exc.args[0] if exc.args else str(exc)
            raise UserError(message) from exc
        return False

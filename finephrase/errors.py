"""Errors that end a run with one clear line (no traceback wall)."""


class FinephraseError(Exception):
    """A run-level problem: the CLI prints `error: <message>` and exits 2."""


class UsageError(FinephraseError):
    """Bad arguments, unknown names, unusable inputs: fix the command and rerun."""


class ServerError(FinephraseError):
    """The model server could not be started or reached."""

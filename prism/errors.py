"""Errors Prism raises on purpose, each naming the input and the problem."""


class PrismError(Exception):
    """Base class for errors that are shown to the user as a clear message."""


class ModelMissingError(PrismError):
    """A model package is not installed, or its weights do not match the expected checksum."""


class InputError(PrismError):
    """An input (file, catalog line, query) is unusable; the message says which and why."""


class UnknownUserError(InputError):
    """A user with no ratings in the ratings file: new to Prism, or a wrong id."""


class CheckpointError(PrismError):
    """A fusion checkpoint file is missing, unreadable, or not a Prism fusion checkpoint."""


class Cancelled(PrismError):
    """Work was stopped on request (a stopping server cancelled it) before it stored anything."""


class NoCheckpointError(PrismError):
    """No fusion checkpoint is in service yet."""

"""User-facing errors: the CLI prints their message and exits non-zero, without a traceback."""


class TransfertuneError(Exception):
    """Bad input from the user (parameters, data files, spaces). The message says what to fix."""


class ConfigurationError(TransfertuneError):
    """A parameter or space file is malformed or names something that does not exist."""


class MissingDependencyError(ConfigurationError):
    """A method needs an optional package that is not installed; the message names the extra."""


class DataValidationError(TransfertuneError):
    """A data file breaks the catalog layout; the message names the file, column and a row."""


class ProtocolError(TransfertuneError):
    """A call that breaks the ask/tell protocol: an unknown or finished trial, an epoch out of
    order, a missing or non-finite metric, a config outside the search space."""


class StoreError(TransfertuneError):
    """A tuning store folder that cannot be used: locked by another process, written by other
    settings, or not replayable."""


class EpisodesFailed(TransfertuneError):
    """Episodes of a benchmark raised: the message names them (method, pair, repetition, error);
    the other episodes' rows and the failures table are written before it is raised."""

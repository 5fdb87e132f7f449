"""Exception hierarchy.

``ToolkitError`` and its subclasses are *user-facing*: their message is one line that says what is wrong and what to
check next, and the CLI prints it without a traceback. Anything else reaching the CLI is a bug and is reported with
its traceback.
"""


class ToolkitError(Exception):
    """A problem the user can fix (bad input, bad option, missing directory)."""


class ConfigError(ToolkitError):
    """An unknown option or hyperparameter, or a value that cannot be parsed."""


class ContractError(ToolkitError):
    """The SageMaker /opt/ml layout or an expected directory is missing or malformed."""


class DataError(ToolkitError):
    """The data set is empty, inconsistent or too damaged to use."""


class OutputError(ToolkitError):
    """The output cannot be written: a file where a directory should be, no permission, a full disk."""


class VideoDecodeError(ToolkitError):
    """One video cannot be decoded; processing skips it and records the reason."""

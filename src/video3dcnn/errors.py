"""Exception hierarchy.

``ToolkitError`` and its subclasses are *user-facing*: their message is one line that says what is wrong and what to
check next, and the CLI prints it without a traceback. Anything else reaching the CLI is a bug and is reported with
its traceback.
"""


class ToolkitError(Exception):
    """A problem the user can fix (bad input, bad option, missing directory)."""


class ConfigError(ToolkitError):
    """An unknown option or hyperparameter, or a value that cannot be parsed."""


class UnknownOptionError(ConfigError):
    """A name that no option claims; ``name`` and ``valid`` (the accepted names) let a caller word its own message."""

    def __init__(self, name: str, valid: list[str]) -> None:
        self.name, self.valid = name, list(valid)
        super().__init__(f"unknown option '{name}'; valid options are: {', '.join(self.valid)}")


class ContractError(ToolkitError):
    """The SageMaker /opt/ml layout or an expected directory is missing or malformed."""


class DataError(ToolkitError):
    """The data set is empty, inconsistent or too damaged to use."""


class ClusterError(ToolkitError):
    """Another host of a multi-host job never joined, died or stopped responding."""


class OutputError(ToolkitError):
    """The output cannot be written: a file where a directory should be, no permission, a full disk."""


class VideoDecodeError(ToolkitError):
    """One video cannot be decoded; processing skips it and records the reason."""

"""The one exception family a user can cause.

Pages show these with ``st.error`` and carry on; the CLI prints them on one line and exits 2.
Anything else escaping the package is a bug, not a user mistake.
"""


class ScratchnetError(Exception):
    """A problem the user can fix; ``str(err)`` is written for them."""


class DataError(ScratchnetError):
    """A data file, upload or image that cannot be used as it is."""


class EmptyImageError(DataError):
    """An image or canvas with (almost) no ink: nothing to classify."""


class ModelFileError(ScratchnetError):
    """A model file that is not ours, is corrupt, or does not fit together."""


class ConfigError(ScratchnetError):
    """A hyper-parameter or option value that cannot work."""

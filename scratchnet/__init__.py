"""scratchnet: a neural network written from scratch in NumPy, trained on MNIST."""

from scratchnet.errors import (
    ConfigError,
    DataError,
    EmptyImageError,
    ModelFileError,
    ScratchnetError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "EmptyImageError",
    "ModelFileError",
    "ScratchnetError",
    "__version__",
]

"""seedmmo: a multiverse orchestrator for independently written games."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("seedmmo")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]

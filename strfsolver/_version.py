"""The version of strfsolver, in a module of its own: lower modules import it, not the root package."""

__version__ = "0.1.0"

"""opsctl: a command-line client of the ApiOps HTTP API (never its database)."""

__version__ = "0.1.0"

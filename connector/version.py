"""The package's version: its one declaration (``pyproject.toml`` and ``connector`` read it)."""

__version__ = "0.1.0"

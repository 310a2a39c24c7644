"""Clarion: a declarative, config-as-code notification compiler."""

__version__ = "0.1.0"

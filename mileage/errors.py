"""Errors that the config loader and the engines both raise. A leaf module (it imports nothing of mileage), so an
engine can refuse a config without importing mileage.config, and mileage.config can ask the engines."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration problem; the message starts with the key path or file it concerns."""

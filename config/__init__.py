"""Configuration: one typed settings object."""

from config.settings import Settings, describe_error, load_settings

__all__ = ["Settings", "describe_error", "load_settings"]

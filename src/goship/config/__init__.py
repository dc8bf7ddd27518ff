"""goship.toml: model, loading, merging, showing."""

from goship.config.load import Environment, Project, find_config, load, parse
from goship.config.model import Config

__all__ = ["Config", "Environment", "Project", "find_config", "load", "parse"]

"""The version of benchfab, in the bottom layer: the package root, the CLI, the run metadata and
imports record it."""

__version__ = "0.1.0"

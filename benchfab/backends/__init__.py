"""Backends place a test's ranks somewhere and watch them. ``local`` is the embedded default."""

from .base import Backend, TestOutcome

__all__ = ["Backend", "TestOutcome"]

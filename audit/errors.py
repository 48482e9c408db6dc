"""Why an audit could not run."""

from __future__ import annotations

__all__ = ["AuditError"]


class AuditError(Exception):
    """The audit could not run (nothing to read, bad arguments)."""

"""cuagent (branch mock: TEMPORARY minimal package init; main's version wins on merge)."""
from cuagent.mock import MockDevice

__all__ = ["MockDevice"]

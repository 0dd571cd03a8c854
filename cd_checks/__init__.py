"""cd-checks: continuous deployment for IT operations."""

__version__ = "0.2.0"

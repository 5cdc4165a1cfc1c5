"""Data sources beyond the built-in ones, one module per dataset; importing a module registers its source."""

from fairbench.sources import utkface  # noqa: F401

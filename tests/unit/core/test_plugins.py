"""Plugins: the harness reaches methods (and their importers) only through the `fairbench.plugins` entry point."""

from __future__ import annotations

from fairbench import plugins
from fairbench.methods import IMPORTERS
from fairbench.plugins import load_plugins


def test_the_checkout_declares_the_reference_methods_as_its_plugin() -> None:
    """Without installed metadata, the entry points come from the checkout's own pyproject.toml."""
    assert plugins._checkout_plugins() == ["baselines"]


def test_the_stylegan2_importer_is_registered_by_the_plugin() -> None:
    from baselines.stylegan2_import import ImportOptions, import_stylegan2

    load_plugins()
    importer = IMPORTERS.get("stylegan2")
    assert importer.run is import_stylegan2
    assert importer.options(truncation_psi=0.7, name="x") == ImportOptions(truncation_psi=0.7, name="x")

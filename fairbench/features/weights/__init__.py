"""Pinned domain feature networks for the FID family (safetensors) and their cards (JSON), shipped with the package."""

"""Pinned judge weights (safetensors) and their held-out evaluation (JSON), shipped with the package."""

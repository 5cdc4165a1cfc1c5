"""Reference methods for fairbench. Importing this package registers them with the harness."""

from baselines import cdcgan, groupcond, mbstd, nets, rebalance, repfair, stylegan2, stylegan2_import, vanilla  # noqa: F401  (registration side effects)

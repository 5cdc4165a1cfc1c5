"""Dataset sources, one module per dataset; importing this package registers them all in `SOURCES`."""

from fairbench.sources.base import SOURCES, DataIdentity, DataSource, RawPart, content_sha256

# One line per source module (each registers itself).
from fairbench.sources import cifar10  # noqa: E402,F401
from fairbench.sources import digits  # noqa: E402,F401
from fairbench.sources import ffhq  # noqa: E402,F401
from fairbench.sources import mnist  # noqa: E402,F401
from fairbench.sources import svhn  # noqa: E402,F401
from fairbench.sources import utkface  # noqa: E402,F401

__all__ = ["SOURCES", "DataIdentity", "DataSource", "RawPart", "content_sha256"]

"""Re-export of `steering.lazy.lazy_exports`, the one lazy-import helper of the project."""

from steering.lazy import lazy_exports

__all__ = ["lazy_exports"]

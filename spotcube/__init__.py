"""spotcube operator CLI: plan, bake, submit, watch and tear down spot processing runs."""

from payload import __version__

__all__ = ["__version__"]

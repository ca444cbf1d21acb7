"""One module per ``spotcube`` subcommand, each exposing ``register(subparsers)``.

The CLI lists exactly the modules present here, so a subcommand exists in ``--help`` only
when its implementation does.
"""

"""One module per ``python -m payload`` subcommand, each exposing ``register(subparsers)``."""

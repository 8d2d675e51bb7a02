"""One module per ``dnal`` subcommand; each defines ``register(subparsers)``."""

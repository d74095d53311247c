"""CLI subcommands contributed by modules: each submodule defines ``register(subparsers)``.

``dnnguide.cli`` imports every submodule here in name order and calls its ``register``,
which adds one subcommand and sets ``func`` (called with the parsed args) on it.
"""

"""CLI subcommands contributed by modules: each submodule defines ``register(subparsers)``.

``dnnguide.cli`` imports every submodule here in name order and calls its ``register``,
which adds one subcommand (``subparsers.add_parser(...)``) and sets ``func`` on it with
``parser.set_defaults(func=...)``. ``func(args, overrides)`` returns an exit code;
``overrides`` is the dict of ``--field value`` config overrides when the parser also sets
``accepts_overrides=True``, else empty. Keep imports of heavy modules inside ``func`` so
``dnnguide --help`` stays fast.
"""

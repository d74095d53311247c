"""``dnnguide compress RUN_DIR``: prune, fold batch norm, quantize and export a trained run.

Writes every artefact, the report (``report.csv``) and its plot (``size_vs_accuracy.png``)
into a fresh folder ``RUN_DIR/compressed/<UTC timestamp>-<what>/``: a second call never
overwrites the first.

Example::

    dnnguide compress runs/20260101T000000Z-sparse --prune 0.8 --quantize int8 --fold-bn
    dnnguide compress runs/20260101T000000Z-low_latency --quantize int8 --format onnx
"""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compress", help="prune / quantize / fold batch norm / export a trained run",
        description="Compress a run's model and measure every variant (size, gzip size, "
                    "sparsity, test accuracy or RMSE, latency) side by side; artefacts and the "
                    "report go to a fresh RUN_DIR/compressed/<timestamp>-.../ folder.")
    p.add_argument("run_dir", help="a run directory written by `dnnguide train` / dnnguide.fit")
    p.add_argument("--prune", type=float, metavar="SPARSITY",
                   help="magnitude-prune the Dense kernels to this sparsity, e.g. 0.8 (TF-MOT)")
    p.add_argument("--prune-epochs", type=int, default=2, help="pruning fine-tuning epochs")
    p.add_argument("--quantize", action="append", choices=["int8", "float16", "dynamic"],
                   help="TFLite post-training quantization (repeat for several)")
    p.add_argument("--qat", action="store_true", help="also quantization-aware training (int8)")
    p.add_argument("--fold-bn", action="store_true", help="fold batch norm into the Dense layers")
    p.add_argument("--format", choices=["litert", "onnx"], default="litert",
                   help="litert (default): the .tflite files; onnx: also model.onnx of the last "
                        "float Keras variant (pruned / folded)")
    p.add_argument("--repeats", type=int, default=20, help="timed single-sample predictions")
    p.set_defaults(func=_run)


def _run(args, _overrides) -> int:
    import pandas as pd

    from dnnguide.config import check_range
    from dnnguide.runs import atomic_write_text, new_run_dir, open_run

    # Checked before the (slow) model and data loading.
    if args.prune is not None:
        check_range("prune", args.prune, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    check_range("prune_epochs", args.prune_epochs, 1, integer=True)
    check_range("repeats", args.repeats, 1, integer=True)
    if not (args.prune or args.quantize or args.fold_bn or args.qat or args.format == "onnx"):
        raise SystemExit("dnnguide compress: nothing to do; give --prune, --quantize, --fold-bn, "
                         "--qat or --format onnx.")
    run = open_run(args.run_dir)
    members = run.config.nets
    if members > 1 and (args.prune or args.fold_bn or args.qat):
        raise SystemExit(f"dnnguide compress: run {run.path} is an ensemble of {members} nets; "
                         "pruning, batch-norm folding and quantization-aware training work on "
                         "one net. Compress one member (a run of its own under "
                         f"{run.path / 'members'}), or only --quantize / --format the ensemble.")
    model, data = run.model(), run.dataset()
    model.dnnguide_task = run.info.get("task") or data.task

    from dnnguide.compress.exporting import export
    from dnnguide.compress.report import compress, plot_size_vs_accuracy

    result = compress(model, data, prune=args.prune, quantize=args.quantize or (),
                      fold_bn=args.fold_bn, qat=args.qat, prune_epochs=args.prune_epochs,
                      repeats=args.repeats)
    what = "-".join(filter(None, [f"prune{args.prune:g}" if args.prune else "",
                                  *(args.quantize or ()), "qat" if args.qat else "",
                                  "foldbn" if args.fold_bn else "", args.format]))
    # a fresh folder inside the run: nothing overwritten
    out = new_run_dir(run.path / "compressed", what, inside_run=True)
    result.save(out)
    if args.format == "onnx":  # the last float Keras variant (pruned, folded) as ONNX too
        export(list(result.keras_models.values())[-1], out / "model.onnx", format="onnx")
    report = result.report
    atomic_write_text(out / "report.csv", report.to_csv(index=False))
    plot_size_vs_accuracy(report, out / "plots" / "size_vs_accuracy.png")
    with pd.option_context("display.width", 160, "display.float_format", "{:.4g}".format):
        print(report.to_string(index=False))
    print(f"artefacts: {out}")
    return 0

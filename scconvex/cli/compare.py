"""``scconvex compare``: trained features against the certified optimum (wired into the CLI
by :mod:`scconvex.cli.commands`)."""

from __future__ import annotations

import sys
import time

from ..errors import InvalidInputError


def add_compare(sub) -> None:
    """Add ``compare`` to the subparsers of the main parser."""
    p = sub.add_parser(
        "compare", help="compare trained features with the certified optimal geometry",
        description="Loss, certified optimality gap, collapse (NC1) and class-mean cosines "
        "of trained features against the certified optimum for their class counts and "
        "temperature, and against the simplex ETF. Several files, or a folder, are "
        "checkpoints of one run: one row each.")
    p.add_argument("--features", required=True, nargs="+", metavar="F",
                   help=".npy (memory-mapped, read in blocks) or .npz (arrays 'features', "
                        "optionally 'labels' and 'class_names'); several files or a folder: "
                        "checkpoints of one run")
    p.add_argument("--labels", metavar="FILE",
                   help="labels: .npy, or text with one label per line (default: the "
                        "'labels' array of an .npz)")
    p.add_argument("--class-names", metavar="FILE",
                   help="class names, one per line: integer label i is line i, other "
                        "labels must be among them")
    p.add_argument("--tau", type=float, required=True, help="temperature of the training")
    p.add_argument("--loss", choices=("sc", "negatives-only"), default="sc",
                   help="the loss the network was trained with (default sc)")
    p.add_argument("--relu", action="store_true",
                   help="ReLU features (>= 0): compare with the doubly non-negative optimum")
    g = p.add_argument_group("mini-batch training")
    g.add_argument("--batch-size", type=int, default=None, metavar="B",
                   help="the network saw random batches of B samples: compare with the "
                        "optimum of the SC loss summed over --epochs random partitions")
    g.add_argument("--epochs", type=int, default=None, metavar="E",
                   help="epochs of random batches in that loss (default 1)")
    g.add_argument("--batch-seed", type=int, default=None, metavar="S",
                   help="seed of the random batches (default 0)")
    p.add_argument("--precision", choices=("float32", "float64"), default="float32",
                   help="working precision of the features' loss (default float32; its "
                        "error bound is printed)")
    p.add_argument("--threads", type=int, default=2,
                   help="threads for the features' loss (default 2)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", metavar="FILE.json",
                   help="also write the JSON (for --kind trajectory of scconvex plot)")
    p.add_argument("--certificate", metavar="FILE",
                   help="write the certified optimum used, a certificate for scconvex verify")


def _labels_and_names(args, first_labels, first_names):
    from ..problem.inputs import read_labels
    from ..studies.compare import read_class_names

    labels = read_labels(args.labels, "--labels") if args.labels else first_labels
    if labels is None:
        raise InvalidInputError("give --labels (the features file has no 'labels' array)")
    names = read_class_names(args.class_names) if args.class_names else first_names
    return labels, names


class _Progress:
    """``compare: 40%`` on one stderr line, on a terminal only."""

    def __init__(self, enabled: bool, label: str) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.label = label
        self.last = 0.0

    def __call__(self, fraction: float) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.last < 0.2 and fraction < 1):
            return
        self.last = now
        sys.stderr.write(f"\r{self.label} {100 * fraction:5.1f}%")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * (len(self.label) + 8) + "\r")
            sys.stderr.flush()


def _cmd_compare(args) -> int:
    from ..files import check_writable, dumps, write_json
    from ..studies.compare import (
        checkpoint_files,
        compare,
        format_comparison,
        format_trajectory,
        load_features,
        trajectory,
    )

    for target in (args.certificate, args.out):
        if target is not None:
            check_writable(target)
    files = checkpoint_files(args.features)
    loaded = [load_features(f) for f in files]
    labels, names = _labels_and_names(args, loaded[0][1], loaded[0][2])
    options = {"class_names": names, "loss": args.loss, "relu": args.relu,
               "precision": args.precision, "threads": args.threads}
    if args.batch_size is not None:
        options.update(batch_size=args.batch_size, epochs=args.epochs or 1,
                       batch_seed=args.batch_seed or 0)
    elif args.epochs is not None or args.batch_seed is not None:
        raise InvalidInputError("--epochs and --batch-seed need --batch-size")
    show = not args.json
    if len(files) == 1:
        progress = _Progress(show, "compare: loss of the features")
        result = compare(loaded[0][0], labels, args.tau, progress=progress, **options)
        progress.done()
        data = result.to_dict()
        text = format_comparison(result)
        solved = result.result
    else:
        import os

        progress = _Progress(show, "compare: checkpoints")
        traj = trajectory([f for f, _, _ in loaded], labels, args.tau,
                          names=[os.path.basename(f) for f in files],
                          progress=lambda i, m: progress(i / m), **options)
        progress.done()
        data = traj.to_dict()
        text = format_trajectory(traj)
        solved = traj.comparisons[0].result
    failures = []
    for target, doc in ((args.certificate, solved.to_dict() if args.certificate else None),
                        (args.out, data)):
        if target is None:
            continue
        try:
            write_json(target, doc)
        except OSError as exc:
            failures.append(f"not written to {target}: {exc.strerror}")
    print(dumps(data) if args.json else text)
    sys.stdout.flush()
    if solved.status != "optimal":
        failures.append(f"the optimum is not certified ({solved.status}): {solved.message}")
    if failures:
        print("scconvex: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


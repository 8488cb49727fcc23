"""Train a small MLP with SupCon on STEP-imbalanced digits and compare it with the optimum.

Usage::

    python examples/compare_network.py                     # R = 1, 5, 20; about 2 minutes
    python examples/compare_network.py --quick             # a reduced run, a few seconds
    python examples/compare_network.py --out figs --json   # figures and a JSON summary

Needs scikit-learn (its ``load_digits`` ships the data: 1797 8x8 images of 10 digits) and,
for figures, matplotlib: ``pip install -e ".[examples]"``.

For each imbalance ratio R the script keeps 160 images of each of the digits 0-4 and
160 / R of each of 5-9 (STEP imbalance, ``k = 10``, ``rho = 0.5``), trains an
over-parameterised two-hidden-layer ReLU MLP (64 -> W -> W -> d, linear output) with the
supervised contrastive loss at ``tau = 0.1``, full batch, with Adam, and compares the
normalised output features with the certified optimum for the same counts
(:func:`scconvex.studies.compare.compare`): optimality gap, class-mean cosines against the
optimum and against the simplex ETF, collapse. With ``--batch-size B`` it also trains with
reshuffled mini-batches of ``B`` samples (the last one smaller) and compares those features
with the same full-batch optimum.

The trainer is plain numpy: the SC loss and its gradient with respect to the unit
features come from :func:`scconvex.losses.sc.sc_loss_grad`; the rest is the chain rule
through the normalisation and the layers. ``docs/compare.md`` shows the same in PyTorch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass

import numpy as np

from scconvex.errors import InvalidInputError
from scconvex.losses.sc import sc_loss_grad
from scconvex.studies.compare import compare
from scconvex.threads import blas_threads

TAU = 0.1
N_MAJ = 160


# ---------------------------------------------------------------------- data
def step_digits(R: int, *, n_maj: int = N_MAJ, seed: int = 0):
    """STEP-imbalanced digits: ``n_maj`` images of 0-4, ``n_maj / R`` of 5-9, shuffled.

    Pixels are scaled to [0, 1]. Returns ``X`` (n, 64) and ``y`` (n,).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("this example needs scikit-learn: pip install -e \".[examples]\"")
    X, y = load_digits(return_X_y=True)
    if n_maj % R:
        raise InvalidInputError(f"R = {R} must divide {n_maj}")
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(y == c))
        keep.append(idx[: n_maj if c < 5 else n_maj // R])
    keep = rng.permutation(np.concatenate(keep))
    return X[keep] / 16.0, y[keep]


# ---------------------------------------------------------------------- model
@dataclass
class MLP:
    """``x -> relu(x W1 + b1) -> relu(. W2 + b2) -> . W3 + b3`` (features, not normalised)."""

    params: list

    @classmethod
    def create(cls, d_in: int, width: int, d_out: int, rng) -> MLP:
        sizes = [d_in, width, width, d_out]
        params = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            params += [rng.standard_normal((a, b)) * math.sqrt(2.0 / a), np.zeros(b)]
        return cls(params)

    def forward(self, X):
        W1, b1, W2, b2, W3, b3 = self.params
        A1 = np.maximum(X @ W1 + b1, 0.0)
        A2 = np.maximum(A1 @ W2 + b2, 0.0)
        return A2 @ W3 + b3, (X, A1, A2)

    def backward(self, cache, dZ):
        X, A1, A2 = cache
        W1, _, W2, _, W3, _ = self.params
        dA2 = (dZ @ W3.T) * (A2 > 0)
        dA1 = (dA2 @ W2.T) * (A1 > 0)
        return [X.T @ dA1, dA1.sum(0), A1.T @ dA2, dA2.sum(0), A2.T @ dZ, dZ.sum(0)]


class Adam:
    def __init__(self, params, lr: float) -> None:
        self.lr, self.t = lr, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, params, grads) -> None:
        self.t += 1
        b1, b2 = 0.9, 0.999
        for p, g, m, v in zip(params, grads, self.m, self.v, strict=True):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= self.lr * (m / (1 - b1**self.t)) / (np.sqrt(v / (1 - b2**self.t)) + 1e-8)


def supcon_step(model: MLP, X, y, tau: float):
    """SC loss (mean over anchors, as PyTorch's SupConLoss) and parameter gradients."""
    Z, cache = model.forward(X)
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    H = Z / norms
    value, dH = sc_loss_grad(H, y, tau)
    n = len(y)
    # Through h = z / ||z||: dL/dz = (dL/dh - (h . dL/dh) h) / ||z||.
    dZ = (dH - np.sum(dH * H, axis=1, keepdims=True) * H) / norms
    return value / n, model.backward(cache, dZ / n)


def batches(n: int, size: int | None, rng):
    """One epoch: the full batch, or a reshuffled partition into batches of ``size`` (the
    last one smaller)."""
    if size is None or size >= n:
        return [np.arange(n)]
    perm = rng.permutation(n)
    return [perm[i:i + size] for i in range(0, n, size)]


def train(X, y, *, tau: float = TAU, steps: int = 2000, width: int = 512, d: int = 64,
          lr: float = 1e-3, batch_size: int | None = None, seed: int = 0,
          checkpoints: int = 10):
    """Train with SupCon; return the final features and ``(step, features)`` checkpoints.

    ``steps`` counts epochs (one optimizer step per batch); checkpoints are evenly spaced,
    the first before any training.
    """
    rng = np.random.default_rng(seed)
    model = MLP.create(X.shape[1], width, d, rng)
    opt = Adam(model.params, lr)
    marks = set(np.linspace(0, steps, checkpoints + 1).astype(int).tolist())
    saved = []
    for epoch in range(steps + 1):
        if epoch in marks:
            saved.append((epoch, model.forward(X)[0]))
        if epoch == steps:
            break
        for b in batches(len(y), batch_size, rng):
            _, grads = supcon_step(model, X[b], y[b], tau)
            opt.step(model.params, grads)
    return saved[-1][1], saved


# ---------------------------------------------------------------------- main
MB_EPOCHS = 10
"""Epochs of the mini-batch objective that mini-batch-trained features are compared with."""


def summary_row(R, mode, c, first, mb=None) -> dict:
    """The table's row of one run: ``c`` the comparison at the end with the full-batch
    optimum, ``first`` before training, ``mb`` with the mini-batch optimum (if any)."""
    g = {row["groups"]: row for row in c.groups()}
    gm = {} if mb is None else {row["groups"]: row for row in mb.groups()}
    return {"R": R, "mode": mode, "n": c.n, "gap_first": first.gap,
            "nc1_first": first.collapse.trace_ratio, "loss_first": first.loss,
            "gap": c.gap, "loss_error": c.loss_error,
            "gap_resolved": c.gap_resolved, "excess_gap": c.excess_gap,
            "geometry_share": c.geometry_share, "to_optimum_max": c.to_optimum.max_abs,
            "to_etf_max": c.to_etf.max_abs, "nc1_trace_ratio": c.collapse.trace_ratio,
            "within_cosine": c.collapse.within_cosine,
            "maj_maj": g.get("majority-majority", {}).get("trained_mean", math.nan),
            "maj_maj_optimum": g.get("majority-majority", {}).get("optimum", math.nan),
            "min_min": g.get("minority-minority", {}).get("trained_mean", math.nan),
            "min_min_optimum": g.get("minority-minority", {}).get("optimum", math.nan),
            "geometry_gap": c.geometry_gap, "within_gap": c.within_gap,
            "lower_bound": c.lower_bound, "loss": c.loss,
            "to_optimum_rms": c.to_optimum.rms,
            "to_minibatch_optimum_max": math.nan if mb is None else mb.to_optimum.max_abs,
            "to_minibatch_optimum_rms": math.nan if mb is None else mb.to_optimum.rms,
            "maj_maj_minibatch_optimum": gm.get("majority-majority", {}).get("optimum",
                                                                            math.nan),
            "minibatch_gap": math.nan if mb is None else mb.gap,
            "minibatch_loss_error": math.nan if mb is None else mb.loss_error}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--R", default="1,5,20", help="imbalance ratios (divisors of 160)")
    ap.add_argument("--steps", type=int, default=2000, help="full-batch training steps")
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--d", type=int, default=64, help="feature dimension")
    ap.add_argument("--batch-size", type=int, default=128,
                    help="also train with reshuffled mini-batches of this size (0: no)")
    ap.add_argument("--epochs", type=int, default=None,
                    help="mini-batch epochs (default: steps / number of batches per epoch, "
                         "so both runs make about the same number of optimizer steps)")
    ap.add_argument("--quick", action="store_true",
                    help="reduced run: R = 20, 300 steps, width 128 (a few seconds)")
    ap.add_argument("--out", help="folder for figures (needs matplotlib)")
    ap.add_argument("--json", action="store_true", help="print the table as JSON")
    args = ap.parse_args(argv)
    if args.quick:
        args.R, args.steps, args.width, args.d = "20", 300, 128, 32
    ratios = [int(r) for r in args.R.split(",")]
    # One BLAS thread: these products are small, and two threads fighting over a shared
    # 2-core machine made each step 7 times slower (measured).
    with blas_threads(1):
        rows, runs = run_all(ratios, args)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"SupCon on STEP-imbalanced digits (tau = {TAU}, {args.steps} steps, MLP "
              f"64-{args.width}-{args.width}-{args.d}); cosines of class means against the "
              "certified optimum and the simplex ETF")
        print(f"{'R':>3} {'training':<16} {'n':>5} {'gap':>8} {'excess':>7} {'geom':>5} "
              f"{'to optimum':>13} {'to ETF':>7} {'to mb-opt':>13} {'maj-maj':>22} "
              f"{'min-min':>15} {'NC1':>8}")
        for r in rows:
            share = "-" if math.isnan(r["geometry_share"]) else f"{100 * r['geometry_share']:.0f}%"
            mb = "-" if math.isnan(r["to_minibatch_optimum_max"]) else \
                f"{r['to_minibatch_optimum_max']:.3f}/{r['to_minibatch_optimum_rms']:.3f}"
            mbo = "" if math.isnan(r["maj_maj_minibatch_optimum"]) else \
                f"/{r['maj_maj_minibatch_optimum']:.3f}"
            print(f"{r['R']:>3} {r['mode']:<16} {r['n']:>5} {r['gap']:>8.3g} "
                  f"{r['excess_gap']:>7.3g} {share:>5} "
                  f"{r['to_optimum_max']:>6.3f}/{r['to_optimum_rms']:<6.3f} "
                  f"{r['to_etf_max']:>7.3f} {mb:>13} "
                  f"{r['maj_maj']:>7.3f}/{r['maj_maj_optimum']:.3f}{mbo:<7} "
                  f"{r['min_min']:>7.3f}/{r['min_min_optimum']:<7.3f} "
                  f"{r['nc1_trace_ratio']:>8.1e}")
        print("gap: loss minus the certified lower bound (excess: relative to the optimum's "
              "excess loss; geom: its class-mean share); to optimum, to mb-opt: largest/rms "
              "cosine error between class means against the full-batch and the mini-batch "
              f"({MB_EPOCHS} epochs) optimum; to ETF: largest; maj-maj: trained/full-batch "
              "optimum[/mini-batch optimum]; min-min: trained/optimum")
    if args.out:
        figures(runs, args.out)
    return 0


def run_all(ratios, args):
    """Train and compare at every ratio: the table rows and the runs for the figures."""
    rows, runs = [], {}
    for R in ratios:
        X, y = step_digits(R)
        final, saved = train(X, y, steps=args.steps, width=args.width, d=args.d)
        c = compare(final, y, TAU, precision="float64", threads=1)
        traj = [(step, compare(H, y, TAU, result=c.result, threads=1)) for step, H in saved]
        rows.append(summary_row(R, "full batch", c, traj[0][1]))
        runs[(R, "full batch")] = (c, traj)
        if args.batch_size:
            per_epoch = math.ceil(len(y) / args.batch_size)
            epochs = args.epochs or max(1, args.steps // per_epoch)
            final_b, saved_b = train(X, y, steps=epochs, width=args.width, d=args.d,
                                     batch_size=args.batch_size)
            cb = compare(final_b, y, TAU, result=c.result, precision="float64", threads=1)
            traj_b = [(s, compare(H, y, TAU, result=c.result, threads=1)) for s, H in saved_b]
            # The optimum of the loss SGD sees: MB_EPOCHS reshuffled partitions into batches.
            mb = compare(final_b, y, TAU, batch_size=args.batch_size, epochs=MB_EPOCHS,
                         threads=1)
            rows.append(summary_row(R, f"batches of {args.batch_size}", cb, traj_b[0][1],
                                    mb))
            runs[(R, "mini-batch")] = (cb, traj_b)
        print(f"R = {R}: trained and compared", file=sys.stderr, flush=True)
    return rows, runs


def figures(runs, folder: str) -> None:
    """Trained against certified Gram (largest R, full batch) and the cosine error over
    training (every run)."""
    from scconvex.studies.plot import compare_gram_figure, save_figure

    os.makedirs(folder, exist_ok=True)
    R = max(R for R, _ in runs)
    c, _ = runs[(R, "full batch")]
    save_figure(compare_gram_figure(c.to_dict()), os.path.join(folder, "compare_gram.png"))
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, mode in zip(axes, ("full batch", "mini-batch"), strict=True):
        for i, (key, (_, traj)) in enumerate(sorted(runs.items())):
            if key[1] != mode:
                continue
            steps = [s for s, _ in traj]
            ax.plot(steps, [t.to_optimum.max_abs for _, t in traj], "-", color=f"C{i}",
                    label=f"R={key[0]}: to the certified optimum", gid=f"opt|R={key[0]}")
            ax.plot(steps, [t.to_etf.max_abs for _, t in traj], "--", color=f"C{i}",
                    label=f"R={key[0]}: to the simplex ETF", gid=f"etf|R={key[0]}")
        ax.set_title(mode, fontsize=9)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=6)
    axes[0].set_ylabel("largest cosine error between class means")
    save_figure(fig, os.path.join(folder, "compare_training.png"))
    print(f"wrote {folder}/compare_gram.png and {folder}/compare_training.png")


if __name__ == "__main__":
    sys.exit(main())

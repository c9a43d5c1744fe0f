"""``dlfr demo``: XOR, the digits, and batch inference timed against NumPy, offline."""

from __future__ import annotations

import argparse
import functools
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from .. import __version__, _kernels, peers
from .options import add_no_progress, progress_wanted
from .recipes import DIGITS_RECIPE, N_DIGITS_TRAIN, XOR_RECIPE, train_digits, train_xor
from .timing import best_of, format_seconds

#: Seconds a timing waits for the previous call's thread pools to go idle.
SETTLE_SECONDS = 0.25


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="XOR, digits and an inference timing, offline")
    p.add_argument("--quick", action="store_true", help="3 epochs on 2,000 digits")
    add_no_progress(p)
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> None:
    demo(quick=args.quick, progress=progress_wanted(args.no_progress))


def demo(quick: bool = False, progress: bool = False) -> None:
    """Train XOR and the digits, then time batch inference; ``quick``: a shorter run."""
    print(f"dlfr {__version__} demo{' (quick)' if quick else ''}")
    print()
    r = XOR_RECIPE
    print(
        f"1. XOR with a 2-2-1 sigmoid network ({r['epochs']} epochs, batch {r['batch_size']}, "
        f"learning rate {r['learning_rate']}, seed {r['seed']})"
    )
    net, X, y = train_xor()
    out = net.forward(X)[:, 0]
    pred = net.predict(X)
    print("   x1  x2  target  output  label")
    for xi, t, a, p in zip(X, y, out, pred, strict=True):
        mark = "" if p == t else "  (wrong)"
        print(f"   {xi[0]:2.0f}  {xi[1]:2.0f}  {t:6d}  {a:6.4f}  {p:5d}{mark}")
    print(f"   {int(np.sum(pred == y))}/4 correct")
    print()

    n_train = 2000 if quick else N_DIGITS_TRAIN
    epochs = 3 if quick else DIGITS_RECIPE["epochs"]
    print(
        f"2. Digits with a 784-16-10 sigmoid network: {n_train:,} training digits, "
        f"{epochs} epochs, batch {DIGITS_RECIPE['batch_size']}, "
        f"learning rate {DIGITS_RECIPE['learning_rate']}, mse"
    )
    sys.stdout.flush()  # the progress bar goes to stderr
    net, Xd, yd, seconds = train_digits(n_train, epochs, verbose=progress)
    acc = net.evaluate(Xd[N_DIGITS_TRAIN:], yd[N_DIGITS_TRAIN:])
    print(
        f"   test accuracy on the last {len(Xd) - N_DIGITS_TRAIN:,} digits: {acc:.2%} "
        f"(trained in {seconds:.2f} s)"
    )
    print()

    runs = 5 if quick else 20  # a core that sat idle takes a few calls to come up to speed
    print(f"3. Batch inference: labels of all {len(Xd):,} digits (best of {runs} runs)")
    numpy_forward = peers.numpy_forward(
        [np.ascontiguousarray(layer.W) for layer in net.layers],
        [layer.b.copy() for layer in net.layers],
    )
    print("   threads  dlfr net.predict(X)  NumPy 1/(1+np.exp(-(X@W+b)))  ratio")
    for threads in dict.fromkeys((1, _kernels.max_threads())):
        with threadpool_limits(limits=threads, user_api="blas"):
            # OpenBLAS's workers spin for about 0.1 s after a threaded call,
            # and a two-thread run timed meanwhile shares a core with one
            time.sleep(SETTLE_SECONDS)
            t_dlfr = best_of(functools.partial(net.predict, Xd, n_threads=threads), runs)
            t_numpy = best_of(lambda: numpy_forward(Xd).argmax(axis=1), runs)
        print(f"   {threads:7d}  {format_seconds(t_dlfr):>19}  {format_seconds(t_numpy):>28}  "
              f"{t_numpy / t_dlfr:4.1f}x")
    same = np.mean(net.predict(Xd) == numpy_forward(Xd).argmax(axis=1))
    print(f"   (ratio: NumPy's time over dlfr's; the labels agree on {same:.2%} of the digits)")

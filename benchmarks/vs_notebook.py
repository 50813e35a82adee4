"""The ``notebook`` preset vs a faithful copy of the teaching notebook's own code, same data.

    python benchmarks/vs_notebook.py [--iterations 500] [--data-dir DIR]

Both run 784-10-10 ReLU/softmax with full-batch gradient descent (lr 0.1) for 500 iterations over
the same 59,000 MNIST training digits and report accuracy on the same 1,000 held-out digits. The
copy below keeps the notebook's choices on purpose (float64, images as columns, ``W.dot(X)``, a
one-hot matrix, ``sum`` over rows, ``1 / m`` with ``m`` counting the dev rows too, scalar bias
gradients, an accuracy check every 10 iterations); only its prints are gone. The two runs are
interleaved in blocks of 50 iterations, each block timed, so a noisy shared machine slows both
alike. Target: ours/notebook <= 0.4 with dev accuracy in the
same band (~85-90%).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# --code DIR: measure the scratchnet package of another checkout (e.g. a git worktree of an older
# commit, for before/after figures); it must be set before scratchnet is imported.
if "--code" in sys.argv:
    ROOT = Path(sys.argv[sys.argv.index("--code") + 1]).resolve()
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

TARGET = 0.4


# ----------------------------------------------------------------------------- the notebook's code
# (https://www.kaggle.com/code/wwsalmon/simple-mnist-nn-from-scratch-numpy-no-tf-keras), verbatim
# apart from dropped prints and `m` passed in instead of read from a global.

def init_params():
    W1 = np.random.rand(10, 784) - 0.5
    b1 = np.random.rand(10, 1) - 0.5
    W2 = np.random.rand(10, 10) - 0.5
    b2 = np.random.rand(10, 1) - 0.5
    return W1, b1, W2, b2


def ReLU(Z):
    return np.maximum(Z, 0)


def softmax(Z):
    A = np.exp(Z) / sum(np.exp(Z))
    return A


def forward_prop(W1, b1, W2, b2, X):
    Z1 = W1.dot(X) + b1
    A1 = ReLU(Z1)
    Z2 = W2.dot(A1) + b2
    A2 = softmax(Z2)
    return Z1, A1, Z2, A2


def ReLU_deriv(Z):
    return Z > 0


def one_hot(Y):
    one_hot_Y = np.zeros((Y.size, Y.max() + 1))
    one_hot_Y[np.arange(Y.size), Y] = 1
    one_hot_Y = one_hot_Y.T
    return one_hot_Y


def backward_prop(Z1, A1, Z2, A2, W1, W2, X, Y, m):
    one_hot_Y = one_hot(Y)
    dZ2 = A2 - one_hot_Y
    dW2 = 1 / m * dZ2.dot(A1.T)
    db2 = 1 / m * np.sum(dZ2)
    dZ1 = W2.T.dot(dZ2) * ReLU_deriv(Z1)
    dW1 = 1 / m * dZ1.dot(X.T)
    db1 = 1 / m * np.sum(dZ1)
    return dW1, db1, dW2, db2


def update_params(W1, b1, W2, b2, dW1, db1, dW2, db2, alpha):
    W1 = W1 - alpha * dW1
    b1 = b1 - alpha * db1
    W2 = W2 - alpha * dW2
    b2 = b2 - alpha * db2
    return W1, b1, W2, b2


def get_predictions(A2):
    return np.argmax(A2, 0)


def get_accuracy(predictions, Y):
    return np.sum(predictions == Y) / Y.size


def gradient_descent(X, Y, alpha, iterations, m):
    return gradient_descent_block(init_params(), X, Y, alpha, 0, iterations, m)


def gradient_descent_block(params, X, Y, alpha, first, last, m):
    """The notebook's ``gradient_descent`` loop for iterations [first, last), so runs can be
    interleaved with ours; the loop body is the notebook's, line for line."""
    W1, b1, W2, b2 = params
    for i in range(first, last):
        Z1, A1, Z2, A2 = forward_prop(W1, b1, W2, b2, X)
        dW1, db1, dW2, db2 = backward_prop(Z1, A1, Z2, A2, W1, W2, X, Y, m)
        W1, b1, W2, b2 = update_params(W1, b1, W2, b2, dW1, db1, dW2, db2, alpha)
        if i % 10 == 0:
            predictions = get_predictions(A2)
            get_accuracy(predictions, Y)
    return W1, b1, W2, b2


def make_predictions(X, W1, b1, W2, b2):
    _, _, _, A2 = forward_prop(W1, b1, W2, b2, X)
    predictions = get_predictions(A2)
    return predictions


# ----------------------------------------------------------------------------- the comparison

def notebook_arrays(ds):
    """The notebook's layout from the same digits: int rows [label, 784 pixels], transposed, / 255."""
    def table(X, y):
        return np.column_stack([y.astype(np.int64), np.rint(X * 255).astype(np.int64)])

    data = np.vstack([table(ds.X_val, ds.y_val), table(ds.X_train, ds.y_train)])
    m, n = data.shape
    data_dev = data[0:1000].T
    Y_dev = data_dev[0]
    X_dev = data_dev[1:n]
    X_dev = X_dev / 255.
    data_train = data[1000:m].T
    Y_train = data_train[0]
    X_train = data_train[1:n]
    X_train = X_train / 255.
    return X_train, Y_train, X_dev, Y_dev, m


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--block", type=int, default=50, help="iterations per interleaved block (a multiple of 10)")
    ap.add_argument("--data-dir", default=None, help="folder with the MNIST .gz files (default: SCRATCHNET_DATA_DIR)")
    ap.add_argument("--code", default=None, help="a checkout whose scratchnet package to measure instead")
    args = ap.parse_args(argv)

    from scratchnet.datasets import load_mnist
    from scratchnet.training import PRESETS, build_network, train

    ds = load_mnist(args.data_dir, download=False, fallback=True)
    for note in ds.notes:
        print(f"note: {note}")
    print(f"{ds.description}; numpy {np.__version__}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}")

    X_train, Y_train, X_dev, Y_dev, m = notebook_arrays(ds)
    np.random.seed(0)
    nb_params = init_params()
    config = PRESETS["notebook"].replace(iterations=args.iterations)
    net = build_network(config)
    ours = train(net, ds.X_train, ds.y_train, config)  # a Progress record every 10 iterations

    # Interleaved blocks of --block iterations, so a noisy machine slows both alike.
    nb_seconds = ours_seconds = 0.0
    for first in range(0, args.iterations, args.block):
        last = min(args.iterations, first + args.block)
        t = time.perf_counter()
        nb_params = gradient_descent_block(nb_params, X_train, Y_train, 0.10, first, last, m)
        nb_seconds += time.perf_counter() - t
        t = time.perf_counter()
        for p in ours:
            if p.step >= last:
                break
        ours_seconds += time.perf_counter() - t
    for p in ours:  # nothing left: the generator's own end
        pass
    nb_acc = get_accuracy(make_predictions(X_dev, *nb_params), Y_dev)
    ours_acc = net.accuracy(ds.X_val, ds.y_val)

    ratio = ours_seconds / nb_seconds
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"{args.iterations} iterations, full batch of {len(ds.X_train):,}")
    print(f"  notebook code: {nb_seconds:7.2f} s   dev accuracy {nb_acc:.1%}")
    print(f"  ours (preset): {ours_seconds:7.2f} s   dev accuracy {ours_acc:.1%}   status {p.status}")
    print(f"  ratio ours/notebook {ratio:.2f} ({'<=' if ratio <= TARGET else 'MISSED'} {TARGET})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

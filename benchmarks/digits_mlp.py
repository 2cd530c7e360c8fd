"""The capstone recipes: an MLP (the default) or a small CNN on the bundled 8x8 digits.

    python benchmarks/digits_mlp.py [--model mlp|cnn] [--backend cpu] [--seed 0 [1 ...]]

Both: a stratified 80/20 train/test split (seeded); preprocessing fitted on the training
split only; Adam(W) and early stopping (best weights restored) on a validation split of
10% carved out of the training data. Prints the test accuracy and the wall time of each
seed (end to end: loading, training, evaluation; on a cold Numba cache the first run also
compiles the kernels), and their mean and standard deviation when several seeds are given.

* ``mlp``: pixels standardized per pixel (StandardScaler); 64-128-10 ReLU with dropout
  0.2, Adam(lr=1e-3), up to 100 epochs, patience 10.
* ``cnn``: pixels standardized with one mean and one standard deviation over all the
  training pixels (per channel, as for any CNN: a per-pixel scaler gives every position
  its own offset, which a filter shared by all positions cannot undo; chapter 7 shows
  it); images (N, 1, 8, 8); two blocks of 3x3 'same' convolution with a fused ReLU (16,
  then 32 filters) and 2x2 max pooling, Flatten, dropout 0.3, Dense(128, 10);
  AdamW(lr=1e-2, weight_decay=1e-2) with a cosine schedule over 30 epochs, patience 10.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import nnlib as nl


def _split(seed):
    X, y = nl.datasets.load_digits()
    return nl.preprocessing.train_test_split(X, y, test_size=0.2, stratify=True, seed=seed)


def train_digits(seed: int = 0, backend: str | None = None, verbose: int = 0):
    """Train the MLP recipe; return (model, test accuracy, seconds)."""
    start = time.perf_counter()
    (X_tr, y_tr), (X_te, y_te) = _split(seed)
    scaler = nl.preprocessing.StandardScaler().fit(X_tr)  # training split only
    X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
    model = nl.Sequential(
        [nl.Dense(64, 128, init="he"), nl.ReLU(), nl.Dropout(0.2), nl.Dense(128, 10)]
    )
    model.fit(
        X_tr,
        y_tr,
        loss="softmax_cross_entropy",
        optimizer=nl.optim.Adam(lr=1e-3),
        epochs=100,
        batch_size=32,
        validation_split=0.1,
        seed=seed,
        callbacks=[nl.callbacks.EarlyStopping(patience=10, restore_best=True)],
        backend=backend,
        verbose=verbose,
    )
    accuracy = model.evaluate(X_te, y_te)["accuracy"]
    return model, accuracy, time.perf_counter() - start


def train_digits_cnn(seed: int = 0, backend: str | None = None, verbose: int = 0, epochs: int = 30):
    """Train the CNN recipe; return (model, test accuracy, seconds)."""
    start = time.perf_counter()
    (X_tr, y_tr), (X_te, y_te) = _split(seed)
    mean, std = X_tr.mean(), X_tr.std()  # training split only; one pair for all pixels
    X_tr, X_te = (((a - mean) / std).reshape(-1, 1, 8, 8) for a in (X_tr, X_te))
    model = nl.Sequential(
        [
            nl.Conv2D(16, 3, padding="same", activation="relu"),  # (N, 16, 8, 8)
            nl.MaxPool2D(2),  # (N, 16, 4, 4)
            nl.Conv2D(32, 3, padding="same", activation="relu"),  # (N, 32, 4, 4)
            nl.MaxPool2D(2),  # (N, 32, 2, 2)
            nl.Flatten(),  # (N, 128)
            nl.Dropout(0.3),
            nl.Dense(128, 10),
        ]
    )
    model.fit(
        X_tr,
        y_tr,
        loss="softmax_cross_entropy",
        optimizer=nl.optim.AdamW(lr=1e-2, weight_decay=1e-2),
        epochs=epochs,
        batch_size=32,
        validation_split=0.1,
        seed=seed,
        callbacks=[
            nl.callbacks.LearningRateScheduler(nl.optim.CosineAnnealingLR(epochs)),
            nl.callbacks.EarlyStopping(patience=10, restore_best=True),
        ],
        backend=backend,
        verbose=verbose,
    )
    accuracy = model.evaluate(X_te, y_te)["accuracy"]
    return model, accuracy, time.perf_counter() - start


RECIPES = {"mlp": train_digits, "cnn": train_digits_cnn}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(RECIPES), default="mlp")
    parser.add_argument("--backend", default=None, help="numpy, cpu or cuda (default: cpu)")
    parser.add_argument("--seed", type=int, nargs="+", default=[0], help="one or more seeds")
    args = parser.parse_args()
    scores = []
    for seed in args.seed:
        verbose = int(len(args.seed) == 1)  # a progress bar for a single run
        _, accuracy, seconds = RECIPES[args.model](seed, args.backend, verbose=verbose)
        scores.append(accuracy)
        print(
            f"digits {args.model} test accuracy: {accuracy:.4f}  "
            f"(wall time {seconds:.1f} s, seed {seed})"
        )
    if len(scores) > 1:
        print(
            f"digits {args.model}, {len(scores)} seeds: test accuracy {np.mean(scores):.4f} "
            f"± {np.std(scores, ddof=1):.4f} (mean ± std)"
        )


if __name__ == "__main__":
    main()

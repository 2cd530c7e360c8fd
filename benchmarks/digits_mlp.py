"""The capstone recipe: an MLP on the bundled 8x8 handwritten digits.

    python benchmarks/digits_mlp.py [--backend cpu] [--seed 0]

Stratified 80/20 train/test split (seeded); standardization fitted on the training split
only; a 64-128-10 ReLU network with dropout, Adam and early stopping on a validation
split carved out of the training data. Prints the test accuracy and the wall time.
"""

from __future__ import annotations

import argparse
import time

import nnlib as nl


def train_digits(seed: int = 0, backend: str | None = None, verbose: int = 0):
    """Train the recipe; return (model, test accuracy, seconds)."""
    start = time.perf_counter()
    X, y = nl.datasets.load_digits()
    (X_tr, y_tr), (X_te, y_te) = nl.preprocessing.train_test_split(
        X, y, test_size=0.2, stratify=True, seed=seed
    )
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None, help="numpy, cpu or cuda (default: cpu)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    _, accuracy, seconds = train_digits(args.seed, args.backend, verbose=1)
    print(f"digits test accuracy: {accuracy:.4f}  (wall time {seconds:.1f} s, seed {args.seed})")


if __name__ == "__main__":
    main()

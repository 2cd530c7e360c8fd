"""One full training step (forward, loss, backward, Adam update), float32: nnlib's cpu
backend against the NumPy reference backend, PyTorch (CPU, eager) and a ``jax.jit``
step, as ratios measured in one run.

    .venv/bin/python benchmarks/bench_training.py [--rounds 40] [--block 10]
        [--first-step-runs 5] [--cold-runs 2] [--check-only]

Models: 64-128-10 (batch 64), 784-256-10 (batch 128) and 784-1024-10 (batch 512), a
fused Dense+ReLU then a Dense, softmax cross-entropy, Adam(lr=1e-3, betas=(0.9, 0.999),
eps=1e-8). Every contender starts from the same weights and trains on the same batch.

nnlib's step is ``Sequential.train_on_batch(X, y, optimizer=opt)``, the public one-step
method (it checks ``X`` and ``y`` at every call, as any public call does); the NumPy
reference runs the same method on the numpy backend.

Before timing, every contender is checked against the NumPy reference from the same
weights: 5 SGD steps (losses and weights within 1e-4) and 5 Adam steps (losses within
1e-4, weights within Adam's step bound). Adam's normalized step m/sqrt(v) turns float
rounding in a near-zero gradient into a difference of up to lr times its step bound
(Kingma and Ba, section 2.1: (1 - beta1) / sqrt(1 - beta2) = 3.16 here) per step, so its
weights cannot be compared more tightly; SGD's can. Then the contenders are timed
alternately, in blocks of ``--block`` steps, the order rotated every round, and the
median of the per-round ratios is reported. For the largest model the floor is the
matrix products a step needs, timed with ``np.dot`` into preallocated outputs in the
same rotation: its time over nnlib's step time is the fraction of the machine's float32
matrix-multiply throughput the step reaches.

Then ``fit`` against ``train_on_batch`` doing the same steps (64-128-10 at batch 64 and
784-256-10 at batch 128): one ``fit`` epoch of ``--fit-batches`` batches (no shuffling)
against a loop of ``train_on_batch`` over the same batches, alternated, from the same
weights; both end with the same weights (checked) and the median ratio of their times
a step is reported.

Last, the time of a fresh ``python -c "import nnlib"``, and from a fresh
``python -c "import nnlib; ..."`` to the end of its first training step, with a warm
Numba cache and a cold (empty) one (``NUMBA_CACHE_DIR``). ``--python`` runs these in
another interpreter, e.g. a core-only virtual environment (``pip install .``, no
extras). A peer that is not installed is skipped with the reason.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

# NOTE: what `import nnlib` sets (see nnlib/__init__.py), set here before NumPy loads its
# OpenBLAS, so that NumPy's BLAS threads (the numpy ref and np.dot floor contenders) sleep
# when idle too, instead of spinning into the next contender's time. It applies to
# every contender alike.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numba
import numpy as np

import nnlib as nl

LR, BETAS, EPS = 1e-3, (0.9, 0.999), 1e-8
SGD_LR = 0.1  # the validation's SGD steps
CONFIGS = [  # (input, hidden, classes, batch)
    (64, 128, 10, 64),
    (784, 256, 10, 128),
    (784, 1024, 10, 512),
]


def make_problem(d, h, k, n, seed=0):
    """Initial weights (from an nnlib model) and one batch, all float32."""
    model = nl.Sequential([nl.Dense(d, h, init="he", activation="relu"), nl.Dense(h, k)], seed=seed)
    weights = {name: np.array(v) for name, v in model.parameters().items()}
    rng = np.random.default_rng(seed + 1)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(0, k, n).astype(np.int64)
    return weights, X, y


# ---------------------------------------------------------------------- contenders
# Each factory returns (step, loss, weights): step() runs one training step; loss()
# the loss of the last step (a float, read back); weights() the current parameters as
# NumPy arrays named like nnlib's ("0.W" (D, H), "0.b", "1.W", "1.b").


def nnlib_step(backend, weights, X, y, optimizer="adam", compiled=True):
    d, h = weights["0.W"].shape
    k = weights["1.W"].shape[1]
    model = nl.Sequential([nl.Dense(d, h, activation="relu"), nl.Dense(h, k)])
    model.build()
    model.set_parameters(weights)
    if optimizer == "sgd":
        opt = nl.optim.SGD(lr=SGD_LR)
    else:
        opt = nl.optim.Adam(lr=LR, betas=BETAS, eps=EPS)

    def step():
        return model.train_on_batch(X, y, optimizer=opt, backend=backend, compiled=compiled)

    def loss():
        return step()

    def get_weights():
        return {k: np.array(v) for k, v in model.parameters().items()}

    return step, loss, get_weights


def torch_step(weights, X, y, optimizer="adam"):
    import torch

    d, h = weights["0.W"].shape
    k = weights["1.W"].shape[1]
    net = torch.nn.Sequential(torch.nn.Linear(d, h), torch.nn.ReLU(), torch.nn.Linear(h, k))
    with torch.no_grad():
        for i, j in ((0, 0), (1, 2)):
            net[j].weight.copy_(torch.from_numpy(weights[f"{i}.W"].T.copy()))
            net[j].bias.copy_(torch.from_numpy(weights[f"{i}.b"]))
    if optimizer == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=SGD_LR)
    else:
        opt = torch.optim.Adam(net.parameters(), lr=LR, betas=BETAS, eps=EPS)
    xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    last = [None]

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(xt), yt)
        loss.backward()
        opt.step()
        last[0] = loss

    def loss():
        step()
        return float(last[0].detach())

    def get_weights():
        return {
            "0.W": net[0].weight.detach().numpy().T.copy(),
            "0.b": net[0].bias.detach().numpy().copy(),
            "1.W": net[2].weight.detach().numpy().T.copy(),
            "1.b": net[2].bias.detach().numpy().copy(),
        }

    return step, loss, get_weights


def jax_step(weights, X, y, optimizer="adam"):
    import jax
    import jax.numpy as jnp

    b1, b2 = BETAS

    def loss_fn(p, x, labels):
        z = jnp.maximum(x @ p["0.W"] + p["0.b"], 0) @ p["1.W"] + p["1.b"]
        logz = jax.nn.logsumexp(z, axis=1)
        return jnp.mean(logz - jnp.take_along_axis(z, labels[:, None], axis=1)[:, 0])

    @jax.jit
    def train_step(p, m, v, t, x, labels):  # Adam as PyTorch (and nnlib) write it
        loss, g = jax.value_and_grad(loss_fn)(p, x, labels)
        m = {n: b1 * m[n] + (1 - b1) * g[n] for n in p}
        v = {n: b2 * v[n] + (1 - b2) * g[n] * g[n] for n in p}
        step_size = LR / (1 - b1**t)
        denom_scale = jnp.sqrt(1 - b2**t)
        p = {n: p[n] - step_size * m[n] / (jnp.sqrt(v[n]) / denom_scale + EPS) for n in p}
        return p, m, v, loss

    if optimizer == "sgd":

        @jax.jit
        def train_step(p, m, v, t, x, labels):  # plain SGD instead
            loss, g = jax.value_and_grad(loss_fn)(p, x, labels)
            return {n: p[n] - SGD_LR * g[n] for n in p}, m, v, loss

    state = {
        "p": {n: jnp.asarray(w) for n, w in weights.items()},
        "m": {n: jnp.zeros(w.shape, jnp.float32) for n, w in weights.items()},
        "v": {n: jnp.zeros(w.shape, jnp.float32) for n, w in weights.items()},
        "t": 0,
        "loss": None,
    }
    xj, yj = jnp.asarray(X), jnp.asarray(y.astype(np.int32))

    def step():
        state["t"] += 1
        t = jnp.float32(state["t"])
        state["p"], state["m"], state["v"], state["loss"] = train_step(
            state["p"], state["m"], state["v"], t, xj, yj
        )

    def loss():
        step()
        return float(state["loss"])

    def get_weights():
        return {n: np.asarray(w) for n, w in state["p"].items()}

    # async dispatch: a timed block ends when its last step is done
    step.block = lambda: state["loss"].block_until_ready()
    return step, loss, get_weights


def matmul_floor(weights, X):
    """The matrix products of one step (forward x W1, h W2; backward dW2, dh, dW1: no dx
    for the input, which no contender computes), np.dot into outputs."""
    W1, W2 = weights["0.W"], weights["1.W"]
    n, (d, h), k = len(X), W1.shape, W2.shape[1]
    hid, z, dW2, dh, dW1 = (
        np.empty(s, np.float32) for s in ((n, h), (n, k), (h, k), (n, h), (d, h))
    )
    dz = np.ones((n, k), np.float32)

    def step():
        np.dot(X, W1, hid)
        np.dot(hid, W2, z)
        np.dot(hid.T, dz, dW2)
        np.dot(dz, W2.T, dh)
        np.dot(X.T, dh, dW1)

    flops = 2 * n * (d * h + h * k) + 2 * n * h * k * 2 + 2 * n * d * h
    return step, flops


def contenders(weights, X, y, optimizer="adam"):
    """(name, (step, loss, weights) or None, reason it cannot run)."""
    yield "nnlib cpu", nnlib_step("cpu", weights, X, y, optimizer), None
    yield "nnlib layers", nnlib_step("cpu", weights, X, y, optimizer, compiled=False), None
    yield "numpy ref", nnlib_step("numpy", weights, X, y, optimizer), None
    try:
        import torch

        torch.set_num_threads(2)
        yield "torch cpu", torch_step(weights, X, y, optimizer), None
    except ImportError:
        yield "torch cpu", None, "PyTorch is not installed (pip install torch==2.13.0)"
    try:
        import jax

        jax.config.update("jax_platforms", "cpu")
        yield "jax jit", jax_step(weights, X, y, optimizer), None
    except ImportError:
        yield "jax jit", None, "JAX is not installed (pip install jax)"


# ---------------------------------------------------------------------- checks and timing


def adam_weight_tolerance(n_steps):
    """How far two correct Adam runs can drift apart in n_steps: each step moves a weight
    by at most lr * max(1, (1 - beta1) / sqrt(1 - beta2)) (Kingma and Ba, section 2.1),
    and a near-zero gradient's rounding can flip its direction, hence twice that."""
    b1, b2 = BETAS
    return 2 * n_steps * LR * max(1.0, (1 - b1) / np.sqrt(1 - b2))


def validate(weights, X, y, n_steps=5):
    """Every contender takes n_steps of SGD, then of Adam, from the same weights as the
    NumPy reference: loss trajectories within 1e-4 (relative), weights within 1e-4 for
    SGD and within Adam's step bound for Adam. Returns the names that passed."""
    bad = set()
    for optimizer, w_tol in (("sgd", 1e-4), ("adam", adam_weight_tolerance(n_steps))):
        runs = {name: made for name, made, _ in contenders(weights, X, y, optimizer) if made}
        ref_losses = [runs["numpy ref"][1]() for _ in range(n_steps)]
        ref_w = runs["numpy ref"][2]()
        print(
            f"  check, {n_steps} {optimizer} steps (losses {ref_losses[0]:.6f} -> "
            f"{ref_losses[-1]:.6f}; weight tolerance {w_tol:.1e}):"
        )
        for name, (_, loss, get_w) in runs.items():
            if name == "numpy ref":
                continue
            losses = [loss() for _ in range(n_steps)]
            dl = max(abs(a - b) / max(1.0, abs(b)) for a, b in zip(losses, ref_losses, strict=True))
            dw = max(float(np.max(np.abs(get_w()[k] - ref_w[k]))) for k in ref_w)
            ok = dl < 1e-4 and dw < w_tol
            print(
                f"    {name:10s} loss rel diff {dl:.1e}, weight max abs diff {dw:.1e}  "
                f"{'ok' if ok else 'MISMATCH'}"
            )
            if not ok:
                bad.add(name)
    if "nnlib cpu" in bad:
        raise SystemExit("nnlib cpu does not train like the NumPy reference")
    for name in sorted(bad):
        print(f"  {name} left out of the timing: it does not train like the NumPy reference")
    return bad


def time_block(step, block, finish=None):
    t0 = time.perf_counter()
    for _ in range(block):
        step()
    if finish is not None:
        finish()
    return (time.perf_counter() - t0) / block


def bench(steps, rounds, block):
    """Per-round per-step times of each contender, the order rotated every round."""
    names = list(steps)
    for name in names:  # warm up (compilation, allocator, caches)
        for _ in range(3):
            time_block(steps[name][0], block, steps[name][1])
    times = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            times[name].append(time_block(steps[name][0], block, steps[name][1]))
    return times


def big_gemm_gflops(n=2048):
    a = np.ones((n, n), np.float32)
    c = np.empty_like(a)
    np.dot(a, a, c)
    times = [time_block(lambda: np.dot(a, a, c), 3) for _ in range(5)]
    return 2 * n**3 / 1e9 / statistics.median(times)


def fit_against_train_on_batch(d, h, k, n, n_batches, rounds):
    """Median over rounds of (fit's time a step / train_on_batch's), and each one's
    median time a step (s), for the same n_batches steps from the same weights."""
    weights, _, _ = make_problem(d, h, k, n)
    rng = np.random.default_rng(2)
    X = rng.standard_normal((n_batches * n, d)).astype(np.float32)
    y = rng.integers(0, k, n_batches * n)
    models = {}
    for name in ("fit", "train_on_batch"):
        model = nl.Sequential([nl.Dense(d, h, activation="relu"), nl.Dense(h, k)]).build()
        model.set_parameters(weights)
        models[name] = model, nl.optim.Adam(lr=LR, betas=BETAS, eps=EPS)

    def by_fit():
        model, opt = models["fit"]
        model.fit(X, y, optimizer=opt, batch_size=n, shuffle=False, verbose=0, backend="cpu")

    def by_train_on_batch():
        model, opt = models["train_on_batch"]
        for b in range(n_batches):
            rows = slice(b * n, (b + 1) * n)
            model.train_on_batch(X[rows], y[rows], optimizer=opt, backend="cpu")

    by_fit(), by_train_on_batch()  # the same steps: the same weights
    for name, p in models["fit"][0].parameters().items():
        if not np.array_equal(p, models["train_on_batch"][0].parameters()[name]):
            raise SystemExit(f"fit and train_on_batch disagree on {name} after the same steps")
    times = {"fit": [], "train_on_batch": []}
    for r in range(rounds):
        pair = [("fit", by_fit), ("train_on_batch", by_train_on_batch)]
        for name, run in pair if r % 2 == 0 else pair[::-1]:
            times[name].append(time_block(run, 1) / n_batches)
    ratio = statistics.median(
        f / t for f, t in zip(times["fit"], times["train_on_batch"], strict=True)
    )
    return ratio, statistics.median(times["fit"]), statistics.median(times["train_on_batch"])


def fit_against_torch(d, h, k, n_samples, batch, epochs, rounds):
    """``fit`` (compiled epochs, and layer by layer) against the same loop in PyTorch
    eager: ``epochs`` shuffled epochs of ``n_samples`` in batches of ``batch``, Adam.
    Returns each contender's per-round times (s)."""
    weights, _, _ = make_problem(d, h, k, batch)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((n_samples, d)).astype(np.float32)
    y = rng.integers(0, k, n_samples)
    runs = {}
    for name, flag in (("nnlib fit", True), ("nnlib fit, layers", False)):
        model = nl.Sequential([nl.Dense(d, h, activation="relu"), nl.Dense(h, k)]).build()
        model.set_parameters(weights)
        opt = nl.optim.Adam(lr=LR, betas=BETAS, eps=EPS)

        def run(model=model, opt=opt, flag=flag):
            history = model.fit(
                X, y, optimizer=opt, epochs=epochs, batch_size=batch, seed=0, verbose=0,
                backend="cpu", compiled=flag,
            )  # fmt: skip
            return history.path

        runs[name] = run
    try:
        import torch

        torch.set_num_threads(2)
        net = torch.nn.Sequential(torch.nn.Linear(d, h), torch.nn.ReLU(), torch.nn.Linear(h, k))
        opt_t = torch.optim.Adam(net.parameters(), lr=LR, betas=BETAS, eps=EPS)
        xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        gen = torch.Generator().manual_seed(0)

        def torch_fit():
            for _ in range(epochs):
                order = torch.randperm(n_samples, generator=gen)
                for lo in range(0, n_samples, batch):
                    idx = order[lo : lo + batch]
                    opt_t.zero_grad(set_to_none=True)
                    loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
                    loss.backward()
                    opt_t.step()
            return "torch eager"

        runs["torch eager loop"] = torch_fit
    except ImportError:
        print("  torch eager loop: skipped, PyTorch is not installed")
    paths = {name: run() for name, run in runs.items()}  # warm up (and compile)
    print("  paths: " + ", ".join(f"{name}: {path}" for name, path in paths.items()))
    names = list(runs)
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(time_block(runs[name], 1))
    return times


IMPORT_CODE = (
    "import time; t0 = time.perf_counter()\n"
    "import nnlib, sys\n"
    "print(time.perf_counter() - t0)\n"
    "print(int(any(m.startswith(('numba.cuda', 'numba_cuda')) for m in sys.modules)))\n"
)


def first_step_code(d, h, k, n):
    return (
        "import time; t0 = time.perf_counter()\n"
        "import numpy as np, nnlib as nl\n"
        f"m = nl.Sequential([nl.Dense({d}, {h}, init='he', activation='relu'), "
        f"nl.Dense({h}, {k})], seed=0)\n"
        f"X = np.random.default_rng(0).standard_normal(({n}, {d})).astype(np.float32)\n"
        f"y = np.arange({n}) % {k}\n"
        "m.train_on_batch(X, y, optimizer=nl.optim.Adam(lr=1e-3), backend='cpu')\n"
        "print(time.perf_counter() - t0)\n"
    )


def time_first_step(code, cache_dir, python=sys.executable):
    """(wall time of ``python -c code``, the first number it prints)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, NNLIB_CACHE_DIR=cache_dir)
    t0 = time.perf_counter()
    proc = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{python} -c ... failed:\n{proc.stderr}")
    return time.perf_counter() - t0, float(proc.stdout.split()[0])


COMPILE_CODE = (
    "import time, sys, numpy as np, nnlib as nl\n"
    "layers = eval(sys.argv[1])\n"
    "m = nl.Sequential(layers, seed=0)\n"
    "X = np.random.default_rng(0).standard_normal((64, m.input_features)).astype(np.float32)\n"
    "y = np.arange(64) % m.output_features\n"
    "opt = nl.optim.Adam()\n"
    "m.train_on_batch(X, y, optimizer=opt, compiled=False)  # the kernels, loaded\n"
    "t0 = time.perf_counter()\n"
    "m.train_on_batch(X, y, optimizer=opt)\n"
    "print(time.perf_counter() - t0, m.training_path)\n"
)
STRUCTURES = [
    "[nl.Dense(784, 256, activation='relu'), nl.Dense(256, 10)]",
    "[nl.Dense(64, 128, activation='relu'), nl.Dropout(0.2), nl.Dense(128, 64), nl.Tanh(), "
    "nl.Dense(64, 10)]",
]


def compile_times(runs, python=sys.executable):
    """The first compiled step of a structure in a fresh process: with nnlib's step cache
    empty (the step is compiled; the kernels' own Numba cache stays warm), then loaded
    from that cache by the next process."""
    for layers in STRUCTURES:
        cold, warm = [], []
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as steps:
                env = dict(os.environ, NNLIB_CACHE_DIR=steps)
                for into in (cold, warm):
                    proc = subprocess.run(
                        [python, "-c", COMPILE_CODE, layers], env=env, capture_output=True,
                        text=True,
                    )  # fmt: skip
                    if proc.returncode:
                        raise SystemExit(proc.stderr)
                    into.append(float(proc.stdout.split()[0]))
        print(
            f"  {layers}: compiled {statistics.median(cold):.2f} s "
            f"({', '.join(f'{t:.2f}' for t in cold)}), loaded from the cache "
            f"{1e3 * statistics.median(warm):.0f} ms (median of {runs})"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--block", type=int, default=10, help="steps per timed block")
    parser.add_argument("--first-step-runs", type=int, default=5)
    parser.add_argument("--cold-runs", type=int, default=2)
    parser.add_argument("--skip-first-step", action="store_true")
    parser.add_argument("--fit-batches", type=int, default=20, help="batches of a fit epoch")
    parser.add_argument("--fit-rounds", type=int, default=30)
    parser.add_argument("--skip-fit", action="store_true")
    parser.add_argument("--skip-models", action="store_true", help="only fit and start-up")
    parser.add_argument(
        "--compile-time", type=int, default=0, metavar="RUNS",
        help="time the compiled step's first compile and cache load, RUNS times, and stop",
    )  # fmt: skip
    parser.add_argument(
        "--check-only", action="store_true", help="only check the contenders (no timing)"
    )
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter for the start-up timings"
    )
    args = parser.parse_args()

    print(
        f"Python {platform.python_version()}, numpy {np.__version__}, numba "
        f"{numba.__version__} ({numba.get_num_threads()} threads), {os.cpu_count()} cores, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
        f"OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT')}"
    )
    for peer in ("torch", "jax"):
        try:
            mod = __import__(peer)
            print(f"{peer} {mod.__version__}")
        except ImportError:
            pass
    print(f"load average at start: {os.getloadavg()}")
    if args.compile_time:
        print("compile time of the compiled step (64 examples, Adam, float32):")
        compile_times(args.compile_time, args.python)
        print(f"load average at end: {os.getloadavg()}")
        return
    print(
        f"{args.rounds} rounds x {args.block} steps per contender; "
        "speedup = median over rounds of (contender time / nnlib cpu time)"
    )

    for d, h, k, n in [] if args.skip_models else CONFIGS:
        print(f"\n{d}-{h}-{k} MLP, batch {n}")
        weights, X, y = make_problem(d, h, k, n)
        for name, made, why in contenders(weights, X, y):
            if made is None:
                print(f"  {name}: skipped, {why}")
        bad = validate(weights, X, y)
        if args.check_only:
            continue
        # fresh state for timing, from the same weights
        steps = {}
        for name, made, _ in contenders(weights, X, y):
            if made is not None and name not in bad:
                steps[name] = (made[0], getattr(made[0], "block", None))
        floor_flops = None
        if (d, h, n) == (784, 1024, 512):
            floor_step, floor_flops = matmul_floor(weights, X)
            steps["np.dot floor"] = (floor_step, None)
        times = bench(steps, args.rounds, args.block)
        cpu = times["nnlib cpu"]
        print(
            f"  {'contender':14s} {'median ms':>10s} {'best ms':>9s} {'speedup of nnlib cpu':>22s}"
        )
        for name, ts in times.items():
            ratio = statistics.median(t / c for t, c in zip(ts, cpu, strict=True))
            sp = "" if name == "nnlib cpu" else f"{ratio:.2f}x"
            if name == "np.dot floor":
                sp = f"{ratio:.2f} (= throughput fraction)"
            print(
                f"  {name:14s} {1e3 * statistics.median(ts):10.3f} {1e3 * min(ts):9.3f} {sp:>22s}"
            )
        if floor_flops:
            gf = floor_flops / 1e9
            print(
                f"  step matmul work {gf:.2f} GFLOP: nnlib cpu {gf / statistics.median(cpu):.1f} "
                f"GFLOP/s, np.dot floor {gf / statistics.median(times['np.dot floor']):.1f} GFLOP/s"
            )
            print(f"  big 2048^3 float32 GEMM: {big_gemm_gflops():.1f} GFLOP/s")
        print(f"  load average: {os.getloadavg()}")

    if args.check_only:
        return
    if not args.skip_fit:
        print(
            f"\nfit against train_on_batch, the same {args.fit_batches} steps (one fit epoch), "
            f"{args.fit_rounds} rounds alternated:"
        )
        for d, h, k, n in CONFIGS[:2]:
            ratio, t_fit, t_step = fit_against_train_on_batch(
                d, h, k, n, args.fit_batches, args.fit_rounds
            )
            print(
                f"  {d}-{h}-{k} batch {n}: fit {1e6 * t_fit:.0f} us a step, train_on_batch "
                f"{1e6 * t_step:.0f} us a step, fit / train_on_batch = {ratio:.3f} (median)"
            )
        print(f"  load average: {os.getloadavg()}")

    if not args.skip_fit:
        d, h, k = 64, 128, 10
        print(
            f"\nfit, {d}-{h}-{k}, 4096 samples, batch 64, 2 shuffled epochs, Adam; "
            f"{args.fit_rounds} rounds, rotated:"
        )
        times = fit_against_torch(d, h, k, 4096, 64, 2, args.fit_rounds)
        base = times["nnlib fit"]
        for name, ts in times.items():
            ratio = statistics.median(t / c for t, c in zip(ts, base, strict=True))
            print(
                f"  {name:18s} median {1e3 * statistics.median(ts):8.2f} ms, best "
                f"{1e3 * min(ts):8.2f} ms, {ratio:.2f}x nnlib fit's time"
            )
        print(f"  load average: {os.getloadavg()}")

    if args.skip_first_step:
        return
    python = args.python
    print(f"\nstart-up in {python}:")
    with tempfile.TemporaryDirectory() as warm_dir:
        imports = [time_first_step(IMPORT_CODE, warm_dir, python) for _ in range(7)]
    probe = subprocess.run([python, "-c", IMPORT_CODE], capture_output=True, text=True)
    cuda_loaded = probe.stdout.split()[-1] == "1"
    walls, inner = zip(*imports, strict=True)
    print(
        f"  import nnlib: median {statistics.median(inner):.2f} s "
        f"({statistics.median(walls):.2f} s wall with the interpreter's start), 7 runs; "
        f"CUDA code imported: {'yes' if cuda_loaded else 'no'}"
    )
    d, h, k, n = CONFIGS[1]
    code = first_step_code(d, h, k, n)
    print(f"time to the first finished step, fresh `python -c` ({d}-{h}-{k}, batch {n}):")
    with tempfile.TemporaryDirectory() as warm_dir:
        time_first_step(code, warm_dir, python)  # fills the cache
        warm = [time_first_step(code, warm_dir, python) for _ in range(args.first_step_runs)]
    cold = []
    for _ in range(args.cold_runs):
        with tempfile.TemporaryDirectory() as cold_dir:
            cold.append(time_first_step(code, cold_dir, python))
    for label, runs_ in (("warm cache", warm), ("cold cache", cold)):
        walls, inner = zip(*runs_, strict=True)
        print(
            f"  {label}: median {statistics.median(walls):.2f} s wall (process start to exit), "
            f"{statistics.median(inner):.2f} s from the first line to the step's end; "
            f"all walls {', '.join(f'{w:.2f}' for w in walls)}"
        )
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()

"""``python -m nnlib info``: what nnlib will run on here.

Prints the versions that matter, Numba's threading layer and thread count (or that the
cpu kernels are the bounds-checked debug build, ``NNLIB_DEBUG_KERNELS=1``), each
backend's availability (with the reason when it is not) and the CUDA device, if any.
"""

from __future__ import annotations

import argparse
import platform
import sys


def info() -> str:
    import numba
    import numpy as np
    import scipy

    import nnlib
    from nnlib._backend import BACKENDS, backend_problem

    lines = [
        f"nnlib      {nnlib.__version__}",
        f"python     {platform.python_version()} ({sys.executable})",
        f"numpy      {np.__version__}",
        f"scipy      {scipy.__version__}",
        f"numba      {numba.__version__}",
    ]
    try:
        import numba_cuda

        lines.append(f"numba-cuda {numba_cuda.__version__}")
    except ImportError:
        lines.append("numba-cuda not installed (pip install 'nnlib[cuda]')")

    from nnlib.ops._launch import DEBUG_KERNELS

    if DEBUG_KERNELS:
        # NOTE: serial kernels start no thread pool, so there is no threading layer to name.
        lines.append(
            "cpu kernels: DEBUG build (NNLIB_DEBUG_KERNELS=1): serial, bounds-checked, not "
            "cached; much slower, for finding out-of-range indexing only"
        )
    else:
        # The threading layer is chosen when the first parallel kernel runs: run one.
        nnlib.functional.relu([1.0], backend="cpu")
        lines.append(
            f"numba threading layer: {numba.threading_layer()}, threads: {numba.get_num_threads()}"
        )

    lines.append("backends:")
    for name in BACKENDS:
        problem = backend_problem(name)
        lines.append(f"  {name:<6} {'available' if problem is None else 'unavailable: ' + problem}")
    lines.append(f"default backend now: {_safe_default()}")

    if backend_problem("cuda") is None:
        from numba import cuda

        from nnlib._cuda import SIMULATOR

        if SIMULATOR:
            lines.append("cuda device: the CUDA simulator (NUMBA_ENABLE_CUDASIM=1)")
        else:
            dev = cuda.get_current_device()
            name = dev.name.decode() if isinstance(dev.name, bytes) else dev.name
            lines.append(
                f"cuda device: {name}, compute capability "
                f"{'.'.join(map(str, dev.compute_capability))}"
            )
    return "\n".join(lines)


def _safe_default() -> str:
    from nnlib._backend import get_backend

    try:
        return get_backend()
    except Exception as exc:
        return f"unavailable ({exc})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nnlib", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["info"], help="what to do")
    args = parser.parse_args(argv)
    if args.command == "info":
        print(info())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The exercise build's regions: a solution region becomes a stub, an omitted region (what
the learner chooses, e.g. a kernel's decorator) is left out with no trace."""

from __future__ import annotations

import pytest

from nncourse import notebooks

KERNEL = (
    "from numba import njit, prange\n"
    "\n"
    "\n"
    "### BEGIN OMITTED\n"
    "@njit(parallel=True)\n"
    "### END OMITTED\n"
    "def relu_numba(x):\n"
    '    """max(x, 0) in parallel."""\n'
    "    ### BEGIN SOLUTION\n"
    "    out = np.empty_like(x)\n"
    "    for i in prange(x.size):\n"
    "        out[i] = max(x[i], 0.0)\n"
    "    return out\n"
    "    ### END SOLUTION\n"
)


def test_an_omitted_region_leaves_no_trace_and_the_solution_a_stub():
    stub = notebooks.stub_source(KERNEL, "cell 7")
    assert stub.splitlines() == [
        "from numba import njit, prange",
        "",
        "",
        "def relu_numba(x):",
        '    """max(x, 0) in parallel."""',
        f'    raise NotImplementedError("relu_numba: your code here {notebooks.STUB_MARK}")',
    ]
    compile(stub, "stub", "exec")  # the learner's starting cell is valid Python


@pytest.mark.parametrize(
    "source",
    [
        "### BEGIN OMITTED\n@njit\ndef f(x):\n    return x\n",  # never closed
        "### END OMITTED\nx = 1\n",  # closed, never opened
        "### BEGIN OMITTED\n### BEGIN OMITTED\n### END OMITTED\n",  # nested
        "def f(x):\n    ### BEGIN SOLUTION\n    ### BEGIN OMITTED\n    ### END OMITTED\n"
        "    ### END SOLUTION\n",  # inside a solution region
    ],
    ids=["unclosed", "unopened", "nested", "inside a solution"],
)
def test_a_misplaced_omitted_marker_is_a_build_error(source):
    with pytest.raises(notebooks.BuildError, match="OMITTED"):
        notebooks.stub_source(source, "cell 7")

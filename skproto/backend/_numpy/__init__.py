"""NumPy kernels, one module per family (distances, statistics, mixture, transport).

Every kernel is one GEMM per row chunk plus a cheap reduction. Chunks are planned by
:mod:`skproto.backend._dispatch` so that the temporaries of one chunk stay under
``working_memory`` MiB. Inputs arrive validated from the public functions of
:mod:`skproto.backend` (same floating dtype for ``X`` and ``P``), and results keep
that dtype unless a kernel says it accumulates in float64.
"""

"""PyTorch kernels, one module per family, same signatures and results as the numpy ones.

They take and return numpy arrays; see :mod:`skproto.backend._torch._common` for how
data moves to the configured device.
"""

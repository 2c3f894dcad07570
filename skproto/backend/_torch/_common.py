"""Device placement, transfers and row norms: the torch building blocks of every family.

The torch kernels take and return numpy arrays: each row chunk of ``X`` is moved to
the configured device once, constants once per call, and only the (small) results
come back. This package is the only place in skproto that imports torch at run time.
"""

import numpy as np
import torch

from ..._config import get_config, resolve_device_name

def resolve_device(device=None):
    """The torch.device for a config value ("cpu", "cuda", "cuda:N", "mps", "auto")."""
    device = get_config()["device"] if device is None else device
    return torch.device(resolve_device_name(device))


def to_device(array, device):
    return torch.from_numpy(np.ascontiguousarray(array)).to(device, non_blocking=True)


def to_numpy(tensor):
    return tensor.detach().cpu().numpy()


def to_scalars(tensor):
    """The few numbers (a 0-d or short 1-d tensor) the host needs for control flow.

    The only device->host read besides :func:`to_numpy`: a few bytes, for example
    once per iteration of a loop that otherwise stays on the device (its
    convergence test). Returns a float, or a list of floats for a 1-d tensor.
    """
    return tensor.detach().tolist()


def row_norms_sq(T):
    return torch.einsum("ij,ij->i", T, T)


def row_scale_and_norm(T):
    """Torch twin of the numpy ``row_scale_and_norm``: ``x / ||x|| = (x / scale) / norm``."""
    sq = row_norms_sq(T)
    scale = torch.ones_like(sq)
    norm = torch.sqrt(sq)
    bad = ~(torch.isfinite(sq) & (sq >= torch.finfo(T.dtype).tiny))
    if bool(bad.any()):
        Tb = T[bad]
        big = Tb.abs().amax(dim=1) if T.shape[1] else sq[bad]
        nonzero = big > 0
        scale[bad] = torch.where(nonzero, big, torch.ones_like(big))
        norm_b = torch.sqrt(row_norms_sq(Tb / scale[bad][:, None]))
        norm[bad] = torch.where(nonzero, norm_b, torch.zeros_like(norm_b))
    return scale, norm


def divide_by_row_norms(S, T):
    """``S[i] / ||T[i]||`` in place (0 where T[i] is zero), any trailing shape of S."""
    scale, norm = row_scale_and_norm(T)
    shape = (-1,) + (1,) * (S.ndim - 1)
    S /= scale.reshape(shape)
    S /= torch.where(norm > 0, norm, torch.ones_like(norm)).reshape(shape)
    return S


def normalize_rows(T):
    """Rows of the tensor T at unit L2 norm, whatever their scale; zero rows stay zero."""
    return divide_by_row_norms(T.clone(), T)


@torch.inference_mode()
def l2_normalize(X, working_memory):
    """Rows of X (numpy) scaled to unit L2 norm on the device, in row chunks."""
    from .._dispatch import row_chunks

    device = resolve_device()
    out = np.empty_like(X)
    # The chunk on the device, its normalised copy and the rescaled rows.
    for rows in row_chunks(X.shape[0], 3 * X.itemsize * X.shape[1], working_memory):
        out[rows] = to_numpy(normalize_rows(to_device(X[rows], device)))
    return out

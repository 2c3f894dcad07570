"""Device placement, transfers and row norms: the torch building blocks of every family.

The torch kernels take and return numpy arrays: each row chunk of ``X`` is moved to
the configured device once, constants once per call, and only the (small) results
come back. This package is the only place in skproto that imports torch at run time.
"""

import numpy as np
import torch

from ..._config import get_config, resolve_device_name

TINY = 1e-12


def resolve_device(device=None):
    """The torch.device for a config value ("cpu", "cuda", "cuda:N", "mps", "auto")."""
    device = get_config()["device"] if device is None else device
    return torch.device(resolve_device_name(device))


def to_device(array, device):
    return torch.from_numpy(np.ascontiguousarray(array)).to(device, non_blocking=True)


def to_numpy(tensor):
    return tensor.detach().cpu().numpy()


def row_norms_sq(T):
    return torch.einsum("ij,ij->i", T, T)


def safe_inverse_norms(T):
    norms = torch.sqrt(row_norms_sq(T))
    return torch.where(norms > TINY, 1.0 / norms.clamp_min(TINY), torch.zeros_like(norms))


@torch.inference_mode()
def l2_normalize(X):
    """Rows of X (numpy) scaled to unit L2 norm on the device; zero rows stay zero."""
    T = to_device(X, resolve_device())
    return to_numpy(T * safe_inverse_norms(T)[:, None])

"""matplotlib, imported only when a plot is drawn, with an error naming the extra."""


def import_pyplot(owner):
    """Return ``matplotlib.pyplot``, or raise an ImportError naming the ``plot`` extra.

    Parameters
    ----------
    owner : str
        What needs matplotlib, for the message (e.g. ``"OODScoreDisplay.plot"``).

    Returns
    -------
    pyplot : module
        ``matplotlib.pyplot``.

    Examples
    --------
    >>> from skproto.utils._plotting import import_pyplot
    >>> import_pyplot("an example").__name__
    'matplotlib.pyplot'
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            f"{owner} needs matplotlib, which could not be imported ({exc}). "
            "Install it with: pip install 'skproto[plot]' (or pip install matplotlib)."
        ) from exc
    return plt

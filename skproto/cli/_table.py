"""Plain-text tables for the command line."""

import math


def format_accuracy(value):
    """``0.123`` style, ``-`` for NaN (e.g. old-class accuracy at the first step).

    Parameters
    ----------
    value : float
        The number to format.

    Returns
    -------
    text : str

    Examples
    --------
    >>> from skproto.cli._table import format_accuracy
    >>> format_accuracy(0.98765), format_accuracy(float("nan"))
    ('0.988', '-')
    """
    return "-" if math.isnan(value) else f"{value:.3f}"


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return text == "-"
    return True


def print_table(header, rows, file):
    """Print columns padded to their widest cell: text left-aligned, numbers right.

    Parameters
    ----------
    header : list of str
        Column titles.
    rows : list of lists
        Cells (converted with ``str``). A column whose cells are all numbers (or
        ``-``) is right-aligned, with its title.
    file : file-like
        Where to print.

    Examples
    --------
    >>> import sys
    >>> from skproto.cli._table import print_table
    >>> print_table(["model", "acc"], [["nmc", "0.9"], ["teen", "0.95"]], sys.stdout)
    model   acc
    nmc     0.9
    teen   0.95
    """
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    n_columns = len(header)
    widths = [max(len(row[i]) for row in cells) for i in range(n_columns)]
    numeric = [all(_is_number(row[i]) for row in cells[1:]) for i in range(n_columns)]
    for row in cells:
        parts = [cell.rjust(width) if right else cell.ljust(width)
                 for cell, width, right in zip(row, widths, numeric)]
        print("  ".join(parts).rstrip(), file=file)

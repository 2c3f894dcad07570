"""skops-based dump / load, trusting skproto's own types and nothing else.

skops is imported on first use only: ``import skproto.io`` works without it.
"""

import importlib
import inspect
import os
import pkgutil
import zipfile

_INSTALL_HINT = "Install it with: pip install 'skproto[skops]'"


def _require_skops():
    try:
        import skops.io
    except ImportError as exc:
        raise ImportError(
            f"skproto.io needs the optional dependency skops, which could not be imported "
            f"({exc}). {_INSTALL_HINT}"
        ) from exc
    return skops.io


def trusted_types():
    """Names of the types defined in skproto, which :func:`load` trusts.

    The list is computed each time by importing every module of the skproto
    package and collecting the classes defined there (not those it imports from
    other packages), so that a new skproto type, such as a value object stored as
    a fitted attribute, is trusted without being listed anywhere. Modules whose
    optional dependencies are missing are skipped: no file written on this machine
    can hold their types.

    Returns
    -------
    names : list of str
        Sorted ``"module.ClassName"`` names, as :func:`skops.io.get_untrusted_types`
        writes them.

    See Also
    --------
    load : Load a model, trusting these types and skops' defaults only.

    Examples
    --------
    >>> from skproto.io import trusted_types
    >>> "skproto.incremental._nearest_mean.NearestMeanClassifier" in trusted_types()
    True
    >>> any(name.startswith("sklearn.") for name in trusted_types())
    False
    """
    import skproto

    names = set()
    for info in pkgutil.walk_packages(skproto.__path__, prefix="skproto."):
        # pytest's conftest files are not the package's, and a __main__ module runs
        # a program when imported (python -m skproto.cli).
        if info.name.rsplit(".", 1)[-1] in ("conftest", "__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:
            continue
        for obj in vars(module).values():
            # Defined in this module: a class imported from numpy, scikit-learn or
            # the standard library into a skproto module is not skproto's to trust.
            if inspect.isclass(obj) and obj.__module__ == module.__name__:
                names.add(f"{obj.__module__}.{obj.__name__}")
    return sorted(names)


def dump(estimator, file):
    """Save a model in the skops format, which :func:`load` reads without running code.

    Use it to share a model, or whenever the file may be loaded by someone who does
    not fully trust its source. For your own files, :func:`joblib.dump` / pickle
    also work (and store any type), but loading a pickle runs code.

    Parameters
    ----------
    estimator : object
        The model: a skproto estimator, a scikit-learn ``Pipeline`` or any object
        that :func:`skops.io.dump` can store. Objects of types that are neither
        skproto's nor trusted by skops by default are written, but :func:`load`
        refuses them.
    file : str, path-like or binary file object
        Where to write (conventionally with the ``.skops`` extension).

    Returns
    -------
    None

    See Also
    --------
    load : Read the file back.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from skproto import NearestMeanClassifier
    >>> from skproto.io import dump, load
    >>> clf = NearestMeanClassifier().fit(np.eye(3), ["a", "b", "c"])
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "model.skops")
    ...     dump(clf, path)
    ...     loaded = load(path)
    >>> loaded.predict([[0.0, 0.9, 0.1]])
    array(['b'], dtype='<U1')
    """
    sio = _require_skops()
    sio.dump(estimator, file)


def load(file):
    """Load a model saved with :func:`dump` (or :func:`skops.io.dump`), running no code.

    The file is accepted only if every type in it is trusted by skops by default
    (numpy, scipy, scikit-learn, Python builtins) or defined in skproto
    (:func:`trusted_types`); anything else is refused before any object is built.

    Parameters
    ----------
    file : str, path-like or binary file object
        A file written by :func:`dump`.

    Returns
    -------
    estimator : object
        The saved model.

    Raises
    ------
    skops.io.exceptions.UntrustedTypesFoundException
        A TypeError, if the file holds any other type; the message lists them.
    ValueError
        If the file is not in the skops format (e.g. a pickle or joblib file).

    See Also
    --------
    dump : Save a model.
    trusted_types : The skproto types that are trusted.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> import skproto.io
    >>> from skproto import NearestMeanClassifier
    >>> clf = NearestMeanClassifier().fit(np.eye(2), [0, 1])
    >>> buffer = io.BytesIO()
    >>> skproto.io.dump(clf, buffer)
    >>> _ = buffer.seek(0)
    >>> skproto.io.load(buffer).prototypes_
    array([[1., 0.],
           [0., 1.]])
    """
    sio = _require_skops()
    from skops.io.exceptions import UntrustedTypesFoundException

    if isinstance(file, (str, os.PathLike)):
        name, path, data = repr(os.fspath(file)), os.fspath(file), None
    else:
        # A file object is read once: skops' type listing reads paths or bytes only.
        name, path, data = "The file object", None, file.read()
        if not data:
            raise ValueError("The file object is empty: it holds no skops model.")
    try:
        if data is None:
            untrusted = sio.get_untrusted_types(file=path)
        else:
            untrusted = sio.get_untrusted_types(data=data)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(
            f"{name} is not a skops file (a zip archive with a schema.json, as written "
            "by skproto.io.dump or skops.io.dump). A pickle or joblib file must be "
            "read with joblib.load or pickle, which run code from the file: do that only "
            "for files you wrote yourself."
        ) from exc
    trusted = trusted_types()
    refused = sorted(set(untrusted) - set(trusted))
    if refused:
        error = UntrustedTypesFoundException(refused)
        # skops' own message lists the types (with its notes on known-unsafe ones);
        # say which file, and why, around it.
        message = (
            f"{name} holds types that skproto.io.load does not trust. {error.args[0]} "
            "skproto.io.load trusts only the types defined in skproto and those skops "
            "trusts by default (numpy, scipy, scikit-learn, Python builtins), because "
            "building an object of another type can run code. If you trust whoever "
            "wrote the file, review these types and load it with skops.io.load(file, "
            "trusted=skproto.io.trusted_types() + [...])."
        )
        error.args = (message,)
        raise error
    if data is None:
        return sio.load(path, trusted=trusted)
    return sio.loads(data, trusted=trusted)

"""The ``skproto`` console command: demos, image encoding and protocol evaluation.

``skproto demo`` runs the package's tasks on scikit-learn's bundled digits data (no
download), ``skproto encode`` turns image files into open_clip embeddings, ``skproto
evaluate`` runs a class-incremental or few-shot protocol on saved embeddings. Errors in
the arguments or the inputs print one line and exit with status 2, as argparse does.
"""

import argparse

from .. import __version__, config_context
from ._demo import run_demo, run_fscil_demo, run_gcd_demo, run_ood_demo
from ._encode import run_encode
from ._evaluate import ESTIMATORS, run_evaluate

__all__ = ["main", "run_demo", "run_encode", "run_evaluate"]

# The user's mistakes (bad values, missing files or extras) end as one line; anything
# else is a bug and keeps its traceback.
_USER_ERRORS = (ValueError, ImportError, OSError, RuntimeError)

_DESCRIPTION = (
    "Prototype-based learning on frozen embeddings, from the command line: "
    "'skproto demo' runs each task on scikit-learn's digits (no download), "
    "'skproto encode' embeds image files with open_clip, 'skproto evaluate' runs an "
    "incremental protocol on the embeddings. 'skproto COMMAND --help' for details."
)


class _Parser(argparse.ArgumentParser):
    """argparse, with errors on one line: ``prog: error: message (see prog --help)``."""

    def error(self, message):
        message = " ".join(str(message).split()).rstrip(".")
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _int_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


_TASKS = ("cil", "fscil", "gcd", "ood", "all")


def _build_parser():
    parser = _Parser(prog="skproto", description=_DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"skproto {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)

    demo = sub.add_parser(
        "demo", help="run a task on scikit-learn's digits data (no download)",
        description="Run skproto's tasks on scikit-learn's bundled digits data (8x8 "
        "images, 10 classes, no download) and print a table per task.",
    )
    demo.add_argument(
        "--task", choices=_TASKS, default="cil",
        help="cil: class-incremental stream with the nearest class mean (the default, "
        "under a second); fscil: few-shot sessions, nearest mean vs TEEN; gcd: category "
        "discovery with the semi-supervised GMM; ood: OOD detection with PALM "
        "prototypes; all: the four (default: %(default)s)",
    )
    demo.add_argument("--initial", type=_int_at_least(1), default=2, metavar="N",
                      help="cil: classes of the first step (default: %(default)s)")
    demo.add_argument("--increment", type=_int_at_least(1), default=2, metavar="N",
                      help="cil: new classes per later step (default: %(default)s)")
    demo.add_argument("--metric", choices=["cosine", "euclidean"], default="cosine",
                      help="cil: similarity of the nearest class mean "
                      "(default: %(default)s)")
    demo.add_argument("--shots", type=_int_at_least(1), default=1, metavar="K",
                      help="fscil: training samples per novel class (default: "
                      "%(default)s; with 5 shots the plain nearest mean does as well "
                      "as TEEN on these pixel features)")
    demo.add_argument("--backend", choices=["numpy", "torch"], default="numpy",
                      help="compute backend; torch needs the torch extra "
                      "(default: %(default)s)")
    demo.add_argument("--seed", type=_int_at_least(0), default=0,
                      help="seed of the splits, class orders and models "
                      "(default: %(default)s)")

    encode = sub.add_parser(
        "encode", help="embed image files with open_clip into an .npz file",
        description="Embed image files with a frozen open_clip image tower and save "
        "the embeddings (X), the file paths and optionally the labels (y) in an .npz "
        "file. Needs the clip extra: pip install 'skproto[clip]'.",
    )
    encode.add_argument("images", nargs="+", metavar="IMAGES",
                        help="image files, or folders searched recursively for "
                        ".bmp .gif .jpeg .jpg .png .tif .tiff .webp files")
    encode.add_argument("--model", required=True, metavar="NAME",
                        help="open_clip model: an architecture (e.g. ViT-B-32), "
                        "local-dir:PATH or hf-hub:ORG/REPO")
    encode.add_argument("--pretrained", default=None, metavar="TAG_OR_PATH",
                        help="pretrained tag (e.g. laion2b_s34b_b79k, downloaded once) "
                        "or checkpoint file; omitted: random weights")
    encode.add_argument("-o", "--output", required=True, metavar="FILE.npz",
                        help="output file (.npz is appended if missing)")
    encode.add_argument("--labels-from-folders", action="store_true",
                        help="save y: each image labelled with the name of its folder "
                        "(root/LABEL/image.jpg)")
    encode.add_argument("--batch-size", type=_int_at_least(1), default=64, metavar="N",
                        help="images per forward pass (default: %(default)s)")
    encode.add_argument("--device", default="auto",
                        help="torch device: auto (CUDA if available), cpu, cuda, "
                        "cuda:1, mps (default: %(default)s)")
    encode.add_argument("--n-jobs", type=int, default=None, metavar="N",
                        help="threads decoding images while the model runs; -1: one "
                        "per CPU (default: in the main thread)")
    encode.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp32",
                        help="precision of the weights; the output is float32 "
                        "(default: %(default)s)")
    encode.add_argument("--no-normalize", dest="normalize", action="store_false",
                        help="keep the raw embeddings instead of L2-normalising them")
    encode.add_argument("--progress", action=argparse.BooleanOptionalAction,
                        default=None,
                        help="progress bar on stderr (default: only in a terminal)")
    encode.add_argument("--cache-dir", default=None, metavar="DIR",
                        help="where pretrained weights are looked for / downloaded "
                        "(default: the Hugging Face cache)")

    evaluate = sub.add_parser(
        "evaluate", help="run an incremental protocol on saved embeddings",
        description="Run a class-incremental (cil) or few-shot class-incremental "
        "(fscil) protocol on embeddings saved in an .npz file (arrays X and y, as "
        "written by 'skproto encode --labels-from-folders'), print the accuracy after "
        "each step and the protocol's summary metrics.",
    )
    evaluate.add_argument("embeddings", metavar="EMBEDDINGS.npz",
                          help=".npz file with the embeddings X and labels y")
    evaluate.add_argument("--protocol", choices=["cil", "fscil"], default="cil",
                          help="cil: class-incremental steps; fscil: a base session, "
                          "then few-shot sessions (default: %(default)s)")
    evaluate.add_argument("--estimator", nargs="+", choices=ESTIMATORS, default=["nmc"],
                          metavar="NAME",
                          help="one or more of nmc (nearest class mean, SimpleCIL), "
                          "teen (TEEN calibration), fetril (FeTrIL) (default: nmc)")
    evaluate.add_argument("--test", default=None, metavar="TEST.npz",
                          help="separate test embeddings (default: a stratified split "
                          "of EMBEDDINGS.npz)")
    evaluate.add_argument("--test-size", type=_fraction, default=0.3, metavar="FRACTION",
                          help="fraction held out for testing without --test "
                          "(default: %(default)s)")
    evaluate.add_argument("--initial", type=_int_at_least(1), default=None, metavar="N",
                          help="classes of the first step (cil; default: half of them) "
                          "or base classes (fscil; default: 60%% of them)")
    evaluate.add_argument("--increment", type=_int_at_least(1), default=None, metavar="N",
                          help="new classes per step (cil; default: a tenth of them) or "
                          "ways per session (fscil; default: 5, fewer if the classes "
                          "run out)")
    evaluate.add_argument("--shots", type=_int_at_least(1), default=5, metavar="K",
                          help="fscil: training samples per novel class "
                          "(default: %(default)s)")
    evaluate.add_argument("--metric", choices=["cosine", "euclidean"], default="cosine",
                          help="nmc: similarity (default: %(default)s)")
    evaluate.add_argument("--alpha", type=_fraction, default=0.5,
                          help="teen: calibration strength in [0, 1] "
                          "(default: %(default)s)")
    evaluate.add_argument("--tau", type=_positive_float, default=16.0,
                          help="teen: softmax inverse temperature (default: %(default)s)")
    evaluate.add_argument("--seed", type=_int_at_least(0), default=0,
                          help="seed of the split, class order and shots "
                          "(default: %(default)s)")
    evaluate.add_argument("--plot", default=None, metavar="FILE.png",
                          help="save the accuracy plot to this image file (needs the "
                          "plot extra)")
    evaluate.add_argument("--backend", choices=["numpy", "torch"], default="numpy",
                          help="compute backend (default: %(default)s)")
    return parser, {"demo": demo, "encode": encode, "evaluate": evaluate}


def _run_demo_task(args):
    common = {"backend": args.backend, "seed": args.seed}
    runs = {
        "cil": lambda: run_demo(args.initial, args.increment, args.metric, **common),
        "fscil": lambda: run_fscil_demo(n_shots=args.shots, **common),
        "gcd": lambda: run_gcd_demo(**common),
        "ood": lambda: run_ood_demo(**common),
    }
    tasks = list(runs) if args.task == "all" else [args.task]
    for i, task in enumerate(tasks):
        if i:
            print()
        runs[task]()


def _run(args):
    if args.command == "demo":
        _run_demo_task(args)
    elif args.command == "encode":
        run_encode(
            args.images, model=args.model, output=args.output,
            pretrained=args.pretrained, labels_from_folders=args.labels_from_folders,
            batch_size=args.batch_size, device=args.device, n_jobs=args.n_jobs,
            precision=args.precision, normalize=args.normalize, progress=args.progress,
            cache_dir=args.cache_dir,
        )
    else:
        with config_context(backend=args.backend):
            run_evaluate(
                args.embeddings, protocol=args.protocol, estimators=args.estimator,
                test=args.test, test_size=args.test_size, initial=args.initial,
                increment=args.increment, shots=args.shots, metric=args.metric,
                alpha=args.alpha, tau=args.tau, seed=args.seed, plot=args.plot,
            )


def main(argv=None):
    """Entry point of the ``skproto`` command.

    Parameters
    ----------
    argv : list of str or None, default=None
        The arguments (``sys.argv[1:]`` if None).

    Returns
    -------
    status : int
        0 on success. Errors in the arguments or inputs exit with status 2 and a
        one-line message (``SystemExit``).

    Examples
    --------
    >>> from skproto.cli import main
    >>> main(["demo", "--initial", "5", "--increment", "5"])  # doctest: +ELLIPSIS
    skproto ... demo: class-incremental digits (sklearn), ...
    step  new classes  seen  acc all  acc old  acc new
       0  [4, 6, 2, 7, 3]    5    0.967        -    0.967
       1  [5, 9, 0, 8, 1]   10    0.902    0.911    0.893
    average incremental accuracy: 0.934
    0
    """
    parser, commands = _build_parser()
    args = parser.parse_args(argv)
    try:
        # The backend is checked before any work, e.g. torch missing.
        with config_context(backend=getattr(args, "backend", None)):
            _run(args)
    except _USER_ERRORS as exc:
        commands[args.command].error(str(exc))
    return 0

"""``python -m scratchnet``: train, fine-tune, evaluate and predict from a terminal.

The CLI is a thin shell around the package: the same ``TrainConfig`` presets and ``train()`` loop
the Train page uses, the same model store, the same image preprocessing as the Draw page. Every
error a user can cause ends as one line on stderr and exit status 2; ``main(argv)`` returns the
exit status instead of exiting so tests can run it in-process.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
from pathlib import Path

import numpy as np

from scratchnet import __version__
from scratchnet.errors import ConfigError, DataError, ModelFileError, ScratchnetError

EXIT_OK = 0
EXIT_ERROR = 2  # user-caused: bad option, bad file, model file not ours, bad image
EXIT_DIVERGED = 3  # training blew up; the last finite weights were saved if anything was learned
EXIT_INTERRUPTED = 130  # Ctrl+C (the shell convention, 128 + SIGINT)

EXIT_CODES_HELP = """\
exit status:
  0    success
  2    a problem you can fix: bad option value, unreadable or malformed data/image file,
       a --model that is not a scratchnet model (one line on stderr explains it)
  3    training diverged (loss became NaN/infinite or exploded); the last finite weights are
       saved if at least one progress record was good, the reason is printed on stderr
  130  interrupted with Ctrl+C; during `train` the first Ctrl+C stops after the current step
       and saves what was learned, a second one aborts without saving
"""


class UsageError(Exception):
    """An argparse complaint, turned into one line instead of usage + error + exit."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # noqa: D401 - argparse hook
        raise UsageError(f"{self.prog}: {message} (see --help)")


# --------------------------------------------------------------------------- option types


def _hidden(text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.replace(" ", ",").split(",") if p.strip()]
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"hidden layer sizes must be whole numbers separated by commas, like 256,128; got {text!r}"
        ) from None
    if not sizes:
        raise argparse.ArgumentTypeError("give at least one hidden layer size, like 256,128")
    return sizes


def _layers(text: str) -> str:
    from scratchnet.architecture import canonical
    from scratchnet.errors import ConfigError as _ConfigError

    try:
        return canonical(text)
    except _ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _augment(text: str) -> str:
    from scratchnet.augment import parse_augment
    from scratchnet.errors import ConfigError as _ConfigError

    try:
        return "+".join(parse_augment(text))
    except _ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _batch_size(text: str):
    if text.strip().lower() == "full":
        return "full"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch size must be a whole number or 'full', got {text!r}") from None


def _number(kind):
    def parse(text: str):
        try:
            return kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None

    parse.__name__ = kind.__name__
    return parse


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from scratchnet.augment import AUGMENT_PARTS
    from scratchnet.layers import ACTIVATIONS
    from scratchnet.network import INITS
    from scratchnet.optimizers import OPTIMIZERS
    from scratchnet.training import PRESETS

    parser = _Parser(
        prog="python -m scratchnet",
        description="A neural network written from scratch in NumPy: train it on MNIST, "
        "evaluate it, and let it read your digits.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"scratchnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    # ---- train
    t = sub.add_parser(
        "train",
        help="train a network and save it",
        description="Train a network. Options you give override the preset's values; without "
        "--preset the 'fast' preset is used. Without --out the model goes into the model store "
        "(SCRATCHNET_MODELS_DIR, else <data dir>/models) where the app finds it.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument("--preset", choices=sorted(PRESETS), default="fast",
                   help="starting configuration (default: fast). notebook = the teaching "
                   "notebook's 784-10-10 network with full-batch gradient descent; fast = an MLP "
                   "256-128 in seconds; best = a small convolutional net that reads people best "
                   "(a few minutes)")
    arch = t.add_mutually_exclusive_group()
    arch.add_argument("--layers", type=_layers, metavar="SPEC",
                      help="the hidden layers, comma-separated: conv<C>-<K> (C filters, KxK kernel), "
                      "maxpool<K>, dense<N>; e.g. conv16-5,maxpool2,conv32-5,maxpool2,dense128. The "
                      "activation follows every conv and dense layer; the final dense-10 with softmax "
                      "is implied")
    arch.add_argument("--hidden", type=_hidden, metavar="N,N,...",
                      help="hidden layer sizes, e.g. 256,128 (shorthand for --layers dense256,dense128)")
    t.add_argument("--activation", choices=list(ACTIVATIONS), help="follows every conv and dense layer")
    t.add_argument("--init", choices=list(INITS), help="weight initialisation")
    t.add_argument("--optimizer", choices=list(OPTIMIZERS))
    t.add_argument("--lr", type=_number(float), metavar="X", help="learning rate")
    t.add_argument("--lr-schedule", choices=["constant", "cosine"])
    t.add_argument("--momentum", type=_number(float), metavar="X", help="momentum (momentum optimizer)")
    length = t.add_mutually_exclusive_group()
    length.add_argument("--iterations", type=_number(int), metavar="N", help="number of gradient steps")
    length.add_argument("--epochs", type=_number(float), metavar="N", help="passes over the training data")
    t.add_argument("--batch-size", type=_batch_size, metavar="N|full",
                   help="mini-batch size, or 'full' for full-batch gradient descent")
    t.add_argument("--l2", type=_number(float), metavar="X", help="L2 regularisation strength")
    t.add_argument("--seed", type=_number(int), metavar="N", help="seed for weights and shuffling")
    t.add_argument("--augment", nargs="?", const="affine", type=_augment, default=None, metavar="PARTS",
                   help="distort training digits at random: PARTS joined by '+' from "
                   f"{', '.join(AUGMENT_PARTS)} (default with no value: affine, i.e. shifts, "
                   "rotations and scales)")
    t.add_argument("--no-augment", dest="augment", action="store_const", const="",
                   help="no augmentation")
    t.add_argument("--eval-every", type=_number(int), metavar="N",
                   help="steps between progress lines (default: 10 for iteration runs, 1 epoch otherwise)")
    t.add_argument("--dataset", choices=["mnist", "sample"], default="mnist",
                   help="mnist (default; downloaded once, falls back to the bundled 5,000-digit "
                   "sample when offline) or sample")
    t.add_argument("--data-dir", metavar="DIR", help="folder with the MNIST files (in it or in its mnist/ "
                   "folder; downloaded there if missing). Default: $SCRATCHNET_DATA_DIR, else ~/.cache/scratchnet")
    t.add_argument("--csv", metavar="TRAIN.csv", help="train on a CSV file (label,pixel0..pixel783) instead")
    t.add_argument("--test-csv", metavar="TEST.csv", help="test set for --csv")
    t.add_argument("--out", metavar="MODEL.npz", help="write the model to this file instead of the store")
    t.add_argument("--name", help="name in the model store (default: generated from preset, date, accuracy)")
    t.add_argument("--json", action="store_true",
                   help="progress on stderr, then one line of JSON with the results on stdout")
    t.add_argument("--quiet", action="store_true", help="no progress lines")
    t.set_defaults(func=cmd_train)

    # ---- evaluate
    e = sub.add_parser(
        "evaluate",
        help="test accuracy of a saved model",
        description="Accuracy of a model on the MNIST test set, or on a CSV file.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument("--model", required=True, metavar="M", help="model file, or a model name in the store")
    e.add_argument("--data-dir", metavar="DIR", help="folder with the MNIST files (as for train)")
    e.add_argument("--csv", metavar="TEST.csv", help="evaluate on this CSV (label,pixel0..pixel783)")
    e.add_argument("--json", action="store_true", help="one line of JSON: test_accuracy, n")
    e.set_defaults(func=cmd_evaluate)

    # ---- predict
    p = sub.add_parser(
        "predict",
        help="read digits from image files",
        description="Predict the digit in each image. Any format Pillow opens, any size, dark ink "
        "on light paper or the other way round; images are cropped, scaled and centred like MNIST.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, metavar="M", help="model file, or a model name in the store")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per image and line: path, digit, confidence, probabilities")
    p.set_defaults(func=cmd_predict)

    # ---- finetune
    f = sub.add_parser(
        "finetune",
        help="teach a model someone's handwriting from a folder of labelled drawings",
        description="Fine-tune a copy of a model on a folder of labelled drawings (labels.csv with at "
        "least filename,label; images in any format Pillow reads, next to it), mixing in replayed "
        "MNIST digits so it does not forget everybody else. Accuracy on the drawings before and "
        "after is cross-validated (each drawing read by a model that did not learn from it). If "
        "MNIST validation accuracy would fall by more than 1 point, nothing is saved and the "
        "base is kept. The app's own labelled drawings are in <data dir>/drawings.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    f.add_argument("--model", required=True, metavar="M", help="the base model: a file, or a name in the store")
    f.add_argument("--drawings", required=True, metavar="DIR", help="folder with labels.csv and the images")
    f.add_argument("--out", metavar="M2.npz", help="write the personal model here (default: the store, "
                   "as <base>-personal-<date>)")
    f.add_argument("--steps", type=_number(int), metavar="N", help="fine-tuning steps (default 60)")
    f.add_argument("--data-dir", metavar="DIR", help="MNIST for the replayed digits (as for train; "
                   "the bundled sample when it is missing)")
    f.add_argument("--json", action="store_true",
                   help="end with one line of JSON: model, train_seconds, n_drawings, drawings_before, "
                   "drawings_after, val_before, val_after, refused, message")
    f.set_defaults(func=cmd_finetune)

    # ---- models
    m = sub.add_parser("models", help="list the models in the store")
    m.add_argument("--json", action="store_true", help="one line of JSON: a list of models")
    m.set_defaults(func=cmd_models)
    return parser


# --------------------------------------------------------------------------- helpers


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _fmt_acc(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def _fmt_epoch(e: float) -> str:
    return f"{e:.2f}".rstrip("0").rstrip(".")


def progress_line(p, by_iterations: bool) -> str:
    """One progress record in the notebook's words ("Iteration 10: train accuracy ...")."""
    head = f"Iteration {p.step}" if by_iterations else f"Epoch {_fmt_epoch(p.epoch)}"
    parts = [f"train accuracy {_fmt_acc(p.train_accuracy)}"]
    if p.val_accuracy is not None:
        parts.append(f"validation accuracy {_fmt_acc(p.val_accuracy)}")
    loss = "n/a" if not math.isfinite(p.loss) else f"{p.loss:.4g}"
    parts.append(f"loss {loss}")
    parts.append(f"{p.seconds:.1f} s")
    return f"{head}: " + ", ".join(parts)


def _finite(x):
    return x if isinstance(x, (int, float)) and math.isfinite(x) else None


def _config_from_args(args):
    from scratchnet.training import PRESETS

    config = PRESETS[args.preset]
    over = {}
    for field in ("layers", "hidden", "activation", "init", "optimizer", "lr", "lr_schedule", "momentum",
                  "l2", "seed", "augment", "eval_every"):
        value = getattr(args, field)
        if value is not None:
            over[field] = value
    if args.iterations is not None:
        over.update(iterations=args.iterations, epochs=None)
    elif args.epochs is not None:
        over.update(epochs=args.epochs, iterations=None)
    if args.batch_size is not None:
        over["batch_size"] = None if args.batch_size == "full" else args.batch_size
    config = config.replace(**over)
    config.validate()  # refuse bad values before loading (maybe downloading) any data
    return config


def _load_train_data(args):
    from scratchnet import datasets

    if args.test_csv and not args.csv:
        raise ConfigError("--test-csv needs --csv (the training CSV) as well.")
    if args.csv:
        return datasets.load_csv(args.csv, test_source=args.test_csv)
    if args.dataset == "sample":
        return datasets.load_sample()
    return datasets.load_mnist(args.data_dir, progress=_download_progress)


def _download_progress(name, done, total) -> None:
    if done == 0:
        size = f" ({total / 2**20:.1f} MB)" if total else ""
        _err(f"Downloading {name}{size}...")


def _describe(config, ds, net) -> str:
    n = len(ds.X_train)
    steps = config.total_steps(n)
    length = (f"{config.iterations:,} iterations" if config.iterations is not None
              else f"{_fmt_epoch(float(config.epochs))} epochs ({steps:,} steps)")
    batch = "full batch" if config.batch_size is None else f"batch {config.effective_batch_size(n)}"
    return (f"Network {net.describe()} ({config.activation}, {config.init} init, {net.n_params:,} parameters); "
            f"{config.optimizer} lr {config.lr:g}, {batch}, {length}"
            + (f", augmented ({config.augment.replace('+', ', ')})" if config.augment else ""))


class _StopOnSigint:
    """First Ctrl+C asks the loop to stop between steps (weights stay consistent); second aborts."""

    def __init__(self, say):
        self.event = threading.Event()
        self._say = say
        self._previous = None
        self.installed = False

    def _handler(self, signum, frame):
        self.event.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        self._say("Stopping after this step; the model will be saved (Ctrl+C again aborts without saving).")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handler)
            self.installed = True
        return self

    def __exit__(self, *exc):
        if self.installed:
            signal.signal(signal.SIGINT, self._previous if self._previous is not None else signal.SIG_DFL)
        return False


# --------------------------------------------------------------------------- train


def _check_out(out_arg: str, example: str) -> None:
    """Refuse an --out that cannot be written before any data is loaded or trained."""
    out = Path(out_arg).expanduser()
    if out.is_dir():
        raise ConfigError(f"--out {out_arg!r} is a folder; give a file name such as {example}.")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"Cannot save the model to {out_arg!r}: folder {str(parent)!r} does not exist.")


def cmd_train(args) -> int:
    from scratchnet.store import ModelStore, save_model
    from scratchnet.training import build_network, run

    config = _config_from_args(args)
    if args.out is not None:
        if args.name is not None:
            raise ConfigError("Give either --out (a file) or --name (a name in the model store), not both.")
        _check_out(args.out, "model.npz")
    elif args.name is not None:
        from scratchnet.store import validate_name

        validate_name(args.name)

    stream = sys.stderr if args.json else sys.stdout

    def say(msg: str) -> None:
        if not args.quiet:
            print(msg, file=stream, flush=True)

    ds = _load_train_data(args)
    for note in ds.notes:
        _err(f"note: {note}")
    config.validate(n_train=len(ds.X_train))
    net = build_network(config, n_inputs=ds.X_train.shape[1])
    say(f"Data: {ds.description}")
    say(_describe(config, ds, net))

    by_iterations = config.iterations is not None
    with _StopOnSigint(say) as guard:
        # With our handler installed a KeyboardInterrupt is the second Ctrl+C: abort without
        # saving. Without it (not the main thread) it is the first: keep what was learned.
        result = run(config, ds, stop=guard.event, on_progress=lambda p: say(progress_line(p, by_iterations)),
                     preset=args.preset, source="cli", net=net, catch_interrupt=not guard.installed)
    last, meta = result.last, result.metadata
    status = result.status
    if status == "diverged":
        _err(last.message)
    elif status == "stopped":
        _err(f"Training stopped by Ctrl+C at step {last.step if last else 0:,}; keeping what was learned.")

    metrics = meta["metrics"]
    dev_acc, test_acc = metrics["val_accuracy"], metrics["test_accuracy"]
    steps, epochs, train_seconds = metrics["steps"], metrics["epochs"], metrics["train_seconds"]
    finite = all(np.isfinite(a).all() for a in net.params())
    model_path = None
    name = None
    if result.learned:
        if args.out is not None:
            model_path = str(save_model(args.out, net, meta))
        else:
            info = ModelStore().save(net, meta, name=args.name)
            model_path, name = str(info.path), info.name
    elif not finite:
        _err("The weights are not finite numbers; no model was saved.")
    else:
        _err("Nothing was learned before training ended; no model was saved.")

    summary = f"Validation accuracy {_fmt_acc(dev_acc)}"
    if test_acc is not None:
        summary += f", test accuracy {_fmt_acc(test_acc)}"
    summary += (f"; {steps:,} step{'s' if steps != 1 else ''} ({_fmt_epoch(epochs)} epochs) "
                f"in {train_seconds:.1f} s of training.")
    say(summary)
    if model_path is not None:
        where = f"Saved model {name!r} to {model_path}" if name else f"Saved model to {model_path}"
        print(where, file=stream, flush=True)  # even with --quiet: the user needs to know where

    if args.json:
        result_line = {
            "status": status,
            "dev_accuracy": dev_acc,
            "test_accuracy": test_acc,
            "train_seconds": train_seconds,
            "iterations": steps,
            "epochs": epochs,
            "model": model_path,
            "name": name,
            "preset": args.preset,
            "architecture": config.layers,
            "dataset": meta["dataset"],
            "config": config.to_dict(),
            "message": meta["message"],
        }
        print(json.dumps(result_line, allow_nan=False, default=_json_default), flush=True)
    if status == "diverged":
        return EXIT_DIVERGED
    if status == "stopped":
        return EXIT_INTERRUPTED
    return EXIT_OK


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(type(obj).__name__)


# --------------------------------------------------------------------------- evaluate / predict


def load_model_arg(spec: str):
    """``--model``: an existing file, else a name in the model store. Returns (net, meta, where)."""
    from scratchnet.store import ModelStore, load_model

    path = Path(spec).expanduser()
    if path.exists():
        net, meta = load_model(path)
        return net, meta, str(path)
    looks_like_path = any(sep in spec for sep in ("/", os.sep)) or spec.lower().endswith(".npz")
    store = ModelStore()
    try:
        net, meta = store.load(spec)
    except ModelFileError:
        if looks_like_path:
            raise ModelFileError(f"Model file {spec!r} does not exist.") from None
        raise ModelFileError(
            f"{spec!r} is neither a model file nor a model in the store ({store.directory}); "
            "`python -m scratchnet models` lists the stored ones."
        ) from None
    return net, meta, str(store.path_for(spec))


def cmd_evaluate(args) -> int:
    from scratchnet import datasets

    net, meta, where = load_model_arg(args.model)
    if args.csv:
        images, labels = datasets.read_csv(args.csv)
        X = images.astype(np.float32) / np.float32(255)
        y = labels
        source = f"csv:{Path(args.csv).name}"
    else:
        ds = datasets.load_mnist(args.data_dir, fallback=False, progress=_download_progress)
        for note in ds.notes:
            _err(f"note: {note}")
        if ds.X_test is None or not len(ds.X_test):
            raise DataError("The MNIST test set is not available; pass --csv TEST.csv to evaluate on a file.")
        X, y, source = ds.X_test, ds.y_test, "mnist-test"
    if X.shape[1] != 784:
        raise DataError(f"The data has {X.shape[1]} pixels per row but the model expects 784.")
    if not len(y):
        raise DataError("There are no rows to evaluate on.")
    acc = net.accuracy(X, y)
    if args.json:
        print(json.dumps({"test_accuracy": acc, "n": int(len(y)), "model": where, "data": source}), flush=True)
    else:
        print(f"Test accuracy {acc:.4f} on {len(y):,} digits ({source}) for {where}")
    return EXIT_OK


def cmd_predict(args) -> int:
    from scratchnet.imaging import load_image, to_mnist

    net, meta, where = load_model_arg(args.model)
    status = EXIT_OK
    for path in args.images:
        try:
            if os.path.isdir(path):
                raise DataError(f"{path!r} is a folder, not an image.")
            image = load_image(path)
            x = to_mnist(image)
            probs = net.predict_proba(x.reshape(1, -1))[0]
        except ScratchnetError as exc:
            _err(f"{path}: {exc}")
            status = EXIT_ERROR
            continue
        except OSError as exc:
            _err(f"{path}: cannot read it ({exc.strerror or exc}).")
            status = EXIT_ERROR
            continue
        digit = int(np.argmax(probs))
        if args.json:
            print(json.dumps({"path": path, "digit": digit, "confidence": float(probs[digit]),
                              "probabilities": [round(float(q), 6) for q in probs]}), flush=True)
        else:
            print(f"{path}: {digit} (confidence {float(probs[digit]):.3f})", flush=True)
    return status


def _architecture(meta: dict) -> str:
    """The SPEC of a stored model (format 2 stores it; format 1 had only sizes)."""
    arch = meta.get("architecture")
    if isinstance(arch, str):
        return arch
    sizes = meta.get("sizes") or []
    return ",".join(f"dense{s}" for s in sizes[1:-1])


def cmd_finetune(args) -> int:
    from scratchnet import datasets, personal
    from scratchnet.store import ModelStore, save_model

    if args.out is not None:
        _check_out(args.out, "personal.npz")
    steps = personal.STEPS if args.steps is None else args.steps
    if not 1 <= steps <= personal.MAX_STEPS:
        raise ConfigError(f"--steps must be from 1 to {personal.MAX_STEPS:,}, got {steps}.")
    base, base_meta, where = load_model_arg(args.model)
    X, y, names = personal.load_drawings(args.drawings)
    ds = datasets.load_mnist(args.data_dir, progress=_download_progress)
    for note in ds.notes:
        _err(f"note: {note}")
    base_name = Path(where).stem
    stream = sys.stderr if args.json else sys.stdout
    print(f"Teaching {base_name} ({base.describe()}) {len(y)} drawings from {args.drawings}; "
          f"replaying digits of {ds.description}.", file=stream, flush=True)
    result = personal.finetune(base, X, y, ds, base_meta=base_meta, base_name=base_name, steps=steps,
                               source="cli-finetune", drawings_meta={"files": names[:personal.MAX_STORED_DRAWINGS]})
    model_path = None
    if not result.refused:
        if args.out is not None:
            model_path = str(save_model(args.out, result.net, result.metadata))
        else:
            info = ModelStore().save(result.net, result.metadata, name=personal.personal_name(base_name))
            model_path = str(info.path)
    (_err if result.refused else lambda m: print(m, file=stream, flush=True))(result.message)
    print(f"Drawings: {_fmt_acc(result.drawings_before)} before, {_fmt_acc(result.drawings_after)} after "
          f"(cross-checked); MNIST validation {_fmt_acc(result.val_before)} -> {_fmt_acc(result.val_after)}; "
          f"{result.train_seconds:.1f} s.", file=stream, flush=True)
    if model_path is not None:
        print(f"Saved the personal model to {model_path}", file=stream, flush=True)
    if args.json:
        line = {"model": model_path, **result.summary()}
        print(json.dumps(line, allow_nan=False, default=_json_default), flush=True)
    return EXIT_OK


def cmd_models(args) -> int:
    from scratchnet.store import ModelStore

    store = ModelStore()
    infos = store.list()
    for problem in store.problems:
        _err(f"note: {problem}")
    rows = []
    for info in infos:
        metrics = info.metadata.get("metrics") if isinstance(info.metadata.get("metrics"), dict) else {}
        rows.append({
            "name": info.name,
            "path": str(info.path),
            "created": info.created.isoformat(timespec="seconds"),
            "architecture": _architecture(info.metadata),
            "sizes": info.metadata.get("sizes"),
            "activation": info.metadata.get("activation"),
            "val_accuracy": _finite(metrics.get("val_accuracy")),
            "test_accuracy": _finite(metrics.get("test_accuracy")),
        })
    if args.json:
        print(json.dumps(rows), flush=True)
        return EXIT_OK
    if not rows:
        print(f"No models in {store.directory}.")
        return EXIT_OK
    active = store.active_name()
    for r in rows:
        acc = r["test_accuracy"] if r["test_accuracy"] is not None else r["val_accuracy"]
        kind = "test" if r["test_accuracy"] is not None else "val"
        shape = "-".join(str(s) for s in r["sizes"]) if r["sizes"] else r["architecture"]
        mark = "*" if r["name"] == active else " "
        print(f"{mark} {r['name']}  {shape} {r['activation']}  {kind} {_fmt_acc(acc)}  {r['created']}")
    return EXIT_OK


# --------------------------------------------------------------------------- entry point


def main(argv=None) -> int:
    """Run the CLI and return the exit status (never raises for user errors)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        _err(str(exc))
        return EXIT_ERROR
    except SystemExit as exc:  # --help / --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    if args.command is None:
        _err(f"{parser.prog}: choose a command: train, finetune, evaluate, predict or models (see --help)")
        return EXIT_ERROR
    try:
        return args.func(args)
    except ScratchnetError as exc:
        _err(f"scratchnet: error: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        _err("Interrupted.")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:  # e.g. permission denied or disk full while writing the model
        target = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        _err(f"scratchnet: error: {exc.strerror or exc}{target}.")
        return EXIT_ERROR
    except MemoryError:
        _err("scratchnet: error: not enough memory; try a smaller network or batch size.")
        return EXIT_ERROR

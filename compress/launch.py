"""Starting and joining the processes of a command: the runner's side of several processes
training one model (DDP itself, inside a process group, is compress.trainer.distributed).

The rules, in one place:
- Under torchrun (RANK, LOCAL_RANK, WORLD_SIZE in the environment) `compress run`/`compress train`
  join one process group for the whole command; with `distributed: {nproc: N}` and no launcher,
  compress starts torch's launcher on its own command line and waits for it.
- Training stages run on every rank, in step; rank 0 alone keeps their files. Every other stage,
  the cache decisions, the manifest and the report run on rank 0 while the others wait for its
  result (`run_on_main`), so every rank takes the same path through a pipeline.
- An error every rank meets at the same point is printed by rank 0 alone (`collective_error`);
  an error on rank 0 in a stage the others wait for is handed to them, so they stop with the
  same exit code instead of waiting; anything else ends the rank, and torchrun ends the others.
  Collectives time out after `timeout_s`, so a lost rank does not hang the rest forever.

Without a process group every helper here is a no-op, so one process runs as it always did.
This module reads the group from torch.distributed itself rather than through trainer/, so the
spine (config, runner, cli) needs no engine to launch.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from compress.errors import CompressError, ConfigError, MirroredError

# torch is imported where a process group is used, so that the command line (which reads
# rank_prefix and pipeline_options) starts without it.
if TYPE_CHECKING:
    from compress.trainer.options import DistributedOptions

T = TypeVar("T")

# Environment variables torchrun sets for each worker.
LAUNCHER_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


def launcher_world_size() -> int:
    """WORLD_SIZE as torchrun set it; 1 when no launcher started this process."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _group():
    """torch.distributed when a group of more than one process exists, else None (no process
    group exists in a process that never imported torch.distributed)."""
    dist = sys.modules.get("torch.distributed")
    if (dist is not None and dist.is_available() and dist.is_initialized()
            and dist.get_world_size() > 1):
        return dist
    return None


def rank() -> int:
    dist = _group()
    return dist.get_rank() if dist else 0


def world_size() -> int:
    dist = _group()
    return dist.get_world_size() if dist else 1


def is_main() -> bool:
    return rank() == 0


def rank_prefix() -> str:
    """'[rank 3] ' on ranks other than 0 (read from the environment, so it works after the
    process group is gone), '' otherwise."""
    r = os.environ.get("RANK", "0") if launcher_world_size() > 1 else "0"
    return "" if r == "0" else f"[rank {r}] "


def pipeline_options(stages, source: str = "") -> DistributedOptions:
    """The one process group a pipeline's training stages share: the largest `nproc` asked for,
    the backend asked for, the longest timeout. Two stages asking for different process counts
    or backends cannot share one group, and that is an error naming both."""
    from compress.trainer.options import DistributedOptions, train_options_of

    chosen: dict[str, tuple[str, Any]] = {}
    timeout = DistributedOptions().timeout_s
    for st in stages:
        o = train_options_of(st)
        if o is None:
            continue
        d = o.distributed
        timeout = max(timeout, d.timeout_s)
        for fld, value, unset in (("nproc", d.nproc, 1), ("backend", d.backend, "auto")):
            if value == unset:
                continue
            if fld in chosen and chosen[fld][1] != value:
                other, was = chosen[fld]
                raise ConfigError(
                    f"{source}: stage '{st.id}', field 'distributed.{fld}': {value!r} differs "
                    f"from {was!r} in stage '{other}'; the stages of a pipeline train in one "
                    "group of processes, so give them the same value")
            chosen[fld] = (st.id, value)
    return DistributedOptions(nproc=chosen.get("nproc", ("", 1))[1],
                              backend=chosen.get("backend", ("", "auto"))[1], timeout_s=timeout)


def should_launch(opts: DistributedOptions) -> bool:
    """More than one process asked for, and no launcher started this one."""
    return opts.nproc > 1 and not any(v in os.environ for v in LAUNCHER_VARS)


def launch(nproc: int, argv: list[str], debug: bool = False) -> int:
    """Run `python -m compress.cli ARGV` in `nproc` local processes with torch's own launcher
    (what `torchrun --standalone --nproc-per-node N` does) and return the exit code to use.

    The workers print their own errors; the launcher's report of a failed worker is only
    shown with --debug. The exit code is that of the first process that failed.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    if "OMP_NUM_THREADS" not in os.environ:
        # torchrun would give each worker one thread; on CPU training that wastes the cores
        # the workers do not share out between them.
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    args = parse_args(["--standalone", "--nproc-per-node", str(nproc), "--max-restarts", "0",
                       "-m", "compress", *argv])
    if not debug:
        # The launcher's loggers set their own levels; this process logs nothing else.
        logging.disable(logging.CRITICAL)
    try:
        run(args)
    except ChildFailedError as e:
        if debug:
            print(e, file=sys.stderr)
        code = e.get_first_failure()[1].exitcode
        return code if code > 0 else 3
    except SignalException:
        return 130
    finally:
        logging.disable(logging.NOTSET)
    return 0


def _backend(name: str) -> str:
    import torch

    cuda = torch.cuda.is_available()
    if name == "nccl" and not cuda:
        raise ConfigError("distributed.backend: nccl needs CUDA, and no CUDA device is "
                          "available; use backend: gloo or auto")
    if name == "gloo" or not cuda:
        return "gloo"
    # CPU tensors (the objects rank 0 hands to the others) go through gloo, CUDA ones NCCL.
    return "cpu:gloo,cuda:nccl"


@contextlib.contextmanager
def process_group(opts: DistributedOptions) -> Iterator[None]:
    """Join the process group torchrun's environment describes, for the duration of the block
    (nothing to do in a single process, or when a group already exists)."""
    if launcher_world_size() <= 1:
        yield
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        yield
        return
    backend = _backend(opts.backend)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available() and local < torch.cuda.device_count():
        torch.cuda.set_device(local)  # NCCL's collectives run on the current device
    dist.init_process_group(backend, timeout=dt.timedelta(seconds=opts.timeout_s))
    try:
        yield
        # Leave together: a rank that tears the group down while another is still inside a
        # collective makes gloo abort the process ("terminate called ...").
        dist.barrier()
    finally:
        dist.destroy_process_group()


def broadcast_object(obj: T) -> T:
    """Rank 0's `obj` on every rank (pickled: only for our own small results, never data)."""
    dist = _group()
    if dist is None:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def collective_error(err: CompressError) -> CompressError:
    """The error to raise when every rank meets `err` at the same point: itself on rank 0, a
    silent stand-in with the same exit code elsewhere, so the message is printed once."""
    return err if is_main() else MirroredError(err.exit_code)


class _Failed:
    def __init__(self, exit_code: int):
        self.exit_code = exit_code


def run_on_main(fn: Callable[[], T], share_errors: bool = True) -> T:
    """`fn()` on rank 0, its result on every rank (the others wait: this is their barrier).

    With `share_errors`, an exception on rank 0 reaches the others as a MirroredError with the
    same exit code. Leave it off when the others may be inside a collective of their own (a
    training stage): then rank 0 just fails, and torchrun ends the rest.
    """
    if _group() is None:
        return fn()
    if is_main():
        try:
            result = fn()
        except BaseException as e:
            if share_errors:
                code = (e.exit_code if isinstance(e, CompressError)
                        else 130 if isinstance(e, KeyboardInterrupt) else 3)
                with contextlib.suppress(Exception):
                    broadcast_object(_Failed(code))
            raise
        return broadcast_object(result)
    result = broadcast_object(None)
    if isinstance(result, _Failed):
        raise MirroredError(result.exit_code)
    return result

"""`tradescout`: the command line. Thin: parse flags, call the pipeline, print.

The commands and the exit path are in `discovery.cli.wiring`. This module is the process's entry
point and owns its garbage collector, so it imports nothing heavy itself: the imports of a run
(typer, pydantic, httpx, pandas, ~100 modules of ours) create ~160,000 objects that live as long
as the process and almost no garbage (~1,000 objects), yet the collector would walk them again
and again while they load (a warm demo run: ~40 ms of collections, ~0.04 s of its wall time).
So `main` loads them with the collector off and then freezes them (`gc.freeze`: moved out of
its sight for good); the run's own garbage is collected as usual. On the way out everything is
frozen once more, so the interpreter's shutdown does not free the module graph object by object
(~0.1 s of a warm demo run): the process's exit returns that memory anyway.

The run itself allocates mostly what it keeps (decoded payloads and their parsed records, held
until the report is assembled), and the youngest generation's default threshold (700 new
containers) had the collector walk that live data again and again to find almost nothing: a
warm 500-ticker run made ~100 young and 8 middle collections (12-14 ms), a warm demo run 21 and
one (~2 ms). `main` raises that threshold to `_YOUNG_THRESHOLD` (3 and 2 collections, 6-8 ms and
0.2 ms; peak RSS unchanged): the rare cyclic garbage (an exception's traceback, a finished task)
waits a little longer, and what reference counting frees, nearly everything, goes at once.

`console` (the `tradescout` script, `python -m discovery.cli`) ends the process itself once the
command is done: after the streams are flushed and the `atexit` functions have run, all that is
left of an interpreter's exit is tearing down the module graph, ~15 ms of a warm demo run (3 %)
spent freeing memory the process's end returns anyway. It leaves the exit to the interpreter
whenever that could matter: a thread other than a daemon still running, a stream that cannot be
flushed, an exit with a message rather than a number.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

_owns_collector = False  # set by `main`: in-process callers (tests) keep their collector as is
_YOUNG_THRESHOLD = 50_000  # new containers between two young collections (CPython's default: 700)


@contextlib.contextmanager
def imports_uncollected() -> Iterator[None]:
    """Around a block of imports: the collector off, then what they loaded frozen (see the
    module). Does nothing unless the process was started through `main`."""
    if not _owns_collector or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def main() -> None:
    """The command line, run in this process: the exit codes of the README (as `SystemExit`),
    no traceback for user errors. The console script is `console`."""
    global _owns_collector
    _owns_collector = True
    gc.set_threshold(_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    try:
        with imports_uncollected():
            from discovery.cli.wiring import run
        run(sys.argv[1:], imports_uncollected())
    finally:
        gc.freeze()


def console() -> None:
    """Console-script entry point: `main`, then the quick exit (see the module)."""
    try:
        main()
    except SystemExit as exc:
        exit_now(exc.code)
        raise
    exit_now(0)


def exit_now(code: object) -> None:
    """End the process with `code` without the interpreter's teardown, once nothing else is
    left to do; otherwise return, and the interpreter exits as it always does."""
    status = 0 if code is None else code
    if type(status) is not int:  # `sys.exit("message")`: the interpreter prints it
        return
    others = [t for t in threading.enumerate() if t is not threading.current_thread()]
    if any(t.is_alive() and not t.daemon for t in others):  # the interpreter joins them
        return
    if not _flushed():
        return
    # CPython's own exit-time call (the module exposes it): logging's shutdown, finalizers, ...
    atexit._run_exitfuncs()
    if _flushed():
        os._exit(status)


def _flushed() -> bool:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a broken pipe or a closed stream: reported as usual
        return False
    return True


def __getattr__(name: str) -> Any:
    """`discovery.cli.app`: the full app, built on first use."""
    if name == "app":
        from discovery.cli.wiring import full_app

        return full_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    console()

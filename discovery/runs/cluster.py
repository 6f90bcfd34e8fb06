"""Many portfolios in one command: each a task on a Dask distributed cluster, or one after
another in this process.

`--scheduler tcp://HOST:PORT` sends the tasks to an existing cluster; `--cluster local:N` starts
one for the command's duration: N process workers with one thread each (a run watches its
process's memory, so two runs never share one), every port on 127.0.0.1, no dashboard pages.
Without either, the portfolios run one after another here.

A task carries nothing secret — the portfolio, the data root and config paths, the upstream
(live, or a sandbox URL), the options — because the scheduler keeps and logs task arguments:
each worker reads API keys and `TRADESCOUT_REDIS_URL` from its own environment (a local
cluster's workers inherit this process's). Workers that use one Redis share every limit, quota,
hold and the cache; on one machine they share the data root's state/ and disk cache as well.

A worker that dies mid-task: the scheduler runs the task again on another worker, and the rerun
finds in the cache every answer the first attempt stored — nothing is fetched twice but what was
in the air when it died. A task's bad input is a result (exit 2 and its sentence), not a failure
for the scheduler to retry. The command's exit code is the worst of its runs (1 > 2 > 3 > 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from discovery.errors import InputError, StorageError
from discovery.fetch.engine import ProgressHook
from discovery.upstream import Target
from services.recordclass import record

if TYPE_CHECKING:
    from distributed import Client

Kind = Literal["discover", "refresh"]
MAX_LOCAL_WORKERS = 64
CONNECT_SECONDS = 10.0
SEVERITY = {0: 0, 3: 1, 2: 2, 1: 3}  # exit codes, least to most severe


@record
class Placement:
    """Where runs go: "process" (here, one after another), "local" (a loopback cluster of
    `workers` processes) or "scheduler" (an existing cluster at `address`)."""

    kind: Literal["process", "local", "scheduler"] = "process"
    workers: int = 0
    address: str | None = None


def parse_placement(scheduler: str | None, cluster: str | None) -> Placement:
    """`--scheduler` / `--cluster` → a Placement; a bad value is one sentence (exit 2)."""
    if scheduler and cluster:
        raise InputError("--scheduler and --cluster exclude each other: choose one.")
    if cluster is not None:
        kind, sep, count = cluster.partition(":")
        if kind != "local" or not sep or not count.isdigit():
            raise InputError(
                f"--cluster {cluster[:80]!r} is not valid: use local:N (N worker processes)."
            )
        workers = int(count)
        if not 1 <= workers <= MAX_LOCAL_WORKERS:
            raise InputError(f"--cluster local:N takes N from 1 to {MAX_LOCAL_WORKERS}.")
        return Placement("local", workers=workers)
    if scheduler is not None:
        try:
            parts = urlsplit(scheduler)
            port = parts.port
        except ValueError:
            port, parts = None, urlsplit("")
        if parts.scheme not in ("tcp", "tls") or not parts.hostname or not port:
            raise InputError(
                f"--scheduler {scheduler[:80]!r} is not valid: use tcp://HOST:PORT "
                "(or tls://HOST:PORT)."
            )
        return Placement("scheduler", address=scheduler)
    return Placement()


@record
class RunSpec:
    """One portfolio's run, as a task argument: paths and options only, never a credential."""

    kind: Kind
    portfolio: str
    data_root: str
    config: str | None = None
    upstream: Literal["live", "sandbox"] = "live"
    sandbox_url: str | None = None
    offline: bool = False
    benchmark: str = "SPY"
    timeframe: str = "all"
    max_concurrency: int | None = None
    memory_limit_mb: int | None = None
    horizon_hours: float = 12.0
    budgets: tuple[tuple[str, int | None], ...] = ()

    @property
    def target(self) -> Target:
        return Target(self.upstream, self.sandbox_url, self.offline)

    @classmethod
    def each(
        cls,
        kind: Kind,
        portfolios: Sequence[str],
        data_root: Path,
        config: Path | None,
        target: Target,
        **options: Any,
    ) -> list[RunSpec]:
        """One spec per portfolio over the same data root, config and upstream."""
        return [
            cls(
                kind,
                name,
                str(data_root.resolve()),
                str(config) if config else None,
                upstream=target.upstream,
                sandbox_url=target.sandbox_url,
                offline=target.offline,
                **options,
            )
            for name in portfolios
        ]


@record
class RunResult:
    """What one run hands back (small: the report stays on the worker's data root)."""

    portfolio: str
    exit_code: int
    report_path: str | None = None
    summary: str = ""
    gaps: int | None = None
    worker: str | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body.pop("summary")
        return body


def worst_exit(codes: Sequence[int]) -> int:
    """The most severe exit code of several runs (1 > 2 > 3 > 0)."""
    return max(codes, key=lambda c: SEVERITY.get(c, 3), default=0)


def run_spec(
    spec: RunSpec, *, worker: str | None = None, progress: ProgressHook | None = None
) -> RunResult:
    """Run one spec in this process (a worker's task, or one of a sequential series)."""
    from discovery.settings import load_settings

    try:
        settings = load_settings(
            Path(spec.config) if spec.config else None, data_root=Path(spec.data_root)
        )
        if spec.kind == "discover":
            return _discover(settings, spec, worker, progress)
        return _refresh(settings, spec, worker)
    except InputError as exc:
        return RunResult(spec.portfolio, 2, worker=worker, error=str(exc))
    except StorageError as exc:
        return RunResult(spec.portfolio, exc.exit_code, worker=worker, error=str(exc))


def _discover(
    settings: Any, spec: RunSpec, worker: str | None, progress: ProgressHook | None
) -> RunResult:
    from discovery.runs.discover import DiscoverOptions, discover_async

    options = DiscoverOptions(
        portfolio=spec.portfolio,
        target=spec.target,
        benchmark=spec.benchmark,
        timeframe=spec.timeframe,
        max_concurrency=spec.max_concurrency,
        memory_limit_mb=spec.memory_limit_mb,
        worker=worker,
    )
    outcome = asyncio.run(discover_async(settings, options, progress=progress))
    return RunResult(
        spec.portfolio,
        outcome.exit_code,
        str(outcome.report_path) if outcome.report_path else None,
        outcome.summary,
        len(outcome.gaps),
        worker,
    )


def _refresh(settings: Any, spec: RunSpec, worker: str | None) -> RunResult:
    from discovery.runs.refresh import refresh_async

    result = asyncio.run(
        refresh_async(
            settings,
            [spec.portfolio],
            target=spec.target,
            horizon=timedelta(hours=spec.horizon_hours),
            budgets=dict(spec.budgets),
            benchmark=spec.benchmark,
            worker=worker,
        )
    )
    body = result.to_json()
    details = {k: body[k] for k in ("refreshed", "skipped_fresh", "skipped_budget", "failed")}
    return RunResult(
        spec.portfolio,
        result.exit_code,
        str(result.report_path) if result.report_path else None,
        "",
        len(result.failed),
        worker,
        details=details,
    )


def run_task(spec: RunSpec) -> RunResult:
    """The function a Dask worker runs: one spec, named after the worker."""
    return run_spec(spec, worker=_worker_name())


def _worker_name() -> str | None:
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    name, address = str(worker.name), str(worker.address)
    return address if name == address else f"{name} {address}"


def run_all(
    specs: Sequence[RunSpec],
    placement: Placement,
    *,
    progress: ProgressHook | None = None,
    on_result: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    """Every spec's result, in the order given: here one after another, or as cluster tasks."""
    if placement.kind == "process":
        done = []
        for spec in specs:
            one = run_spec(spec, progress=progress)
            if on_result is not None:
                on_result(one)
            done.append(one)
        return done
    with _client(placement) as client:
        token = uuid.uuid4().hex[:8]
        futures = [
            client.submit(run_task, spec, key=f"tradescout-{spec.kind}-{i}-{token}", pure=False)
            for i, spec in enumerate(specs)
        ]
        results = []
        for spec, future in zip(specs, futures, strict=True):
            try:
                result: RunResult = future.result()
            except Exception as exc:  # the task died on every worker it was given, or crashed
                result = RunResult(
                    spec.portfolio,
                    1,
                    error=f"the task failed on the cluster ({type(exc).__name__}: {str(exc)[:80]})",
                )
            if on_result is not None:
                on_result(result)
            results.append(result)
        return results


@contextlib.contextmanager
def _client(placement: Placement) -> Iterator[Client]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise InputError(
            "--scheduler and --cluster need Dask distributed: install tradescout[team]."
        ) from None
    if placement.kind == "local":
        with (
            LocalCluster(
                n_workers=placement.workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",  # its plain HTTP routes, on a free loopback port
                scheduler_kwargs={"dashboard": False},
                silence_logs=logging.ERROR,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    assert placement.address is not None
    try:
        client = Client(placement.address, timeout=CONNECT_SECONDS)
    except (OSError, TimeoutError) as exc:
        raise InputError(
            f"the Dask scheduler at {placement.address[:80]} did not answer within "
            f"{CONNECT_SECONDS:g} s ({type(exc).__name__}): check --scheduler."
        ) from None
    with client:
        yield client


def split_budgets(
    settings: Any, target: Target, budgets: dict[str, int], parts: int
) -> tuple[tuple[str, int | None], ...]:
    """Each of `parts` parallel refresh tasks gets an equal share (rounded down) of every
    service's nightly budget (the default, half its daily quota, or `--budget`), so together they
    never spend more than one refresh would."""
    from discovery.runs.refresh import default_budgets
    from discovery.upstream import service_configs
    from services.config import resolve
    from services.registry import SPECS

    configs = service_configs(settings, target)
    quotas = {name: resolve(spec, configs.get(name)).daily_quota for name, spec in SPECS.items()}
    whole: dict[str, int | None] = dict(default_budgets(quotas))
    whole.update(budgets)
    return tuple(
        (name, None if b is None else b // max(1, parts)) for name, b in sorted(whole.items())
    )


def results_table(results: Sequence[RunResult]) -> list[str]:
    """One line per run for the summary of a multi-portfolio command (pure)."""
    lines = [f"{'portfolio':<20} {'exit':>4} {'gaps':>5}  {'worker':<28} report / error"]
    for r in results:
        where = r.error if r.error else (r.report_path or "")
        gaps = "—" if r.gaps is None else str(r.gaps)
        worker = (r.worker or "—")[:28]
        lines.append(f"{r.portfolio[:20]:<20} {r.exit_code:>4} {gaps:>5}  {worker:<28} {where}")
    return lines

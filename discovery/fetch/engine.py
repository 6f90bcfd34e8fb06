"""Stage 3, the one fetch engine: a FetchPlan in, every request's outcome out.

Discover runs it in `cached` mode (cache first, then the network); the nightly refresh in
`fresh` mode (renew entries before they expire). Both get the same machinery:

- one lane per service: every planned request is a task at once, but only as many as the
  service has connections are inside the hub at a time, so a slow service (Alpha Vantage: one
  call per 13 s) never holds back the others;
- the fallback chain: a "nothing known" answer or a failure moves on to the next source;
- phase two: needs that wait for another need's value (SEC filings wait for the CIK map) are
  planned and scheduled the moment that value arrives, alongside whatever is still running;
- the memory ceiling, checked right before each request is handed to the hub: past the hard
  limit nothing new is sent (what was fetched is already in the cache) and the rest fail with
  `memory_ceiling`;
- progress events per service, and results with provenance only: each `ok` payload is handed
  to `on_answer` the moment it is in hand (discover parses it there, once) and then dropped,
  so a 500-ticker run never holds every price history at once.

Every task is created in one `asyncio.TaskGroup`, which awaits every task created in it —
also those created while it is already draining — so no scheduled request is ever lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import field
from typing import Any, Literal

from discovery.fetch.ceilings import MemoryCeiling
from discovery.plan.needs import Need
from discovery.plan.outcomes import Answer, Failed, Got, Outcome, resolve
from discovery.plan.parsed import PARSE_ERRORS, NoPayload
from discovery.plan.planner import FetchPlan, PlannedFetch
from services.errors import ServiceError
from services.hub import ServiceHub, refusal_of
from services.recordclass import record
from services.spec import FetchResult, ServiceRequest

ProgressHook = Callable[[str, str], None]  # (service, event) event: planned|done|hit|error
Mode = Literal["cached", "fresh"]
Admit = Callable[[PlannedFetch, ServiceRequest, bool], bool]
"""(item, request, is_fallback) → may this request be sent? The refresh's budget says no."""
OnAnswer = Callable[[str, Any], None]
"""(cache key, payload) of every `ok` answer, before the engine drops the payload."""


@record
class PhaseTwo:
    """Needs waiting for another need's value, and how to plan them once it is in hand."""

    trigger: Need  # the need whose value they wait for (the CIK map)
    waiting: tuple[Need, ...]
    plan: Callable[[Sequence[Need]], FetchPlan]  # plans concrete needs (lookups bound)
    value: Callable[[Answer], Any]  # the trigger's parsed value (raises what its parser raises)

    @classmethod
    def of(
        cls,
        plan: FetchPlan,
        planner: Callable[[Sequence[Need]], FetchPlan],
        value: Callable[[Answer], Any],
    ) -> PhaseTwo | None:
        waiting = plan.deferred
        if not waiting:
            return None
        ids = {n.deferred.on for n in waiting if n.deferred is not None}
        trigger = next((n for n in plan.needs if n.id in ids), None)
        if trigger is None:
            return None
        return cls(trigger, waiting, planner, value)


@record(frozen=False)
class Fetched:
    """What the engine found out: an outcome per request (plan-time refusals included)."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)
    second: FetchPlan | None = None  # phase two, once planned
    stopped_early: str | None = None
    scheduled: list[PlannedFetch] = field(default_factory=list)  # network items admitted

    def needs(self, plan: FetchPlan) -> tuple[Need, ...]:
        """The plan's needs, the deferred ones replaced by their phase-two form when it ran."""
        if self.second is None:
            return plan.needs
        concrete = {n.id: n for n in self.second.needs}
        return tuple(concrete.get(n.id, n) for n in plan.needs)


class FetchEngine:
    """Runs one FetchPlan through a hub (see the module docstring)."""

    def __init__(
        self,
        hub: ServiceHub,
        *,
        mode: Mode = "cached",
        ceiling: MemoryCeiling | None = None,
        progress: ProgressHook | None = None,
        admit: Admit | None = None,
        on_answer: OnAnswer | None = None,
    ) -> None:
        self.hub = hub
        self.on_answer = on_answer
        self.mode = mode
        self.ceiling = ceiling
        self.progress = progress
        self.admit = admit
        self.out = Fetched()
        self._lanes: dict[str, asyncio.Semaphore] = {}
        self._group: asyncio.TaskGroup | None = None

    async def run(self, plan: FetchPlan, phase_two: PhaseTwo | None = None) -> Fetched:
        self.out.outcomes.update(plan.blocked)
        triggers = {s.key for s in phase_two.trigger.sources} if phase_two else set()
        reads = [r for r in plan.reads() if self.mode == "cached" or r.key in triggers]

        def start_second() -> None:
            if phase_two is not None:
                self._start_second(phase_two)

        watcher = None
        if self.ceiling is not None:
            watcher = asyncio.create_task(self.ceiling.watch(self.hub))
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                first = [(i, False) for i in plan.fetches if i.key in triggers]
                first += [(i, True) for i in reads if i.key in triggers]
                self._schedule(first, then=start_second)
                self._schedule((i, False) for i in plan.fetches if i.key not in triggers)
                self._schedule((i, True) for i in reads if i.key not in triggers)
        except BaseExceptionGroup as group_error:  # a bug, not a service fault: show it plainly
            raise group_error.exceptions[0] from None
        finally:
            self._group = None
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        return self.out

    # -- scheduling ------------------------------------------------------------------------------
    def _lane(self, service: str) -> asyncio.Semaphore:
        lane = self._lanes.get(service)
        if lane is None:
            lane = asyncio.Semaphore(max(1, self.hub.status(service).max_connections))
            self._lanes[service] = lane
        return lane

    def _schedule(
        self, items: Iterable[tuple[PlannedFetch, bool]], then: Callable[[], None] | None = None
    ) -> None:
        assert self._group is not None, "scheduling outside the engine's task group"
        for item, is_read in items:
            if not is_read:
                if self.admit is not None and not self.admit(item, item.request, False):
                    continue
                self.hub.add_planned(item.service, 1)
                self.out.scheduled.append(item)
            if self.progress:
                self.progress(item.service, "planned")
            if is_read and self.mode == "cached" and self._served_from_cache(item, then):
                continue  # a fresh hit needs no lane and no task (a warm run: all of them)
            self._group.create_task(self._one(item, is_read, then))

    def _served_from_cache(self, item: PlannedFetch, then: Callable[[], None] | None) -> bool:
        """A covered read answered at once by a fresh `ok` entry; False leaves it to a task."""
        result = self.hub.cached(item.request)
        if result is None:
            return False
        self._got(item.request, result)
        if self.progress:
            self.progress(item.service, "hit")
        if then is not None:
            then()
        return True

    def _got(self, request: ServiceRequest, result: FetchResult) -> None:
        """An `ok` answer: its outcome kept (without the payload), the payload handed over."""
        self.out.outcomes[request.cache_key()] = Got(dataclasses.replace(result, payload=None))
        if self.on_answer is not None:
            self.on_answer(request.cache_key(), result.payload)

    def _start_second(self, phase_two: PhaseTwo) -> None:
        """Plan and schedule the waiting needs, once the trigger's value is in hand."""
        if self.out.second is not None or self.out.stopped_early is not None:
            return
        answer = resolve(phase_two.trigger, self.out.outcomes)
        if not isinstance(answer, Answer):
            return
        try:
            value = phase_two.value(answer)
        except (*PARSE_ERRORS, NoPayload):
            return  # assembly reports the waiting needs as gaps: the value could not be read
        if value is None:
            return
        second = phase_two.plan([n.resolved(value) for n in phase_two.waiting])
        self.out.second = second
        self.out.outcomes.update(second.blocked)
        self._schedule([(i, False) for i in second.fetches] + [(r, True) for r in second.reads()])

    # -- one item --------------------------------------------------------------------------------
    async def _one(
        self, item: PlannedFetch, is_read: bool, then: Callable[[], None] | None
    ) -> None:
        async with self._lane(item.service):
            if not is_read and self.ceiling is not None and self.ceiling.hard_reached:
                self.out.stopped_early = "memory_ceiling"
                for request in item.chain:
                    self.out.outcomes.setdefault(
                        request.cache_key(),
                        Failed(request.service, "memory_ceiling", "memory limit reached: not sent"),
                    )
                if self.progress:
                    self.progress(item.service, "error")
                return
            event = await self._chain(item, is_read)
        if self.progress:
            self.progress(item.service, event)
        if then is not None:
            then()

    async def _chain(self, item: PlannedFetch, is_read: bool) -> str:
        """Fetch the item's request, then its fallbacks while the answer is not `ok`. Returns
        the progress event for the item (counted once, against its primary service)."""
        event = "error"
        for i, request in enumerate(item.chain):
            if i > 0:
                if self.admit is not None and not self.admit(item, request, True):
                    break
                if self.hub.peek(request, verify=False).state != "fresh":
                    self.hub.add_planned(request.service, 1)
            fresh = self.mode == "fresh" and not is_read
            try:
                result = await (self.hub.fetch_fresh if fresh else self.hub.fetch)(request)
            except ServiceError as exc:
                self.out.outcomes[request.cache_key()] = Failed(exc.service, exc.reason, exc.detail)
                continue
            event = "hit" if result.origin == "cache" else "done"
            refused = refusal_of(result.payload) if result.status == "negative" else None
            if refused is not None:  # a remembered refusal (FMP 402): its own reason, next source
                self.out.outcomes[request.cache_key()] = Failed(request.service, *refused)
                continue
            if result.status == "ok":
                self._got(request, result)
                break
            self.out.outcomes[request.cache_key()] = Got(dataclasses.replace(result, payload=None))
        return event

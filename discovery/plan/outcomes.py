"""What happened to each request, and the one rule that turns a need's outcomes into either
its answer or its gap (used by planning for what is already decided, and by assembly).

Pure. An outcome is keyed by the request's cache key; a need walks its sources in order: the
first `ok` answer fills the slot; a "nothing known" answer or a failure moves on to the next
source; when none is left the need is a gap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from discovery.plan.needs import Need, Source
from discovery.report.gaps import Gap
from services.recordclass import record
from services.spec import FetchResult


@record
class Got:
    """The service (or the cache) answered: `ok` or `negative`. No payload is held."""

    result: FetchResult


@record
class Failed:
    """No answer: the reason (from the reason table) and its detail."""

    service: str
    reason: str
    detail: str | None = None


Outcome = Got | Failed


@record
class Answer:
    need: Need
    source: Source
    result: FetchResult


@record
class Note:
    """Why one source of a need gave no value."""

    service: str
    dataset: str
    reason: str
    detail: str | None
    negative: bool = False


def gap_for(need: Need, reason: str, detail: str | None, service: str | None = None) -> Gap:
    return Gap(
        need.ticker,
        service or need.service,
        need.dataset,
        reason,
        detail,
        subject=need.label if need.ticker else need.subject,
        slot=need.kind,
    )


def settle(need: Need, notes: Sequence[Note]) -> Gap:
    """The gap of a need none of whose sources gave a value: a "nothing known" answer decides
    it (the subject is unknown, whatever else failed); otherwise the first source's failure.
    The detail names every source's outcome when there was more than one."""
    if need.settled is not None:
        return gap_for(need, *need.settled)
    if not notes:
        return gap_for(need, "no_data", "no source could be asked")
    chosen = next((n for n in notes if n.negative), notes[0])
    detail = chosen.detail
    if len(notes) > 1:
        detail = "; ".join(
            f"{n.service}: {n.reason}" + (f" ({n.detail})" if n.detail else "") for n in notes
        )
    return gap_for(need, chosen.reason, detail, chosen.service)


def note_of(
    source: Source, outcome: Outcome | None, explain: Callable[[FetchResult], str | None]
) -> Note:
    request = source.request
    if outcome is None:
        return Note(request.service, request.dataset, "unavailable", "not fetched this run")
    if isinstance(outcome, Failed):
        return Note(request.service, request.dataset, outcome.reason, outcome.detail)
    return Note(request.service, request.dataset, source.negative, explain(outcome.result), True)


def resolve(
    need: Need,
    outcomes: Mapping[str, Outcome],
    explain: Callable[[FetchResult], str | None] = lambda _: None,
) -> Answer | Gap:
    """The first source that answered `ok`, else the need's gap (see `settle`)."""
    notes: list[Note] = []
    for source in need.sources:
        outcome = outcomes.get(source.key)
        if isinstance(outcome, Got) and outcome.result.status == "ok":
            return Answer(need, source, outcome.result)
        notes.append(note_of(source, outcome, explain))
    return settle(need, notes)

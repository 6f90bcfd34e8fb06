"""The one table of gap reasons: every reason of the shared vocabulary, every ServiceError's
reason, each with its kind and a one-sentence fix."""

from __future__ import annotations

import inspect

from services import errors
from services.reasons import INHERENT, REASONS, fix_for, is_fault

VOCABULARY = {
    "inherent": {"not_found", "no_data", "not_applicable"},
    "fault": {
        "offline",
        "not_configured",
        "unavailable",
        "circuit_open",
        "rate_limited",
        "quota_exhausted",
        "bad_response",
        "bad_identity",
        "rate_blocked",
        "bad_credential",
        "plan_limited",
        "blocked",
        "consent_required",
        "memory_ceiling",
        "cache_evicted",
        "cik_map_unavailable",
        "fx_unavailable",
        "disk_full",
    },
}


def all_subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= all_subclasses(sub)
    return found


def test_the_table_is_exactly_the_vocabulary() -> None:
    assert {k: {n for n, r in REASONS.items() if r.kind == k} for k in VOCABULARY} == VOCABULARY
    assert VOCABULARY["inherent"] == INHERENT


def test_every_service_error_reason_is_in_the_table() -> None:
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)]
    service_errors = {c for c in classes if issubclass(c, errors.ServiceError)}
    assert service_errors >= all_subclasses(errors.ServiceError) - {errors.ServiceError}
    for cls in service_errors:
        assert cls.reason in REASONS, cls


def test_every_fix_is_one_sentence() -> None:
    for name, reason in REASONS.items():
        fix = reason.fix
        assert fix.endswith(".") and fix.count(". ") == 0 and len(fix) <= 100, name
        assert fix_for(name) == fix
    assert is_fault("blocked") and not is_fault("not_found")
    assert fix_for("nonsense").endswith(".")

"""The entry point's collector policy: imports load uncollected and frozen, only under `main`."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

import discovery.cli as cli


@pytest.fixture
def frozen_back() -> Iterator[None]:
    """Whatever a test freezes goes back to the collector afterwards."""
    before = gc.get_freeze_count()
    yield
    if gc.get_freeze_count() != before:
        gc.unfreeze()
    gc.enable()


def test_outside_main_the_collector_is_left_alone(frozen_back: None) -> None:
    before = gc.get_freeze_count()
    with cli.imports_uncollected():
        assert gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() == before


def test_under_main_imports_load_uncollected_then_frozen(
    monkeypatch: pytest.MonkeyPatch, frozen_back: None
) -> None:
    monkeypatch.setattr(cli, "_owns_collector", True)
    before = gc.get_freeze_count()
    with cli.imports_uncollected():
        assert not gc.isenabled()
        made = [[i] for i in range(1_000)]  # tracked objects, as a module's would be
    assert gc.isenabled()
    assert gc.get_freeze_count() >= before + len(made)


def test_a_collector_already_off_stays_off(
    monkeypatch: pytest.MonkeyPatch, frozen_back: None
) -> None:
    monkeypatch.setattr(cli, "_owns_collector", True)
    gc.disable()
    with cli.imports_uncollected():
        pass
    assert not gc.isenabled()


def test_main_raises_the_young_threshold_for_the_run(
    monkeypatch: pytest.MonkeyPatch, frozen_back: None
) -> None:
    import discovery.cli.wiring as wiring

    seen: list[tuple[int, int, int]] = []
    monkeypatch.setattr(wiring, "run", lambda args, importing: seen.append(gc.get_threshold()))
    monkeypatch.setattr(cli, "_owns_collector", False)
    before = gc.get_threshold()
    try:
        cli.main()
    finally:
        gc.set_threshold(*before)
    assert seen == [(cli._YOUNG_THRESHOLD, *before[1:])]
    assert before[0] < cli._YOUNG_THRESHOLD

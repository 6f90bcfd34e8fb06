"""`state/coord.sqlite`: a damaged file is rebuilt, a path that cannot be one is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.coord.flags import BLOCKED, MachineFlags
from services.coord.keys import Scope
from services.coord.statedb import StateDB, StateUnusable


async def test_a_damaged_database_is_moved_aside_and_rebuilt(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / StateDB.FILE_NAME).write_bytes(b"not a database at all" * 100)
    db = StateDB(state)
    try:
        assert db.rebuilt
        assert [p.name for p in state.glob("coord.sqlite.damaged-*")]
        flags = MachineFlags(db)
        await flags.raise_for(Scope("live", "yahoo_finance"), BLOCKED, 5, "bot check")
        assert await flags.get(Scope("live", "yahoo_finance"), BLOCKED) is not None
    finally:
        db.close()


def test_a_directory_in_its_place_is_refused_in_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "state" / StateDB.FILE_NAME).mkdir(parents=True)
    with pytest.raises(StateUnusable, match=r"cannot be used as the coordination database"):
        StateDB(tmp_path / "state")
    assert (tmp_path / "state" / StateDB.FILE_NAME).is_dir()  # nothing removed

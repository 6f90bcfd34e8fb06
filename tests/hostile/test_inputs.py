"""Hostile inputs: everything the user hands over — the CSV, analysis files, names, config, flags,
the data root itself. Each case asserts the outcome a user sees: the exit code, one sentence on
stderr naming the place (no traceback, no numpy reprs), and that nothing was written.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from discovery.errors import InputError
from discovery.ingest.trades import ingest
from discovery.layout import DataLayout
from discovery.local.analysis_files import parse_fundamental
from discovery.local.inventory import build_inventory, read_analysis_file
from tests.conftest import listing, run_cli
from tests.discovery.ingest.test_trades import BASIC, HEADER, csv_text, trade

ROWS = BASIC.read_text(encoding="utf-8")


def one_sentence(proc: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The command failed with `code` and said one line on stderr, nothing on stdout."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert err.count("\n") == 0, err
    assert "Traceback" not in err and "np.float64" not in err and "Usage:" not in err, err
    assert len(err) < 600, err
    return err


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    """A data root with one portfolio `p` (the basic fixture) and no analysis files."""
    data = tmp_path / "data"
    (data / "raw" / "trade_history").mkdir(parents=True)
    shutil.copy(BASIC, data / "raw" / "trade_history" / "p.csv")
    return data


def csv_with(root: Path, text: str | bytes) -> Path:
    path = root / "raw" / "trade_history" / "p.csv"
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def cell(column: str, value: str) -> str:
    """The basic fixture with `column` of its first trade replaced by `value`."""
    lines = ROWS.split("\n")
    cells = lines[1].split(",")
    cells[HEADER.index(column)] = value
    lines[1] = ",".join(cells)
    return "\n".join(lines)


def inventory(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli(["inventory", "p", "--data-root", str(root), "--json", *extra], cwd=root.parent)


# --- the CSV ------------------------------------------------------------------------------------


def test_classic_mac_line_endings_read_like_any_other(tmp_path: Path) -> None:
    path = tmp_path / "mac.csv"
    path.write_bytes(BASIC.read_bytes().replace(b"\n", b"\r"))
    assert ingest(path).to_report_sections() == ingest(BASIC).to_report_sections()


def test_classic_mac_file_with_a_bad_byte_names_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "mac.csv"
    path.write_bytes(cell("Trade_Quality", "Go\xffod").encode("latin-1").replace(b"\n", b"\r"))
    with pytest.raises(InputError) as caught:
        ingest(path)
    assert (caught.value.row, caught.value.column) == (2, "Trade_Quality")


@pytest.mark.parametrize("far", [False, True], ids=["in-the-head", "past-the-head"])
def test_non_utf8_byte_is_reported_by_row_and_column(tmp_path: Path, far: bool) -> None:
    lines = ROWS.strip().split("\n")
    filler = lines[1:] * (3000 if far else 0)
    bad = cell("Strategy_Type", "S\xffA").split("\n")[1]
    text = "\n".join([lines[0], *filler, bad]) + "\n"
    path = tmp_path / "bad.csv"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(InputError) as caught:
        ingest(path)
    row = len(filler) + 2
    assert (caught.value.row, caught.value.column) == (row, "Strategy_Type")
    assert f"row {row}, column Strategy_Type" in str(caught.value)


def test_a_file_that_grows_while_it_is_read_is_read_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "growing.csv"
    path.write_text(csv_text([trade(Short_Window=i) for i in range(1, 2001)]), encoding="utf-8")
    row = csv_text([trade(Ticker="ZZZ")]).split("\n", 1)[1]
    stop = threading.Event()

    def grow() -> None:
        with path.open("a", encoding="utf-8") as out:
            while not stop.is_set():
                out.write(row * 50)
                out.write(row[:17])  # the file often ends inside a row being written
                out.flush()
                time.sleep(0.001)
                out.write(row[17:])

    writer = threading.Thread(target=grow, daemon=True)
    writer.start()
    try:
        time.sleep(0.05)
        started = time.monotonic()
        book = ingest(path, chunk_rows=500)
        assert time.monotonic() - started < 20
    finally:
        stop.set()
        writer.join()
    assert book.rows_read >= 2000  # the snapshot: whatever was there when the read began
    assert path.stat().st_size > 0


def test_a_megabyte_ticker_is_echoed_in_80_characters(root: Path) -> None:
    csv_with(root, cell("Ticker", "A" * 1_000_000))
    err = one_sentence(inventory(root))
    assert "row 2, column Ticker" in err and "1,000,000 characters" in err


@pytest.mark.parametrize(
    ("column", "value", "says"),
    [
        ("PnL", "1e309", "'1e309' is too large to be a finite number"),
        ("PnL", "9" * 400, "is too large to be a finite number"),
        ("Avg_Entry_Price", "1e308", "too large to be a real amount"),
        ("Position_Size", "-inf", "'-inf' is too large to be a finite number"),
    ],
    ids=["1e309", "400-digits", "1e308", "-inf"],
)
def test_huge_numbers_are_refused_in_plain_words(
    root: Path, column: str, value: str, says: str
) -> None:
    csv_with(root, cell(column, value))
    before = listing(root)
    err = one_sentence(inventory(root))
    assert f"row 2, column {column}" in err and says in err
    assert listing(root) == before


def test_sums_cannot_overflow(tmp_path: Path) -> None:
    # Two PnLs of 1e308 would sum to inf; each is refused long before (the 1e15 bound).
    path = tmp_path / "o.csv"
    path.write_text(csv_text([trade(PnL=1e308), trade(PnL=1e308)]), encoding="utf-8")
    with pytest.raises(InputError, match=r"row 2, column PnL: '1e\+308' is too large"):
        ingest(path)


# --- local analysis files -----------------------------------------------------------------------


def fundamental_dir(root: Path) -> Path:
    folder = root / "outputs" / "fundamental_analysis"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_a_symlink_out_of_the_data_root_is_skipped_and_listed(root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.md"
    secret.write_text("**Recommendation**: BUY\nTOPSECRET-CONTENT\n", encoding="utf-8")
    (fundamental_dir(root) / "AAA_20260101.md").symlink_to(secret)
    inv = build_inventory(DataLayout(root), ["AAA"], today=__import__("datetime").date(2026, 2, 1))
    assert inv.fundamentals["AAA"] is None
    section = inv.to_report_section()["fundamental_analysis"]
    assert section["skipped_files"] == [
        {"file": "outputs/fundamental_analysis/AAA_20260101.md", "reason": "outside_data_root"}
    ]
    proc = inventory(root)
    assert proc.returncode == 0, proc.stderr
    assert "TOPSECRET" not in proc.stdout


def test_a_symlink_out_of_the_data_root_never_reaches_the_report(
    root: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.md"
    secret.write_text("**Recommendation**: BUY\nTOPSECRET-CONTENT\n", encoding="utf-8")
    (fundamental_dir(root) / "AAA_20260101.md").symlink_to(secret)
    proc = run_cli(["discover", "p", "--offline", "--data-root", str(root)], cwd=root.parent)
    assert proc.returncode == 3, proc.stderr  # offline: every fetch is a gap
    (report,) = (root / "outputs" / "trade_history" / "discovery").glob("*.json")
    text = report.read_text(encoding="utf-8")
    assert "TOPSECRET" not in text and "TOPSECRET" not in proc.stdout + proc.stderr
    section = json.loads(text)["local_data_integration"]["fundamental_analysis"]
    assert section["tickers"]["AAA"] is None
    assert section["skipped_files"] == [
        {"file": "outputs/fundamental_analysis/AAA_20260101.md", "reason": "outside_data_root"}
    ]


def test_odd_names_are_skipped_with_a_note_never_a_crash(root: Path) -> None:
    folder = fundamental_dir(root)
    os.symlink("loop_b.md", folder / "AAA_20260101.md")  # a link to a link to itself
    os.symlink("AAA_20260101.md", folder / "loop_b.md")
    (folder / ("x" * 250 + ".md")).write_text("long name")
    raw = os.fsencode(folder) + b"/BBB_2026\xff0101.md"
    with open(raw, "wb") as handle:
        handle.write(b"bad name")
    proc = inventory(root)
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert body["tickers"]
    inv = build_inventory(DataLayout(root), ["AAA"], today=__import__("datetime").date(2026, 2, 1))
    reasons = {f.reason for f in inv.skipped_fundamental_files}
    assert reasons == {"broken_link", "unreadable_name"}
    json.dumps(inv.to_report_section())  # every name is printable text


def test_a_4gb_sparse_file_is_refused_without_being_read(root: Path) -> None:
    path = fundamental_dir(root) / "AAA_20260101.md"
    with path.open("wb") as handle:
        handle.truncate(4 * 1024**3)
    started = time.monotonic()
    with pytest.raises(InputError, match=r"AAA_20260101\.md is 4,295\.0 MB"):
        read_analysis_file(str(path), "outputs/fundamental_analysis/AAA_20260101.md")
    assert time.monotonic() - started < 1.0
    err = one_sentence(inventory(root))
    assert "AAA_20260101.md" in err and "2 MB" in err


def _parse_seconds(text: str) -> float:
    started = time.perf_counter()
    parse_fundamental(text)
    return time.perf_counter() - started


def test_200000_headings_parse_in_linear_time() -> None:
    # Linear, measured against itself (a loaded CI machine slows both alike): ten times the
    # headings take about ten times as long, where the quadratic parser took a hundred (135 s).
    unit = "## Recommendation: maybe\n### Sub\n"
    small = min(_parse_seconds(unit * 10_000) for _ in range(3))
    text = unit * 100_000
    big = min(_parse_seconds(text) for _ in range(2))
    assert big < 30 * small + 0.2, (big, small)
    assert big < 10.0
    facts = parse_fundamental(text)
    assert facts.recommendation is None
    assert len(facts.warnings) == 21 and facts.warnings[-1].endswith("more warnings not listed")


def test_a_one_line_file_does_not_become_a_large_report() -> None:
    text = "**Sector**: " + "x" * 2_000_000 + "\n"
    facts = parse_fundamental(text)
    assert facts.sector is None
    assert sum(len(w) for w in facts.warnings) < 400


# --- names, config and flags --------------------------------------------------------------------


def test_a_portfolio_name_too_long_for_a_file_name(root: Path) -> None:
    proc = run_cli(["inventory", "p" * 300, "--data-root", str(root)], cwd=root.parent)
    err = one_sentence(proc)
    assert "too long" in err and "200 characters" in err


def test_a_portfolio_file_whose_name_is_too_long_for_its_report(root: Path) -> None:
    trades = root / "raw" / "trade_history"
    (trades / "p.csv").rename(trades / ("p" * 245 + ".csv"))  # the report name would be > 255
    before = listing(root)
    proc = run_cli(["discover", "p" * 245, "--offline", "--data-root", str(root)], cwd=root.parent)
    err = one_sentence(proc)
    assert "is too long" in err and "200 characters" in err and "(245 characters)" in err
    assert listing(root) == before


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ("[services.fmp]\nrate_per_second = inf\n", "services.fmp.rate_per_second"),
        ("max_concurrency = nan\n", "max_concurrency"),
        ('[services.fmp]\nbase_url = "http://[::1/x"\n', "Invalid IPv6 URL"),
        ('[services.fmp]\nbase_url = "http://127.0.0.1:99999/"\n', "Port out of range"),
        ('[services.fmp]\nbase_url = "http://127.0.0.1/\\u0000"\n', "control characters"),
        ('[services.fmp]\nbase_url = "${ UNSET_FOR_TEST }/x"\n', "${UNSET_FOR_TEST} is not set"),
        ('[services.fmp]\nbase_url = "${UNSET_FOR_TEST:?boom}"\n', "is not a reference"),
    ],
    ids=["inf-rate", "nan", "ipv6", "port", "nul", "spaced-ref", "other-ref"],
)
def test_bad_config_values_are_one_sentence(root: Path, toml: str, says: str) -> None:
    config = root.parent / "tradescout.toml"
    config.write_text(toml, encoding="utf-8")
    before = listing(root)
    proc = run_cli(["services", "--data-root", str(root), "--config", str(config)], cwd=root.parent)
    assert says in one_sentence(proc)
    assert listing(root) == before


def test_a_default_in_a_reference_is_used_when_unset(root: Path) -> None:
    config = root.parent / "tradescout.toml"
    config.write_text(
        '[services.fmp]\nbase_url = "${UNSET_FOR_TEST:-http://127.0.0.1:9}"\n', encoding="utf-8"
    )
    proc = run_cli(
        ["services", "--json", "--data-root", str(root), "--config", str(config)], cwd=root.parent
    )
    assert proc.returncode == 0, proc.stderr
    fmp = next(s for s in json.loads(proc.stdout)["services"] if s["service"] == "fmp")
    assert "http://127.0.0.1:9" in json.dumps(fmp["base_urls"])


def test_garbage_services_json_in_the_environment(root: Path) -> None:
    proc = run_cli(
        ["services", "--data-root", str(root)],
        cwd=root.parent,
        env={"TRADESCOUT_SERVICES": "{not json"},
    )
    assert "TRADESCOUT_SERVICES is not valid JSON" in one_sentence(proc)


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--memory-limit-mb", "0", "from 16 to 1,048,576"),
        ("--memory-limit-mb", "-5", "from 16 to 1,048,576"),
        ("--memory-limit-mb", "9999999999", "from 16 to 1,048,576"),
        ("--max-concurrency", "0", "from 1 to 256"),
        ("--max-concurrency", "-3", "from 1 to 256"),
    ],
)
def test_out_of_range_flags_get_one_sentence(root: Path, flag: str, value: str, says: str) -> None:
    before = listing(root)
    proc = run_cli(["discover", "p", "--offline", "--data-root", str(root), flag, value], cwd=root)
    err = one_sentence(proc)
    assert err.startswith(f"error: {flag} is invalid") and says in err
    assert listing(root) == before


def test_horizon_hours_inf(root: Path) -> None:
    proc = run_cli(
        ["refresh", "--offline", "--data-root", str(root), "--horizon-hours", "inf"], cwd=root
    )
    assert "--horizon-hours" in one_sentence(proc)
    assert not (root / "state").exists()


def test_a_refused_refresh_name_leaves_no_lock(root: Path) -> None:
    proc = run_cli(["refresh", "../../etc/passwd", "--offline", "--data-root", str(root)], cwd=root)
    assert "not valid" in one_sentence(proc)
    assert not (root / "state").exists()


# --- the data root ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [["inventory", "p"], ["services"], ["cache", "report"], ["cache", "verify"]],
    ids=["inventory", "services", "cache-report", "cache-verify"],
)
def test_read_only_commands_never_create_a_data_root(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "typo"
    proc = run_cli([*command, "--data-root", str(missing)], cwd=tmp_path)
    err = one_sentence(proc)
    assert str(missing) in err and "does not exist" in err and "TRADESCOUT_DATA_ROOT" in err
    assert not missing.exists()


def test_a_data_root_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_text("not a folder")
    err = one_sentence(run_cli(["inventory", "p", "--data-root", str(path)], cwd=tmp_path))
    assert "is a file, not a folder" in err


def test_no_portfolio_names_the_data_root_searched(root: Path) -> None:
    err = one_sentence(run_cli(["inventory", "nope", "--data-root", str(root)], cwd=root))
    assert f"data root {root}" in err and "--data-root" in err and "portfolios there: p" in err


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` made unwritable: immutable as root (chattr +i), read-only mode otherwise."""
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip("root without chattr: cannot make a folder unwritable")
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
            pytest.skip("chattr +i refused here")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(0o755)


@pytest.mark.parametrize("where", ["root", "outputs"])
def test_an_unwritable_data_root_is_refused_before_anything_runs(root: Path, where: str) -> None:
    # The run's own up-front check (runs.record.check_writable) answers: exit 3, one sentence.
    target = root if where == "root" else root / "outputs"
    target.mkdir(exist_ok=True)
    before = listing(root)
    with read_only(target):
        proc = run_cli(["discover", "p", "--offline", "--data-root", str(root)], cwd=root.parent)
        err = one_sentence(proc, code=3)
    assert "could not be written" in err
    assert listing(root) == before

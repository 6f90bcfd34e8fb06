"""SEC EDGAR: the ticker → CIK map, then a company's latest 10-K, 10-Q and 8-K.

SEC asks every client to declare itself in `User-Agent` ("Name email"); the identity is the
service's credential (SEC_EDGAR_USER_AGENT). Without it SEC is not configured and never called —
a made-up identity is not an option. Two real hosts (www.sec.gov for the map, data.sec.gov for
submissions); a configured base URL replaces both.

SEC has two 403s, told apart by their text: "…Undeclared Automated Tool" (the User-Agent does
not declare a name and e-mail: bad_identity, fixed by declaring one) and the page titled
"Request Rate Threshold Exceeded" (over 10 requests/second: rate_blocked — the block lasts about
10 minutes and knocking extends it, so no SEC request is sent for `blocked_cooldown_seconds`,
remembered in state/ across runs).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services._common import as_date, as_int, as_str, padded, parsed_verdict, refusal_message
from services.errors import BadIdentity, BadResponse, RateBlocked, ServiceError
from services.records import Filing
from services.spec import Credential, DatasetSpec, Reply, ServiceRequest, ServiceSpec, Verdict

NAME = "sec_edgar"
FORMS = ("10-K", "10-Q", "8-K")


def company_tickers_request() -> ServiceRequest:
    return ServiceRequest(
        service=NAME, dataset="cik_map", path="/files/company_tickers.json", host="www"
    )


def probe_request() -> ServiceRequest:
    """The ticker map: one request to SEC's www host, carrying the declared identity."""
    return company_tickers_request()


def cik10(cik: str | int) -> str:
    """A CIK as SEC's 10-digit zero-padded string."""
    text = str(cik).strip()
    if text.upper().startswith("CIK"):
        text = text[3:]
    if not text.isdigit() or len(text) > 10:
        raise ValueError(f"not a CIK: {cik!r}")
    return text.zfill(10)


def parse_company_tickers(payload: Any) -> dict[str, str]:
    """Ticker (upper case) → 10-digit CIK, from each entry's `cik_str` (not the entry's key)."""
    if not isinstance(payload, dict):
        raise BadResponse(NAME, "company_tickers payload is not an object")
    mapping: dict[str, str] = {}
    for entry in payload.values():
        if not isinstance(entry, dict):
            continue
        ticker, number = entry.get("ticker"), entry.get("cik_str")
        if not (type(ticker) is str and type(number) is int):  # not as SEC writes it: coerce
            ticker, number = as_str(ticker), as_int(number)
            if ticker is None or number is None:
                continue
        ticker = ticker.strip()
        if ticker and number >= 0:  # ~10,000 entries: the common case without the coercions
            mapping.setdefault(ticker.upper(), f"{number:010d}")
    return mapping


def submissions_request(cik: str) -> ServiceRequest:
    padded = cik10(cik)
    return ServiceRequest(
        service=NAME,
        dataset="submissions",
        path=f"/submissions/CIK{padded}.json",
        host="data",
        subjects=(padded,),
    )


def parse_filings(payload: Any) -> list[Filing]:
    """Every 10-K, 10-Q and 8-K in the columnar `filings.recent` (amendments such as 10-K/A are
    not the form itself), newest first: what "was a filing made after this date?" needs."""
    filings = payload.get("filings") if isinstance(payload, dict) else None
    recent = filings.get("recent") if isinstance(filings, dict) else None
    if not isinstance(recent, dict):
        raise BadResponse(NAME, "submissions payload has no filings.recent")
    columns = {
        name: recent.get(name)
        for name in ("form", "filingDate", "reportDate", "accessionNumber", "primaryDocument")
    }
    forms = columns["form"]
    if not isinstance(forms, list):
        raise BadResponse(NAME, "filings.recent.form is not a list")

    n = len(forms)
    filed_on, reported_on, accessions, documents = (
        padded(columns[name], n)
        for name in ("filingDate", "reportDate", "accessionNumber", "primaryDocument")
    )
    found: list[Filing] = []
    for i, form in enumerate(forms):
        if form not in FORMS:
            continue
        filed = as_date(filed_on[i])
        accession = as_str(accessions[i])
        if filed is None or accession is None:
            continue
        found.append(
            Filing(
                form=form,
                filing_date=filed,
                report_date=as_date(reported_on[i]),
                accession_number=accession,
                primary_document=as_str(documents[i]),
            )
        )
    return sorted(found, key=lambda f: (f.filing_date, f.form), reverse=True)


def latest_of_each_form(filings: list[Filing]) -> list[Filing]:
    """The newest filing of each form (first seen wins on a tie), newest first."""
    latest: dict[str, Filing] = {}
    for filing in filings:
        current = latest.get(filing.form)
        if current is None or filing.filing_date > current.filing_date:
            latest[filing.form] = filing
    return sorted(latest.values(), key=lambda f: (f.filing_date, f.form), reverse=True)


def parse_submissions(payload: Any) -> list[Filing]:
    """The latest filing of each of 10-K, 10-Q and 8-K from the columnar `filings.recent`
    (amendments such as 10-K/A are not counted as the form itself). Newest first."""
    return latest_of_each_form(parse_filings(payload))


def refusal(request: ServiceRequest, reply: Reply) -> ServiceError | None:
    if reply.status != 403:
        return None
    text = reply.text.lower()
    where = f"HTTP 403 for {request.path}"
    if "rate threshold" in text or "request rate has exceeded" in text:
        return RateBlocked(
            NAME, f"{where}: Request Rate Threshold Exceeded", dataset=request.dataset
        )
    if "undeclared automated tool" in text:
        return BadIdentity(
            NAME,
            f"{where}: SEC takes the User-Agent for an undeclared automated tool",
            dataset=request.dataset,
        )
    message = refusal_message(reply.body, reply.text, "message")
    return BadResponse(NAME, f"{where}: {message}", dataset=request.dataset)


def classify(request: ServiceRequest, status: int, body: Any) -> Verdict:
    parser = parse_company_tickers if request.dataset == "cik_map" else parse_submissions
    return parsed_verdict(request, status, body, parser)


SPEC = ServiceSpec(
    name=NAME,
    default_base_urls={"www": "https://www.sec.gov", "data": "https://data.sec.gov"},
    datasets={
        "cik_map": DatasetSpec("cik_map", ttl=timedelta(days=7), max_bytes=32 << 20),
        "submissions": DatasetSpec("submissions", ttl=timedelta(days=1), max_bytes=16 << 20),
    },
    rate_per_second=8.0,
    max_connections=4,
    timeout_seconds=15.0,
    credentials=(Credential("SEC_EDGAR_USER_AGENT", "header", "User-Agent"),),
    credential_required=True,
    classify=classify,
    refusal=refusal,
    blocked_cooldown_seconds=600.0,  # SEC's block lasts about 10 minutes
    probe=probe_request,
)

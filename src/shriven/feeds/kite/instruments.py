"""The Kite instrument dump: download, strict parsing, an on-disk cache and its daily refresh.

The dump is the CSV that ``GET {kite_api_root}/instruments`` returns (about 100k rows). It is
cached as ``{cache_dir}/instruments/instruments.json`` (columnar JSON: one list per column, which
loads several times faster than a list of objects) beside ``metadata.json`` (fetched_at, rows,
source, sha256 of instruments.json). A cache whose checksum or row count does not match is treated
as missing and fetched again: it is never half-used.

Kite publishes the day's dump around 07:30-08:00 IST, so a cache fetched after the most recent
08:00 IST is fresh; an older one is refreshed by the next command (and daily by the daemon, see
:func:`next_refresh_at`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Final, NamedTuple

import requests

from shriven.clock import IST
from shriven.errors import InstrumentsError
from shriven.files import atomic_write
from shriven.logging import get_logger

log = get_logger(__name__)

INSTRUMENT_CLASSES = ("index", "future", "option", "equity")


def instrument_class(instrument_type: str, segment: str = "") -> str:
    """``index``, ``future``, ``option`` or ``equity`` from an instruments-dump row's
    ``instrument_type`` and ``segment`` columns: the key of the per-class ticker mode setting
    (``SHRIVEN_KITE_TICKER_CLASS_MODES``)."""
    if segment.upper() == "INDICES":
        return "index"
    kind = instrument_type.upper()
    if kind == "FUT":
        return "future"
    if kind in ("CE", "PE"):
        return "option"
    return "equity"


REFRESH_AT_IST = time(8, 0)
CACHE_FORMAT = "shriven-instruments"
CACHE_VERSION = 1
KITE_VERSION_HEADER = {"X-Kite-Version": "3"}

ProgressFn = Callable[[int, int | None], None]


class Instrument(NamedTuple):
    """One row of the Kite instrument dump, typed. Field names are the CSV column names."""

    instrument_token: int
    exchange_token: int
    tradingsymbol: str
    name: str
    last_price: float
    expiry: date | None
    strike: float
    tick_size: float
    lot_size: int
    instrument_type: str  # EQ, FUT, CE, PE
    segment: str  # NSE, INDICES, NFO-FUT, NFO-OPT, ...
    exchange: str  # NSE, NFO, BSE, BFO, ...


COLUMNS: tuple[str, ...] = Instrument._fields
_INT_COLS = frozenset({"instrument_token", "exchange_token", "lot_size"})
_FLOAT_COLS = frozenset({"last_price", "strike", "tick_size"})


@dataclass(slots=True, frozen=True)
class CacheMetadata:
    fetched_at: str  # ISO 8601, UTC
    rows: int
    source: str
    checksum: str  # "sha256:<hex>" of instruments.json
    format: str = CACHE_FORMAT
    version: int = CACHE_VERSION

    @property
    def fetched_at_dt(self) -> datetime:
        return datetime.fromisoformat(self.fetched_at)


# ---------------------------------------------------------------- parsing (pure)


def parse_instruments_csv(text: str) -> list[Instrument]:
    """Parse a whole dump; any malformed row rejects the dump (a cut-short download shows up as
    a short or unparsable last row)."""
    try:
        return _parse_rows(csv.reader(io.StringIO(text)))
    except csv.Error as exc:  # a field over csv's 128 KiB limit: no genuine dump has one
        raise InstrumentsError(
            f"the instrument dump is malformed ({str(exc)[:100]}); the download was probably "
            "damaged: run `shriven instruments fetch --force`"
        ) from None


def _parse_rows(reader: Iterator[list[str]]) -> list[Instrument]:
    header = next(reader, None)
    if not header:
        raise InstrumentsError(
            "the instrument dump is empty; run `shriven instruments fetch --force` again later"
        )
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        shown = ",".join(header)[:200]  # the header is the venue's text: bounded
        raise InstrumentsError(
            f"the instrument dump has no column {', '.join(missing)} (header: {shown}); "
            "check SHRIVEN_KITE_API_ROOT points at the Kite API"
        )
    index = [header.index(c) for c in COLUMNS]
    width = len(header)
    expiry_cache: dict[str, date | None] = {"": None}
    out: list[Instrument] = []
    for line_no, row in enumerate(reader, start=2):
        if len(row) != width:
            if not row:
                continue
            _bad_row(line_no, f"{len(row)} fields, expected {width}")
        try:
            values = [row[i] for i in index]
            exp = values[5]
            expiry = expiry_cache.get(exp)
            if expiry is None and exp:
                expiry = expiry_cache[exp] = date.fromisoformat(exp)
            out.append(
                Instrument(
                    _uint(values[0], _TOKEN_MAX),
                    _uint(values[1], _TOKEN_MAX),
                    values[2],
                    values[3],
                    _price(values[4], -math.inf),  # MCX crude settled below 0 in 2020
                    expiry,
                    _price(values[6]),
                    _price(values[7]),
                    _uint(values[8] or "0", _INT64_MAX),
                    values[9],
                    values[10],
                    values[11],
                )
            )
        except ValueError as exc:
            _bad_row(line_no, str(exc))
    if not out:
        raise InstrumentsError(
            "the instrument dump has a header but no rows; run `shriven instruments fetch --force`"
        )
    return out


_TOKEN_MAX: Final = 2**32 - 1  # instrument tokens are 4 bytes on the ticker's wire
_INT64_MAX: Final = 2**63 - 1
_DIGITS: Final = re.compile(r"[0-9]{1,19}")


def _uint(text: str, most: int) -> int:
    """ASCII digits within 0..most (int() would also take "1_000", fullwidth digits, "+1")."""
    if _DIGITS.fullmatch(text) is None or int(text) > most:
        raise ValueError(f"{text[:40]!r} is not a whole number from 0 to {most}")
    return int(text)


def _price(text: str, lowest: float = 0.0) -> float:
    """A finite number not below ``lowest``; empty is 0 (float() also takes "nan", "inf")."""
    value = float(text) if text else 0.0
    if not (math.isfinite(value) and value >= lowest):
        raise ValueError(f"{text[:40]!r} is not a finite number from {lowest:g}")
    return value


def _bad_row(line_no: int, why: str) -> None:
    raise InstrumentsError(
        f"the instrument dump is malformed at line {line_no} ({why}); the download was probably "
        "cut short: run `shriven instruments fetch --force`"
    )


def encode_cache(instruments: Sequence[Instrument]) -> bytes:
    """Columnar JSON: ``{"format", "version", "rows", "columns", "data": [[col0...], ...]}``."""
    data: list[list[object]] = [list(col) for col in zip(*instruments, strict=True)]
    if not data:
        data = [[] for _ in COLUMNS]
    data[5] = [e.isoformat() if e else "" for e in data[5]]  # type: ignore[union-attr]
    doc = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "rows": len(instruments),
        "columns": list(COLUMNS),
        "data": data,
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def decode_cache(raw: bytes) -> list[Instrument]:
    """Inverse of :func:`encode_cache`; raises ValueError on any inconsistency."""
    doc = json.loads(raw)
    if doc.get("format") != CACHE_FORMAT or doc.get("version") != CACHE_VERSION:
        raise ValueError("unknown cache format")
    if doc.get("columns") != list(COLUMNS):
        raise ValueError("unexpected columns")
    cols = doc["data"]
    rows = doc["rows"]
    if len(cols) != len(COLUMNS) or any(len(c) != rows for c in cols):
        raise ValueError("column lengths differ from the row count")
    conv = {s: date.fromisoformat(s) for s in set(cols[5]) if s}
    cols[5] = [conv.get(s) for s in cols[5]]
    return list(map(Instrument._make, zip(*cols, strict=True)))


# ---------------------------------------------------------------- freshness (pure)


def last_refresh_boundary(now: datetime) -> datetime:
    """The most recent 08:00 IST at or before ``now`` (aware)."""
    local = now.astimezone(IST)
    boundary = datetime.combine(local.date(), REFRESH_AT_IST, tzinfo=IST)
    if local < boundary:
        boundary -= timedelta(days=1)
    return boundary


def next_refresh_at(now: datetime) -> datetime:
    """The next 08:00 IST strictly after ``now``: when the daemon refreshes the dump."""
    return last_refresh_boundary(now) + timedelta(days=1)


def dump_url(api_root: str) -> str:
    """Where the dump of ``api_root`` is fetched from (the cache metadata's ``source``)."""
    return api_root.rstrip("/") + "/instruments"


def is_fresh(meta: CacheMetadata, now: datetime, api_root: str | None = None) -> bool:
    """Fetched after the last 08:00 IST (and, given ``api_root``, from that API: a dump of the
    simulator is no use against the real Kite, and the reverse)."""
    if api_root is not None and meta.source != dump_url(api_root):
        return False
    return meta.fetched_at_dt >= last_refresh_boundary(now)


def needs_refresh(cache_dir: Path, now: datetime | None = None) -> bool:
    """True when the daemon should fetch the dump again (missing, stale or unreadable metadata)."""
    meta = read_metadata(cache_dir)
    return meta is None or not is_fresh(meta, now or datetime.now(UTC))


# ---------------------------------------------------------------- cache files


def cache_paths(cache_dir: Path) -> tuple[Path, Path]:
    base = Path(cache_dir) / "instruments"
    return base / "instruments.json", base / "metadata.json"


def read_metadata(cache_dir: Path) -> CacheMetadata | None:
    """The cache's metadata, or None when it is missing or unreadable."""
    _, meta_path = cache_paths(cache_dir)
    try:
        doc = json.loads(meta_path.read_bytes())
        meta = CacheMetadata(**doc)
        meta.fetched_at_dt  # noqa: B018 - validates the timestamp
    except (OSError, ValueError, TypeError):
        return None
    return meta


def save_cache(
    cache_dir: Path, instruments: Sequence[Instrument], source: str, fetched_at: datetime
) -> CacheMetadata:
    data_path, meta_path = cache_paths(cache_dir)
    raw = encode_cache(instruments)
    meta = CacheMetadata(
        fetched_at=fetched_at.astimezone(UTC).isoformat(),
        rows=len(instruments),
        source=source,
        checksum="sha256:" + hashlib.sha256(raw).hexdigest(),
    )
    # Data first, then metadata: a crash in between leaves a checksum mismatch, i.e. a re-fetch.
    atomic_write(data_path, raw, mode=0o644)
    atomic_write(meta_path, json.dumps(asdict(meta), indent=2).encode() + b"\n", mode=0o644)
    return meta


def load_cache(cache_dir: Path) -> tuple[list[Instrument], CacheMetadata]:
    """Load and verify the cache; raises InstrumentsError when it is missing or corrupt."""
    data_path, meta_path = cache_paths(cache_dir)
    meta = read_metadata(cache_dir)
    if meta is None:
        raise InstrumentsError(
            f"no usable instrument cache metadata at {meta_path}: run `shriven instruments fetch`"
        )
    try:
        raw = data_path.read_bytes()
    except OSError as exc:
        raise InstrumentsError(
            f"cannot read {data_path} ({exc.strerror}): run `shriven instruments fetch`"
        ) from None
    if "sha256:" + hashlib.sha256(raw).hexdigest() != meta.checksum:
        raise InstrumentsError(
            f"{data_path} does not match its checksum in {meta_path.name} (partial or corrupt "
            "write): run `shriven instruments fetch --force`"
        )
    try:
        instruments = decode_cache(raw)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InstrumentsError(
            f"{data_path} is not a valid instrument cache ({exc}): "
            "run `shriven instruments fetch --force`"
        ) from None
    if len(instruments) != meta.rows:
        raise InstrumentsError(
            f"{data_path} holds {len(instruments)} rows, metadata says {meta.rows}: "
            "run `shriven instruments fetch --force`"
        )
    return instruments, meta


# ---------------------------------------------------------------- download


def download_dump(
    api_root: str,
    *,
    authorization: str | None = None,
    progress: ProgressFn | None = None,
    timeout: float = 60.0,
) -> str:
    """GET ``{api_root}/instruments`` and return the CSV text. ``authorization`` is the
    ``token api_key:access_token`` header value when a session exists."""
    url = dump_url(api_root)
    headers = dict(KITE_VERSION_HEADER)
    if authorization:
        headers["Authorization"] = authorization
    try:
        with requests.get(url, headers=headers, stream=True, timeout=(10, timeout)) as resp:
            if resp.status_code != 200:
                raise InstrumentsError(
                    f"GET {url} answered HTTP {resp.status_code}: {_error_message(resp)}; "
                    "check SHRIVEN_KITE_API_ROOT and try again later"
                )
            total = int(resp.headers.get("Content-Length", 0)) or None
            if resp.headers.get("Content-Encoding"):
                total = None  # the length is of the compressed body, we count decoded bytes
            chunks: list[bytes] = []
            done = 0
            for chunk in resp.iter_content(chunk_size=256 * 1024):
                chunks.append(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
    except requests.RequestException as exc:
        raise InstrumentsError(
            f"downloading the instrument dump from {url} failed ({type(exc).__name__}); "
            "check the network and run `shriven instruments fetch` again"
        ) from None
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise InstrumentsError(
            f"the instrument dump from {url} is not UTF-8 text; run `shriven instruments fetch` "
            "again"
        ) from None


def _error_message(resp: requests.Response) -> str:
    try:
        return str(resp.json().get("message", "no message"))[:200]
    except ValueError:
        return resp.reason or "no message"


def fetch_instruments(
    cache_dir: Path,
    api_root: str,
    *,
    now: datetime | None = None,
    authorization: str | None = None,
    progress: ProgressFn | None = None,
) -> tuple[list[Instrument], CacheMetadata]:
    """Download, parse strictly and cache the dump. Nothing is written unless it all parsed."""
    text = download_dump(api_root, authorization=authorization, progress=progress)
    instruments = parse_instruments_csv(text)
    source = dump_url(api_root)
    meta = save_cache(cache_dir, instruments, source, now or datetime.now(UTC))
    log.info("instruments fetched", rows=meta.rows, source=source)
    return instruments, meta


def load_instruments(
    cache_dir: Path,
    api_root: str,
    *,
    now: datetime | None = None,
    force: bool = False,
    authorization: str | Callable[[], str | None] | None = None,
    progress: ProgressFn | None = None,
) -> tuple[list[Instrument], CacheMetadata]:
    """The instrument table for lookups: the cache when fresh and intact, else a new fetch.

    ``authorization`` may be a callable so that a login happens only when a fetch is needed.
    When a refresh of a stale (but intact) cache fails, the stale cache is used with a warning,
    unless ``force`` is set."""
    now = now or datetime.now(UTC)
    meta = read_metadata(cache_dir)
    if meta is not None and meta.source != dump_url(api_root):
        # another API's dump (e.g. the simulator's): neither fresh nor a fallback
        log.info("instrument cache is from another source, fetching", cached_from=meta.source)
        meta = None
    if not force and meta is not None and is_fresh(meta, now):
        try:
            return load_cache(cache_dir)
        except InstrumentsError as exc:
            log.warning("instrument cache unusable, fetching again", reason=str(exc))
            meta = None
    try:
        auth = authorization() if callable(authorization) else authorization
        return fetch_instruments(
            cache_dir, api_root, now=now, authorization=auth, progress=progress
        )
    except InstrumentsError as exc:
        if force or meta is None:
            raise
        try:
            stale = load_cache(cache_dir)
        except InstrumentsError:
            raise exc from None
        log.warning(
            "instrument refresh failed, using the cached dump",
            fetched_at=stale[1].fetched_at,
            reason=str(exc),
        )
        return stale


def to_csv(instruments: Iterable[Instrument]) -> str:
    """The dump's CSV form (used by the simulator and tests)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for ins in instruments:
        writer.writerow(
            (
                ins.instrument_token,
                ins.exchange_token,
                ins.tradingsymbol,
                ins.name,
                ins.last_price,
                ins.expiry.isoformat() if ins.expiry else "",
                _num(ins.strike),
                ins.tick_size,
                ins.lot_size,
                ins.instrument_type,
                ins.segment,
                ins.exchange,
            )
        )
    return buf.getvalue()


def _num(x: float) -> str:
    return repr(float(x))

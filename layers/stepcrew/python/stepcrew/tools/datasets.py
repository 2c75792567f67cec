"""Dataset access for the data tools: URI -> local file -> a read-only DuckDB database holding table ``data``.

A run's dataset is a URI chosen by the run (``RunRequest.data``), never by the model:

- ``file:///abs/path.csv`` -> that local file;
- ``s3://bucket/key.parquet`` -> downloaded once per process into :data:`CACHE_DIR` (``/tmp`` on Lambda).

Accepted files: extension in :data:`SUFFIXES`, at most :data:`MAX_DATASET_BYTES`. Anything else raises
:class:`DatasetError` with a one-line message.

Before any model call the file's content is checked too, cheaply and in this order (each failure is a one-line
DatasetError naming the file by its name only, never a local path):

1. :func:`check_dataset_file` (on a local file, and on an S3 download before it enters the cache) reads at most
   :data:`SNIFF_BYTES`: the file is not empty; a Parquet file starts with the magic ``PAR1``; a CSV/JSON/JSON Lines
   file holds no NUL byte (binary) and is UTF-8 text (a BOM is allowed); a CSV file has a header row (no empty
   cell, not all numbers) and at least one row after it; a JSON file starts with ``[`` or ``{``, a JSON Lines file
   with ``{``.
2. :func:`open_dataset`, once DuckDB has loaded the table: it has at least one row, and a CSV's columns were not
   auto-named ``column0, column1...`` (DuckDB's names when it detects no header).

:func:`open_dataset` loads the file into an in-memory DuckDB table ``data``, then switches off spilling to disk
(``temp_directory=''``: DuckDB otherwise adds its temporary folder, ``<cwd>/.tmp``, to the folders SQL may still
read), caps DuckDB's memory at :func:`memory_limit_mb` (a query that needs more fails with a typed error instead of
the Lambda being killed), switches off external access (``enable_external_access=false``: no file, network or
extension access from SQL) and locks the configuration.
Loaded databases are cached per process, keyed by (uri, mtime, size), so a warm Lambda does not reload.
DuckDB is imported lazily (it is heavy; the calculator Lambda never pays for it).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import logging
import os
import re
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from stepcrew.tools.errors import DatasetError

if TYPE_CHECKING:
    import duckdb

logger = logging.getLogger(__name__)

SUFFIXES = (".csv", ".parquet", ".json", ".jsonl")
#: 512 MiB: the default Lambda ephemeral storage (/tmp) size, where an S3 dataset is downloaded.
MAX_DATASET_BYTES = 512 * 1024 * 1024
#: Strings read as NULL in CSV files ("NA" is R's missing value, used by many public datasets).
CSV_NULLS = ("", "NA", "N/A", "NULL")
#: Loaded databases kept per process (each holds a whole dataset in memory).
MAX_CACHED_DATASETS = 2
#: DuckDB's memory cap when not on Lambda (env STEPCREW_DUCKDB_MEMORY_MB overrides), in MiB.
DEFAULT_MEMORY_LIMIT_MB = 1024
#: Share of the Lambda function's memory (AWS_LAMBDA_FUNCTION_MEMORY_SIZE, MiB) DuckDB may use; the rest is for
#: Python, the loaded modules and the tool output.
LAMBDA_MEMORY_SHARE = 0.6
#: Bytes :func:`check_dataset_file` reads at most from the start of a dataset.
SNIFF_BYTES = 64 * 1024
CACHE_DIR = Path(os.environ.get("STEPCREW_DATASET_CACHE", Path(tempfile.gettempdir()) / "stepcrew-datasets"))

_lock = threading.Lock()
_s3_client: Any = None
_downloads: dict[str, Path] = {}
_databases: OrderedDict[tuple[str, int, int], duckdb.DuckDBPyConnection] = OrderedDict()


def s3_client() -> Any:
    """The process-wide boto3 S3 client, built on first use."""
    global _s3_client
    if _s3_client is None:
        import boto3

        _s3_client = boto3.client("s3")
    return _s3_client


def set_s3_client(client: Any) -> None:
    """Inject the S3 client (tests, or a caller with its own session). ``None`` resets to lazy building."""
    global _s3_client
    _s3_client = client


def memory_limit_mb() -> int:
    """DuckDB's memory cap in MiB: env ``STEPCREW_DUCKDB_MEMORY_MB``, else :data:`LAMBDA_MEMORY_SHARE` of the
    Lambda function's memory (``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``, set by the Lambda runtime), else
    :data:`DEFAULT_MEMORY_LIMIT_MB`. Never below 64."""
    explicit = os.environ.get("STEPCREW_DUCKDB_MEMORY_MB", "").strip()
    lambda_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "").strip()
    if explicit.isdigit():
        mb = int(explicit)
    elif lambda_mb.isdigit():
        mb = int(int(lambda_mb) * LAMBDA_MEMORY_SHARE)
    else:
        mb = DEFAULT_MEMORY_LIMIT_MB
    return max(64, mb)


def reset_caches() -> None:
    """Forget downloaded files, loaded databases and the S3 client (tests)."""
    global _s3_client
    with _lock:
        _downloads.clear()
        for con in _databases.values():
            con.close()
        _databases.clear()
        _s3_client = None


def first_line(exc: Exception) -> str:
    """The first line of ``exc``'s message (DuckDB's are long), or its class name when the message is empty."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_suffix(name: str, uri: str) -> None:
    if not name.lower().endswith(SUFFIXES):
        raise DatasetError(f"unsupported dataset {uri!r}: the file must end in {', '.join(SUFFIXES)}")


def _check_file(path: Path, uri: str) -> Path:
    _check_suffix(path.name, uri)
    if not path.is_file():
        raise DatasetError(f"dataset not found or not a file: {uri}")
    if not os.access(path, os.R_OK):
        raise DatasetError(f"dataset is not readable: {uri}")
    size = path.stat().st_size
    if size > MAX_DATASET_BYTES:
        raise DatasetError(f"dataset is too big: {size} bytes (limit {MAX_DATASET_BYTES} bytes): {uri}")
    check_dataset_file(path, uri)
    return path


_TEXT_KINDS = {".csv": "CSV", ".json": "JSON", ".jsonl": "JSON Lines"}
_CSV_DELIMITERS = (",", ";", "\t", "|")
_NUMBER = re.compile(r"[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?")
_AUTO_COLUMN = re.compile(r"column\d+")


def check_dataset_file(path: Path, uri: str) -> None:
    """Reject a dataset file whose first :data:`SNIFF_BYTES` show it cannot be what its suffix says: empty; a
    ``.parquet`` without the ``PAR1`` magic; a ``.csv``/``.json``/``.jsonl`` that is binary (a NUL byte) or not
    UTF-8; a CSV without a header row or without rows; a JSON not starting with ``[``/``{``, a JSON Lines file
    whose first line does not start with ``{``. Pure Python, no DuckDB. Raises DatasetError (one line, naming the
    file by the name in ``uri``, never by ``path``)."""
    name = dataset_name(uri) if "://" in uri else Path(uri).name
    # The kind comes from the URI's name: a download is checked as ``<hash>.csv.part``.
    suffix = next((s for s in SUFFIXES if name.lower().endswith(s) or path.name.lower().endswith(s)), None)
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(SNIFF_BYTES)
    if not head:
        raise DatasetError(f"dataset {name} is empty")
    if suffix == ".parquet":
        if head[:4] != b"PAR1":
            raise DatasetError(f"dataset {name} is not a Parquet file")
        return
    kind = _TEXT_KINDS.get(suffix)
    if kind is None:
        return
    if b"\0" in head:
        raise DatasetError(f"dataset {name} is binary, not a text {kind} file")
    complete = size <= len(head)
    try:  # final=False: a multi-byte character cut at the end of the sniffed bytes is buffered, not an error
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=complete)
    except UnicodeDecodeError:
        raise DatasetError(f"dataset {name} is not UTF-8 text") from None
    if not text.strip():
        raise DatasetError(f"dataset {name} is empty")
    if suffix == ".csv":
        _check_csv_text(text, complete, name)
    elif suffix == ".json" and text.lstrip()[0] not in "[{":
        raise DatasetError(f"dataset {name} is not JSON")
    elif suffix == ".jsonl" and not next(ln for ln in text.splitlines() if ln.strip()).lstrip().startswith("{"):
        raise DatasetError(f"dataset {name} is not JSON Lines")


def _check_csv_text(text: str, complete: bool, name: str) -> None:
    """The header and row checks of :func:`check_dataset_file` on the decoded start of a CSV (``complete``: the
    whole file). Leading blank lines are skipped, as DuckDB does."""
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.strip())
    body = "".join(lines[start:])
    top = lines[start]
    delimiter = max(_CSV_DELIMITERS, key=top.count) if any(d in top for d in _CSV_DELIMITERS) else ","
    reader = csv.reader(io.StringIO(body), delimiter=delimiter)
    header = next(reader)
    has_row = any(len(row) > 1 or "".join(row).strip() for row in reader)
    if not complete and not has_row:
        header = header[:-1]  # the sniffed bytes may end inside the header: its last cell may be cut
    cells = [cell.strip() for cell in header]
    named = [cell for cell in cells if cell]  # an empty cell is fine (pandas' unnamed index column, "a,b,")
    if not named or all(_NUMBER.fullmatch(cell) for cell in named):
        raise DatasetError(f"dataset {name} has no header row (the first line must name the columns)")
    if complete and not has_row:
        raise DatasetError(f"dataset {name} has a header but no rows")


def dataset_uri(path: str | Path) -> str:
    """A CLI path as a ``file://`` URI (absolute, validated like :func:`resolve_dataset`). Raises DatasetError."""
    p = Path(path).expanduser().resolve()
    _check_file(p, str(path))
    return p.as_uri()


def not_found(uri: str) -> DatasetError:
    """The one answer for a dataset that is missing, unreadable or another tenant's: the three must not be told
    apart (a "denied" answer would tell a tenant which of another's keys exist)."""
    return DatasetError(f"dataset {dataset_name(uri) or uri[:80]} not found or not readable")


def check_dataset_access(uri: str, tenant: str | None, *, bucket: str | None = None,
                         local_dirs: tuple[Path, ...] | None = None) -> None:
    """Raise :func:`not_found` unless ``tenant`` may read ``uri``: an ``s3://`` URI must name ``bucket`` (the stage's
    datasets bucket, when given) and a key under ``<tenant>/``; a ``file://`` URI, when ``local_dirs`` is given
    (``stepcrew dev --data-dir``), a file inside one of them once symlinks are resolved."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        key = unquote(parsed.path.lstrip("/"))
        if (bucket and parsed.netloc != bucket) or (tenant is not None and not key.startswith(f"{tenant}/")):
            raise not_found(uri)
    elif parsed.scheme == "file" and local_dirs is not None:
        try:
            path = Path(unquote(parsed.path)).resolve(strict=False)
        except (OSError, RuntimeError):
            raise not_found(uri) from None
        if not any(path.is_relative_to(d.resolve()) for d in local_dirs):
            raise not_found(uri)


def _deployed() -> bool:
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME")) and os.environ.get("STEPCREW_STAGE", "local") != "local"


def resolve_dataset(uri: str, tenant: str | None = None) -> Path:
    """The local file for a dataset URI (``file://`` or ``s3://``), validated. With ``tenant``, the URI must be
    readable by it (:func:`check_dataset_access` against env ``STEPCREW_DATA_BUCKET``); ``file://`` is refused in a
    deployed function. Raises DatasetError."""
    parsed = urlparse(uri)
    if parsed.scheme == "file" and _deployed():
        raise DatasetError("file:// datasets are local-only: a deployed stack reads s3:// URIs")
    check_dataset_access(uri, tenant, bucket=os.environ.get("STEPCREW_DATA_BUCKET") or None)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise DatasetError(f"a file:// URI needs an absolute path (file:///path/to/data.csv), got {uri!r}")
        return _check_file(Path(unquote(parsed.path)), uri)
    if parsed.scheme == "s3":
        return _download(uri, parsed.netloc, unquote(parsed.path.lstrip("/")))
    raise DatasetError(f"unsupported dataset URI {uri!r}: use file:// or s3://")


_NOT_FOUND_CODES = {"404", "NoSuchKey", "NoSuchBucket", "403", "AccessDenied", "AllAccessDisabled"}


def _s3_reason(exc: Exception) -> str:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__))
    return "not found or not readable" if code in _NOT_FOUND_CODES else code


def _download(uri: str, bucket: str, key: str) -> Path:
    if not bucket or not key:
        raise DatasetError(f"an s3:// URI needs a bucket and a key (s3://bucket/key.csv), got {uri!r}")
    _check_suffix(key, uri)
    with _lock:
        cached = _downloads.get(uri)
        if cached is not None and cached.is_file():
            return cached
        client = s3_client()
        try:
            size = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
        except Exception as exc:  # botocore ClientError / connection errors: the model reads one line
            raise DatasetError(f"cannot read dataset {uri}: {_s3_reason(exc)}") from None
        if size > MAX_DATASET_BYTES:
            raise DatasetError(f"dataset is too big: {size} bytes (limit {MAX_DATASET_BYTES} bytes): {uri}")
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        suffix = next(s for s in SUFFIXES if key.lower().endswith(s))
        target = CACHE_DIR / (hashlib.sha256(uri.encode()).hexdigest()[:24] + suffix)
        partial = target.with_name(target.name + ".part")
        try:
            client.download_file(bucket, key, str(partial))
        except Exception as exc:
            partial.unlink(missing_ok=True)
            raise DatasetError(f"cannot download dataset {uri}: {_s3_reason(exc)}") from None
        try:
            check_dataset_file(partial, uri)
        except DatasetError:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)
        _downloads[uri] = target
        logger.info("dataset downloaded", extra={"bytes": size})
        return target


def _load_sql(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".csv"):
        nulls = ", ".join("'" + s + "'" for s in CSV_NULLS)
        return f"CREATE TABLE data AS SELECT * FROM read_csv(?, nullstr = [{nulls}])"
    if name.endswith(".parquet"):
        return "CREATE TABLE data AS SELECT * FROM read_parquet(?)"
    return "CREATE TABLE data AS SELECT * FROM read_json_auto(?)"


def open_dataset(uri: str | None, tenant: str | None = None) -> duckdb.DuckDBPyConnection:
    """A new cursor on the cached read-only database of ``uri`` (table ``data``). Close it when done.
    Raises DatasetError when the run has no dataset or the file cannot be loaded."""
    if not uri:
        raise DatasetError("this run has no dataset: start the run with a dataset (stepcrew run --data FILE)")
    import duckdb

    path = resolve_dataset(uri, tenant)
    stat = path.stat()
    key = (uri, stat.st_mtime_ns, stat.st_size)
    with _lock:
        con = _databases.get(key)
        if con is None:
            con = duckdb.connect(":memory:")
            try:
                con.execute(_load_sql(path), [str(path)])
                rows = con.execute("SELECT count(*) FROM data").fetchone()[0]
                columns = [r[0] for r in con.execute("DESCRIBE data").fetchall()]
            except duckdb.Error as exc:
                con.close()
                first = first_line(exc).replace(str(path), path.name)  # no local paths in what the model reads
                raise DatasetError(f"cannot load dataset {path.name}: {first}") from None
            problem = None
            if rows == 0:
                problem = "has no rows"
            elif path.name.lower().endswith(".csv") and all(_AUTO_COLUMN.fullmatch(c) for c in columns):
                # DuckDB's sniffer read the first line as data (its types match the rows': "Adelie,3750"); a
                # header of labels over like-typed data ("region,2019,2020") is read the same way and refused too
                problem = "has no header row (the first line must name the columns)"
            if problem is not None:
                con.close()
                raise DatasetError(f"dataset {dataset_name(uri)} {problem}")
            # Order matters: the folders SQL may read are fixed when external access is switched off.
            con.execute("SET temp_directory = ''")
            con.execute(f"SET memory_limit = '{memory_limit_mb()}MiB'")
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
            _databases[key] = con
            while len(_databases) > MAX_CACHED_DATASETS:
                # dropped, not closed: another thread may still hold a cursor on it (parallel sub-tasks of the
                # local runtime share this process); DuckDB frees it once the last cursor is gone
                _databases.popitem(last=False)
        _databases.move_to_end(key)
        return con.cursor()


def dataset_name(uri: str) -> str:
    """The file name of a dataset URI (what the tools report, never a local path)."""
    return Path(unquote(urlparse(uri).path)).name

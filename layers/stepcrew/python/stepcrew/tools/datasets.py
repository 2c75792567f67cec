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
2. :func:`dataset_database`, once DuckDB has loaded the table: it has at least one row, and a CSV's columns were
   not auto-named ``column0, column1...`` (DuckDB's names when it detects no header).

:func:`dataset_database` loads the file once into a DuckDB database file (table ``data``) in :data:`CACHE_DIR`,
named after the URI, the local file, its mtime and size, the load SQL and the DuckDB library, written under a
temporary name and renamed when complete (atomic: a reader never sees half a database). The load runs in a child
process (:mod:`stepcrew.tools.sandbox`: address-space cap, DuckDB memory cap, :data:`LOAD_TIMEOUT_S`), so a hostile
file cannot take the parent's memory either. Each query then opens that file ``read_only`` in its own child: no
spilling to disk (``temp_directory=''``: DuckDB otherwise adds its temporary folder, ``<cwd>/.tmp``, to the folders
SQL may still read), DuckDB's memory capped at :func:`memory_limit_mb`, external access off
(``enable_external_access=false``: no file, network or extension access from SQL), configuration locked.
At most :data:`MAX_DATABASE_FILES` database files are kept per process (least recently used deleted first);
:func:`open_dataset` gives trusted in-process code (tests, scripts) a cursor on one, configured the same way.
DuckDB is imported lazily, and by the parent only for :func:`open_dataset` (the calculator Lambda never pays for it).

**Reads as the tenant (IAM, deployed).** When env :data:`READER_ROLE_ENV` (``STEPCREW_DATA_READER_ROLE_ARN``, set by
the stack on the functions that read data) names a role, an ``s3://`` dataset is read with that role's credentials for
the run's tenant: ``sts.assume_role`` with the session tag ``tenant=<tenant>`` (:class:`TenantReaders`). The role may
only ``s3:GetObject`` on ``<bucket>/${aws:PrincipalTag/tenant}/*``, so a tenant-prefix mistake in this code is still
denied by IAM (S3 answers 403, reported like a missing dataset). A read without a tenant is then refused (fail closed).
Without the variable (the local runtime, tests), the process-wide client of :func:`s3_client` reads, as before.
Downloads are cached per (tenant, uri): one tenant's download never serves another's read.

**Uploads.** ``POST /datasets`` and ``stepcrew datasets put`` store a file at :func:`upload_key`
(``<tenant>/uploads/<name>``); :func:`upload_name_error` is the one check of the name, :data:`UPLOAD_CONTENT_TYPES`
the content types per suffix.
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
import time
from collections import OrderedDict
from collections.abc import Callable
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
#: Connections :func:`open_dataset` keeps per process (in-process readers of a database file).
MAX_CACHED_DATASETS = 2
#: Database files (:func:`dataset_database`) kept per process in :data:`CACHE_DIR`; the least recently used is
#: deleted past it (a child still reading it keeps its open file).
MAX_DATABASE_FILES = 4
#: Seconds the load of a dataset into its database file may take (env STEPCREW_LOAD_TIMEOUT_S): with a 10 s query
#: after it, inside the 60 s timeout of the data tool Lambdas (stepcrew.wiring.FUNCTIONS).
LOAD_TIMEOUT_S = float(os.environ.get("STEPCREW_LOAD_TIMEOUT_S", "40"))
#: DuckDB's memory cap when not on Lambda (env STEPCREW_DUCKDB_MEMORY_MB overrides), in MiB.
DEFAULT_MEMORY_LIMIT_MB = 1024
#: Share of the Lambda function's memory (AWS_LAMBDA_FUNCTION_MEMORY_SIZE, MiB) DuckDB may use; the rest is for
#: Python, the loaded modules and the tool output.
LAMBDA_MEMORY_SHARE = 0.6
#: Bytes :func:`check_dataset_file` reads at most from the start of a dataset.
SNIFF_BYTES = 64 * 1024
CACHE_DIR = Path(os.environ.get("STEPCREW_DATASET_CACHE", Path(tempfile.gettempdir()) / "stepcrew-datasets"))

#: Env naming the IAM role dataset reads assume per tenant (the stack sets it on ``reads_data`` functions).
READER_ROLE_ENV = "STEPCREW_DATA_READER_ROLE_ARN"
#: The session tag key the reader role's policy reads (``${aws:PrincipalTag/tenant}``); tags are case-insensitive keys.
TENANT_TAG = "tenant"
#: Lifetime of a reader session, in seconds: 900 is AssumeRole's minimum ``DurationSeconds`` (900-43,200; role
#: chaining - a Lambda role assuming another role - caps it at 3,600: STS API reference, AssumeRole).
READER_SESSION_S = 900
#: A cached session is renewed this many seconds before it expires, so a download that starts on it (tools and the
#: guard time out after 60 s, ``stepcrew.wiring.FUNCTIONS``) ends before its credentials do.
READER_REFRESH_MARGIN_S = 120
#: Reader sessions kept per process (one S3 client each), least recently used dropped first.
MAX_READER_SESSIONS = 16
#: RoleSessionName: 2-64 of ``[\w+=,.@-]`` (STS API reference, AssumeRole).
SESSION_NAME_MAX_CHARS = 64

_lock = threading.Lock()
_s3_client: Any = None
_readers: TenantReaders | None = None
_downloads: dict[tuple[str | None, str], Path] = {}
_databases: OrderedDict[tuple[str, int, int], duckdb.DuckDBPyConnection] = OrderedDict()
_database_files: OrderedDict[str, Path] = OrderedDict()  # file name -> path, least recently used first
_load_lock = threading.Lock()


def s3_client() -> Any:
    """The process-wide boto3 S3 client, built on first use."""
    global _s3_client
    if _s3_client is None:
        import boto3

        _s3_client = boto3.client("s3")
    return _s3_client


def set_s3_client(client: Any) -> None:
    """Inject the S3 client (tests, or a caller with its own session). ``None`` resets to lazy building.
    Used only when no reader role is configured (env :data:`READER_ROLE_ENV`); see :func:`set_tenant_readers`."""
    global _s3_client
    _s3_client = client


def session_name(tenant: str) -> str:
    """The RoleSessionName of ``tenant``'s reader session (CloudTrail shows it): ``stepcrew-<tenant>``, or, past
    :data:`SESSION_NAME_MAX_CHARS`, the tenant cut and a hash of it (two long tenants never share a name). Tenant
    ids (:data:`stepcrew.models.TENANT_PATTERN`) use only characters a session name allows."""
    name = f"stepcrew-{tenant}"
    if len(name) <= SESSION_NAME_MAX_CHARS:
        return name
    digest = hashlib.sha256(tenant.encode()).hexdigest()[:16]
    return f"stepcrew-{tenant[:SESSION_NAME_MAX_CHARS - 26]}-{digest}"


def _assume_with_boto3() -> Callable[..., dict]:
    import boto3

    return boto3.client("sts").assume_role


def _client_with_boto3(credentials: dict) -> Any:
    import boto3

    return boto3.client("s3", aws_access_key_id=credentials["AccessKeyId"],
                        aws_secret_access_key=credentials["SecretAccessKey"],
                        aws_session_token=credentials["SessionToken"])


class TenantReaders:
    """S3 clients that read as one tenant: credentials of ``role_arn`` assumed with the session tag
    ``tenant=<tenant>`` for :data:`READER_SESSION_S` seconds, one client per tenant, kept until
    :data:`READER_REFRESH_MARGIN_S` before they expire and at most ``max_sessions`` of them (least recently used
    dropped first).

    - ``assume_role``: ``sts.assume_role``'s signature (keyword arguments ``RoleArn``, ``RoleSessionName``,
      ``DurationSeconds``, ``Tags``), returning its response (``Credentials.Expiration`` a datetime); default: a
      boto3 STS client's, built on first use. Its own retries (botocore's) are the only retry layer here.
    - ``make_client(credentials)``: an S3 client from the response's ``Credentials``; default boto3.
    - ``clock``: epoch seconds (tests move it).

    :meth:`client` raises DatasetError for a tenant that is not a valid tenant id (nothing is assumed) and lets the
    STS client's errors (botocore ClientError...) through.
    """

    def __init__(self, role_arn: str, *, assume_role: Callable[..., dict] | None = None,
                 make_client: Callable[[dict], Any] | None = None, clock: Callable[[], float] = time.time,
                 max_sessions: int = MAX_READER_SESSIONS) -> None:
        self.role_arn = role_arn
        self._assume = assume_role
        self._make_client = make_client or _client_with_boto3
        self._clock = clock
        self._max = max(1, max_sessions)
        self._sessions: OrderedDict[str, tuple[Any, float]] = OrderedDict()
        self._lock = threading.Lock()

    def client(self, tenant: str) -> Any:
        """The S3 client reading as ``tenant`` (a cached one while it has more than the margin left)."""
        from stepcrew.models import TENANT_PATTERN

        if not isinstance(tenant, str) or not re.fullmatch(TENANT_PATTERN, tenant):
            raise DatasetError("a dataset is read as the run's tenant, and this tenant id is not valid")
        with self._lock:
            cached = self._sessions.get(tenant)
            if cached is not None and self._clock() < cached[1] - READER_REFRESH_MARGIN_S:
                self._sessions.move_to_end(tenant)
                return cached[0]
            if self._assume is None:
                self._assume = _assume_with_boto3()
            response = self._assume(RoleArn=self.role_arn, RoleSessionName=session_name(tenant),
                                    DurationSeconds=READER_SESSION_S, Tags=[{"Key": TENANT_TAG, "Value": tenant}])
            credentials = response["Credentials"]
            expires = credentials["Expiration"]
            expires_at = expires.timestamp() if hasattr(expires, "timestamp") else float(expires)
            client = self._make_client(credentials)
            self._sessions[tenant] = (client, expires_at)
            self._sessions.move_to_end(tenant)
            while len(self._sessions) > self._max:
                self._sessions.popitem(last=False)
            return client


def set_tenant_readers(readers: TenantReaders | None) -> None:
    """Inject the tenant readers (tests). ``None``: built on first use from env :data:`READER_ROLE_ENV`."""
    global _readers
    _readers = readers


def reader_client(tenant: str | None) -> Any:
    """The S3 client a dataset read of ``tenant`` uses: with env :data:`READER_ROLE_ENV` set, the tenant's reader
    session (:class:`TenantReaders`; DatasetError without a tenant: fail closed); otherwise :func:`s3_client`."""
    global _readers
    role_arn = os.environ.get(READER_ROLE_ENV, "").strip()
    if not role_arn:
        return s3_client()
    if tenant is None:
        raise DatasetError("a dataset is read as the run's tenant, and this read names none: refused")
    if _readers is None or _readers.role_arn != role_arn:
        _readers = TenantReaders(role_arn)
    return _readers.client(tenant)


def memory_limit_mb() -> int:
    """DuckDB's memory cap in MiB: env ``STEPCREW_DUCKDB_MEMORY_MB``, else :data:`LAMBDA_MEMORY_SHARE` of the
    Lambda function's memory (``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``, set by the Lambda runtime; the data tool functions
    have 1,024 MB in ``stepcrew.wiring.FUNCTIONS``, so 614 MiB), else :data:`DEFAULT_MEMORY_LIMIT_MB`. Never below 64.
    The child process a query runs in is capped at this plus ``stepcrew.tools.sandbox.OVERHEAD_MB`` of address space
    (:meth:`stepcrew.tools.sandbox.Limits.for_duckdb`): 870 MiB on those Lambdas."""
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
    """Forget downloaded files, loaded databases, the S3 client and the tenant readers (tests)."""
    global _s3_client, _readers
    with _lock:
        _downloads.clear()
        for con in _databases.values():
            con.close()
        _databases.clear()
        _database_files.clear()
        _s3_client = None
        _readers = None


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
        return _download(uri, parsed.netloc, unquote(parsed.path.lstrip("/")), tenant)
    raise DatasetError(f"unsupported dataset URI {uri!r}: use file:// or s3://")


_NOT_FOUND_CODES = {"404", "NoSuchKey", "NoSuchBucket", "403", "AccessDenied", "AllAccessDisabled"}


def _s3_reason(exc: Exception) -> str:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__))
    return "not found or not readable" if code in _NOT_FOUND_CODES else code


def _download(uri: str, bucket: str, key: str, tenant: str | None = None) -> Path:
    if not bucket or not key:
        raise DatasetError(f"an s3:// URI needs a bucket and a key (s3://bucket/key.csv), got {uri!r}")
    _check_suffix(key, uri)
    with _lock:
        cached = _downloads.get((tenant, uri))
        if cached is not None and cached.is_file():
            return cached
        try:
            client = reader_client(tenant)
        except DatasetError:
            raise
        except Exception as exc:  # STS refused or failed: an operator's problem, logged; the run reads one line
            code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__))
            logger.warning("dataset reader credentials unavailable", extra={"error_code": code})
            raise DatasetError(f"cannot read dataset {uri}: the tenant's read credentials are unavailable "
                               f"({code})") from None
        try:
            size = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
        except Exception as exc:  # botocore ClientError / connection errors: the model reads one line
            raise DatasetError(f"cannot read dataset {uri}: {_s3_reason(exc)}") from None
        if size > MAX_DATASET_BYTES:
            raise DatasetError(f"dataset is too big: {size} bytes (limit {MAX_DATASET_BYTES} bytes): {uri}")
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        suffix = next(s for s in SUFFIXES if key.lower().endswith(s))
        target = CACHE_DIR / (hashlib.sha256(f"{tenant}\0{uri}".encode()).hexdigest()[:24] + suffix)
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
        _downloads[(tenant, uri)] = target
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


def _database_name(uri: str, path: Path) -> str:
    """The database file's name: a hash of the URI, the local file (its path, mtime and size), the load SQL and
    the DuckDB library (found, not imported), so a changed file, load or DuckDB version never reads an old one."""
    import importlib.util

    stat = path.stat()
    spec = importlib.util.find_spec("duckdb")
    library = ""
    if spec is not None and spec.origin:
        lib = Path(spec.origin).stat()
        library = f"{spec.origin}:{lib.st_mtime_ns}:{lib.st_size}"
    parts = (uri, str(path.resolve()), str(stat.st_mtime_ns), str(stat.st_size), _load_sql(path), library)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32] + ".duckdb"


def file_identity(path: Path) -> tuple[int, int] | None:
    """``(inode, mtime_ns)`` of ``path``, or None when it does not exist: which version of a database file a child
    was given."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_ino, stat.st_mtime_ns)


def dataset_database(uri: str | None, tenant: str | None = None, *,
                     stale: tuple[int, int] | None = None) -> Path:
    """The DuckDB database file holding ``uri``'s table ``data`` (resolved and checked as ``tenant``, see
    :func:`resolve_dataset`), loaded once in a sandboxed child (see the module docstring). ``stale``: the
    :func:`file_identity` of a file a child could not open: it is loaded again unless another thread already did.
    Raises DatasetError when the run has no dataset or the file cannot be loaded (a DuckDB error, no rows, no
    header, or the load's time or memory limit)."""
    if not uri:
        raise DatasetError("this run has no dataset: start the run with a dataset (stepcrew run --data FILE)")
    path = resolve_dataset(uri, tenant)
    name = _database_name(uri, path)
    with _load_lock:
        target = CACHE_DIR / name
        if stale is not None and file_identity(target) == stale:
            target.unlink(missing_ok=True)
        if not _own_file(target):  # missing, or not ours (a file another user put in a shared /tmp is not read)
            _load_database(uri, path, target)
        with _lock:
            _database_files[name] = target
            _database_files.move_to_end(name)
            while len(_database_files) > MAX_DATABASE_FILES:
                _, old = _database_files.popitem(last=False)
                old.unlink(missing_ok=True)
        return target


def _own_file(path: Path) -> bool:
    """``path`` is a regular file (not a symlink) owned by this process's user."""
    import stat

    try:
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and (not hasattr(os, "getuid") or info.st_uid == os.getuid())


def _load_database(uri: str, path: Path, target: Path) -> None:
    """Load ``path`` into a new database file at ``target`` (atomically), in a child, or raise DatasetError."""
    from stepcrew.tools import sandbox

    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.part")
    partial.unlink(missing_ok=True)
    limits = sandbox.Limits.for_duckdb(memory_limit_mb())
    name = dataset_name(uri)
    try:
        try:
            answer = sandbox.run({"op": "load", "source": str(path), "target": str(partial),
                                  "load_sql": _load_sql(path)}, LOAD_TIMEOUT_S, limits)
        except sandbox.SandboxTimeout:
            raise DatasetError(f"cannot load dataset {name}: loading took longer than {LOAD_TIMEOUT_S:g} s") from None
        except sandbox.SandboxOutOfMemory:
            raise DatasetError(f"cannot load dataset {name}: it needs more than the {limits.memory_mb} MiB memory "
                               "limit") from None
        if "load_error" in answer:
            first = str(answer["load_error"]).replace(str(path), path.name)  # no local paths in what the model reads
            raise DatasetError(f"cannot load dataset {path.name}: {first}")
        problem = None
        if answer["rows"] == 0:
            problem = "has no rows"
        elif path.name.lower().endswith(".csv") and all(_AUTO_COLUMN.fullmatch(c) for c in answer["columns"]):
            # DuckDB's sniffer read the first line as data (its types match the rows': "Adelie,3750"); a
            # header of labels over like-typed data ("region,2019,2020") is read the same way and refused too
            problem = "has no header row (the first line must name the columns)"
        if problem is not None:
            raise DatasetError(f"dataset {name} {problem}")
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)  # gone after the rename; a failed load leaves nothing
        partial.with_name(partial.name + ".wal").unlink(missing_ok=True)


def open_dataset(uri: str | None, tenant: str | None = None) -> duckdb.DuckDBPyConnection:
    """A new cursor on ``uri``'s database file (table ``data``, :func:`dataset_database`) opened ``read_only`` in
    this process, configured like a query's child (no temporary folder, DuckDB's memory cap, no external access,
    configuration locked). Close it when done. For trusted in-process code (tests, scripts): the data tools run
    their SQL in a child (:mod:`stepcrew.tools.sandbox`), never here. Raises DatasetError like
    :func:`dataset_database`."""
    import duckdb

    target = dataset_database(uri, tenant)
    stat = target.stat()
    key = (str(target), stat.st_mtime_ns, stat.st_size)
    with _lock:
        con = _databases.get(key)
        if con is None:
            con = duckdb.connect(str(target), read_only=True)
            # Order matters: the folders SQL may read are fixed when external access is switched off.
            con.execute("SET temp_directory = ''")
            con.execute(f"SET memory_limit = '{memory_limit_mb()}MiB'")
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
            _databases[key] = con
            while len(_databases) > MAX_CACHED_DATASETS:
                # dropped, not closed: another thread may still hold a cursor on it; DuckDB frees it once the last
                # cursor is gone
                _databases.popitem(last=False)
        _databases.move_to_end(key)
        return con.cursor()


def dataset_name(uri: str) -> str:
    """The file name of a dataset URI (what the tools report, never a local path)."""
    return Path(unquote(urlparse(uri).path)).name


# ---------------------------------------------------------------------------------------------------- uploads
#: The folder of uploaded datasets under a tenant's prefix: ``<tenant>/uploads/<name>``.
UPLOAD_FOLDER = "uploads"
#: Longest upload name (characters).
UPLOAD_NAME_MAX_CHARS = 128
_UPLOAD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: Content types an upload may declare, per suffix (the first is the default). Parquet's is IANA's
#: ``application/vnd.apache.parquet`` (registered 2024); JSON Lines has no registered type, both common ones pass.
UPLOAD_CONTENT_TYPES: dict[str, tuple[str, ...]] = {
    ".csv": ("text/csv",),
    ".parquet": ("application/vnd.apache.parquet", "application/octet-stream"),
    ".json": ("application/json",),
    ".jsonl": ("application/jsonl", "application/x-ndjson"),
}


def upload_name_error(name: str) -> tuple[str, str] | None:
    """Why ``name`` cannot name an uploaded dataset, as ``(code, message)``, or None when it can: 1 to
    :data:`UPLOAD_NAME_MAX_CHARS` of ``[A-Za-z0-9._-]`` starting with a letter or digit (so no ``/``, no spaces, no
    hidden file), no ``..``, ending in one of :data:`SUFFIXES`. Codes: ``invalid_dataset_name``,
    ``unsupported_dataset_type``. The message never quotes the name."""
    if not name or len(name) > UPLOAD_NAME_MAX_CHARS or not _UPLOAD_NAME.fullmatch(name) or ".." in name:
        return ("invalid_dataset_name", (f"a dataset name is 1-{UPLOAD_NAME_MAX_CHARS} of letters, digits, '.', "
                                         "'_' and '-', starts with a letter or digit and holds no '..' (e.g. "
                                         "sales.csv)"))
    if not name.lower().endswith(SUFFIXES):
        return ("unsupported_dataset_type", f"a dataset name must end in {', '.join(SUFFIXES)}")
    return None


def upload_content_type(name: str, content_type: str | None = None) -> str:
    """The content type an upload of ``name`` is stored with: ``content_type`` when it is one of
    :data:`UPLOAD_CONTENT_TYPES` for the name's suffix, the suffix's default when None. Raises ValueError for
    another type (or a name :func:`upload_name_error` refuses)."""
    suffix = next((s for s in sorted(SUFFIXES, key=len, reverse=True) if name.lower().endswith(s)), None)
    allowed = UPLOAD_CONTENT_TYPES.get(suffix or "")
    if not allowed:
        raise ValueError(f"a dataset name must end in {', '.join(SUFFIXES)}")
    if content_type is None:
        return allowed[0]
    if content_type.strip().lower() not in allowed:
        raise ValueError(f"a {suffix} dataset is uploaded as {' or '.join(allowed)}")
    return content_type.strip().lower()


def upload_key(tenant: str, name: str) -> str:
    """The S3 key of ``tenant``'s upload ``name``: ``<tenant>/uploads/<name>``. Raises ValueError for a tenant that is
    not a tenant id or a name :func:`upload_name_error` refuses (the key is always under the tenant's prefix)."""
    from stepcrew.models import TENANT_PATTERN

    if not isinstance(tenant, str) or not re.fullmatch(TENANT_PATTERN, tenant):
        raise ValueError("not a valid tenant id")
    problem = upload_name_error(name)
    if problem is not None:
        raise ValueError(problem[1])
    return f"{tenant}/{UPLOAD_FOLDER}/{name}"

"""The content-addressed on-disk score cache.

One sqlite database (``scores.sqlite`` in the cache directory) in WAL mode maps
sha256(model fingerprint, prompt, response) to the pair's scores (every objective), and to a digest
of what the model reads of the pair (its token ids after truncation), so that a warm run tells the
edits truncation cut away without tokenizing.
Each scored batch is committed as one transaction of upserts, so concurrent
pytest-xdist workers share the cache safely (readers never block, a writer waits
for the lock) and a killed run keeps every batch it finished. Only scores that a
model returned and :func:`~rmcheck.backends.base.normalise_scores` accepted are
written. The fingerprint decides what a score is valid for: a model whose
fingerprint changes never sees the old scores again.
"""
from __future__ import annotations

import functools
import hashlib
import json
import sqlite3
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..backends.base import Pair, Scores
from ..errors import RmcheckError

#: The default cache directory, relative to the pytest rootdir or the CLI's working directory.
DEFAULT_CACHE_DIR = ".rmcheck/cache"
DB_NAME = "scores.sqlite"
#: Bumped when the stored layout or the key changes; an older database is refused with a fix.
FORMAT = 1
#: Seconds a writer waits for another process's transaction before giving up.
LOCK_TIMEOUT = 120.0
_CHUNK = 500  # keys per SELECT (sqlite's variable limit is 999 on old builds)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS scores (key BLOB PRIMARY KEY, fingerprint TEXT NOT NULL, scores TEXT NOT NULL)"
    " WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS models (fingerprint TEXT PRIMARY KEY, spec TEXT NOT NULL, last_used REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS inputs (key BLOB PRIMARY KEY, digest BLOB NOT NULL) WITHOUT ROWID",
)


#: What sqlite and the system say of a cache that cannot be written (a read-only folder or file, a full disk).
UNWRITABLE = ("readonly", "read-only", "unable to open", "disk is full", "disk i/o error", "permission denied",
              "no space left")


class CacheError(RmcheckError):
    """The score cache cannot be opened, read or written."""


class CacheWarning(UserWarning):
    """The score cache cannot be written: the run goes on without it."""


@dataclass(frozen=True)
class ModelEntry:
    spec: str
    fingerprint: str
    pairs: int
    last_used: float


@dataclass(frozen=True)
class CacheInfo:
    path: Path
    size_bytes: int
    pairs: int
    models: list[ModelEntry]


def input_digest(seen: Any) -> bytes:
    """A digest of what a model reads of a pair (``backends.capabilities.model_inputs``: token ids, say);
    equal inputs give equal digests. Raises TypeError for inputs that are not plain data (numbers, text, lists
    of them)."""
    return hashlib.sha256(json.dumps(seen, separators=(",", ":")).encode("utf-8")).digest()


@functools.lru_cache(maxsize=1 << 13)  # a run looks a pair up for what the model reads, then for its scores
def pair_key(fingerprint: str, pair: Pair) -> bytes:
    """The cache key: sha256 over the fingerprint and the exact prompt (text or turns) and response."""
    prompt = pair.prompt if isinstance(pair.prompt, str) else [list(turn) for turn in pair.prompt]
    text = json.dumps([fingerprint, prompt, pair.response], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).digest()


class ScoreCache:
    """Scores on disk, by model fingerprint and exact pair text. Open one per process."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / DB_NAME
        self._connection: sqlite3.Connection | None = None

    @property
    def _db(self) -> sqlite3.Connection:
        """The connection, opened on first use (a run that scores nothing creates no file)."""
        if self._connection is None:
            self._connection = self._open()
        return self._connection

    def _open(self) -> sqlite3.Connection:
        """Open (creating if need be), retrying while another process holds the lock: the first switch
        to WAL needs an exclusive lock, and sqlite answers "locked" there without waiting."""
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                return self._try_open()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise self._error(f"cannot be opened ({exc})") from None
                time.sleep(0.05)
            except (OSError, sqlite3.Error) as exc:
                raise self._error(f"cannot be opened ({exc})") from None

    def _try_open(self) -> sqlite3.Connection:
        self.directory.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=LOCK_TIMEOUT, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            with _Transaction(db):
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version not in (0, FORMAT):
                    raise self._error(f"has format {version}, this rmcheck reads format {FORMAT}")
                for statement in _SCHEMA:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={FORMAT}")
        except BaseException:
            db.close()
            raise
        return db

    def get(self, fingerprint: str, pairs: Sequence[Pair]) -> dict[Pair, Scores]:
        """The cached scores of those ``pairs`` that have any."""
        return {pair: json.loads(text) for pair, text in self._select("scores", "scores", fingerprint, pairs).items()}

    def get_inputs(self, fingerprint: str, pairs: Sequence[Pair]) -> dict[Pair, bytes]:
        """The digests of what the model reads, for those ``pairs`` that have one (:meth:`put_inputs`)."""
        return self._select("inputs", "digest", fingerprint, pairs)

    def put_inputs(self, fingerprint: str, digests: Iterable[tuple[Pair, bytes]]) -> None:
        """Store digests of what the model reads of pairs (:func:`input_digest`), in one transaction."""
        rows = [(pair_key(fingerprint, p), digest) for p, digest in digests]
        try:
            with _Transaction(self._db):
                self._db.executemany("INSERT OR REPLACE INTO inputs VALUES (?, ?)", rows)
        except sqlite3.Error as exc:
            raise self._error(f"cannot be written ({exc})") from None

    def _select(self, table: str, column: str, fingerprint: str, pairs: Sequence[Pair]) -> dict[Pair, Any]:
        """``column`` of ``table`` for those ``pairs`` that have a row, by their keys under ``fingerprint``."""
        by_key = {pair_key(fingerprint, p): p for p in pairs}
        keys = list(by_key)
        found: dict[Pair, Any] = {}
        try:
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start:start + _CHUNK]
                rows = self._db.execute(
                    f"SELECT key, {column} FROM {table} WHERE key IN ({','.join('?' * len(chunk))})", chunk)
                found.update((by_key[key], value) for key, value in rows)
        except sqlite3.Error as exc:
            raise self._error(f"cannot be read ({exc})") from None
        return found

    def put(self, fingerprint: str, spec: str, scored: Iterable[tuple[Pair, Scores]]) -> None:
        """Store scores, in one transaction (all of them or, if the process dies, none)."""
        rows = [(pair_key(fingerprint, p), fingerprint, json.dumps(s)) for p, s in scored]
        try:
            with _Transaction(self._db):
                self._db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?)", rows)
                self._db.execute("INSERT OR REPLACE INTO models VALUES (?, ?, ?)", (fingerprint, spec, time.time()))
        except sqlite3.Error as exc:
            raise self._error(f"cannot be written ({exc})") from None

    def info(self) -> CacheInfo:
        """What the cache holds, per model fingerprint (most recently used first)."""
        rows = self._db.execute(
            "SELECT COALESCE(m.spec, '?'), s.fingerprint, COUNT(*), COALESCE(m.last_used, 0) FROM scores s "
            "LEFT JOIN models m ON m.fingerprint = s.fingerprint GROUP BY s.fingerprint ORDER BY 4 DESC").fetchall()
        models = [ModelEntry(*row) for row in rows]
        size = sum(p.stat().st_size for p in self.directory.glob(DB_NAME + "*"))
        return CacheInfo(self.path, size, sum(m.pairs for m in models), models)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _error(self, problem: str) -> CacheError:
        return CacheError(f"the score cache {problem}", where=str(self.path),
                          fix=f"Run 'rmcheck cache clear --cache {self.directory}', pass another cache directory, "
                              "or run without the cache (--rmcheck-no-cache / --no-cache)")


def clear_cache(directory: str | Path) -> int | None:
    """Delete the cache database in ``directory``; returns how many scores it held (None if unreadable)."""
    if not (Path(directory) / DB_NAME).exists():
        return 0
    try:
        cache = ScoreCache(directory)
        count: int | None = cache.info().pairs
        cache.close()
    except (CacheError, sqlite3.Error):
        count = None
    for path in Path(directory).glob(DB_NAME + "*"):
        path.unlink()
    return count


def describe_cache(directory: str | Path) -> str:
    """``rmcheck cache info``: where the cache is, its size, and how many scores it holds per model."""
    cache = ScoreCache(directory)
    if not cache.path.exists():
        return f"no score cache at {cache.path}"
    try:
        info = cache.info()
    except sqlite3.Error as exc:
        raise cache._error(f"cannot be read ({exc})") from None
    finally:
        cache.close()
    lines = [f"score cache {info.path}: {info.pairs} scores, {info.size_bytes / 1e6:.1f} MB"]
    for model in info.models:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(model.last_used))
        lines.append(f"  {model.pairs:>8} scores  {model.spec}  "
                     f"(fingerprint {model.fingerprint[:12]}, last used {used})")
    return "\n".join(lines)


class RunCache(ScoreCache):
    """A run's cache: one it cannot write (a read-only folder, a full disk) is said once, as a
    :class:`CacheWarning`, and the run goes on uncached; other problems (a file that is no cache) stay errors."""

    off = False

    def get(self, fingerprint: str, pairs: Sequence[Pair]) -> dict[Pair, Scores]:
        return {} if self.off else self._unless_unwritable(super().get, {}, fingerprint, pairs)

    def get_inputs(self, fingerprint: str, pairs: Sequence[Pair]) -> dict[Pair, bytes]:
        return {} if self.off else self._unless_unwritable(super().get_inputs, {}, fingerprint, pairs)

    def put(self, fingerprint: str, spec: str, scored: Iterable[tuple[Pair, Scores]]) -> None:
        if not self.off:
            self._unless_unwritable(super().put, None, fingerprint, spec, scored)

    def put_inputs(self, fingerprint: str, digests: Iterable[tuple[Pair, bytes]]) -> None:
        if not self.off:
            self._unless_unwritable(super().put_inputs, None, fingerprint, digests)

    def _unless_unwritable(self, call: Any, instead: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except CacheError as exc:
            if not any(word in str(exc).lower() for word in UNWRITABLE):
                raise
            self.off = True
            self.close()
            warnings.warn(CacheWarning(f"{exc.where}: the score cache cannot be used ({exc.message}); this run goes "
                                       "on without it. Make the folder writable or free some disk space, or pass "
                                       "another cache directory (--cache DIR / --rmcheck-cache DIR)"), stacklevel=2)
            return instead


def run_cache(directory: str | None, root: Path, *, disabled: bool = False) -> RunCache | None:
    """The cache a run uses: ``directory`` as given, else ``.rmcheck/cache`` under ``root``
    (the pytest rootdir, or the CLI's working directory); None when disabled."""
    if disabled:
        return None
    return RunCache(Path(directory) if directory else root / DEFAULT_CACHE_DIR)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error): takes the write lock up front."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if kind else "COMMIT")


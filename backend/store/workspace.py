"""The DuckDB workspace: one file that records every dataset row and every result, and how it was made.

Layout of a workspace folder::

    voxelscope.duckdb     tables below
    arrays/               large arrays (betas, images, embeddings) as .npy, referenced by the `arrays` table
    write.lock            held by the one writer process

Tables: ``meta`` (key/value), ``runs`` (method, parameters, model ids, seed, code version, time),
``arrays`` (name -> file, shape, dtype, run), ``subjects``, ``voxels``, ``voxel_truth`` (synthetic
world only), ``roi_labels``, ``stimulus_sources``, ``stimuli``, ``captions``, ``stimulus_objects``,
``subject_stimuli``, ``feature_sets`` (stimulus embeddings), ``encoders`` and
``voxel_encoding`` (voxel-wise encoders and their test accuracy), ``encoder_halves`` (the same encoder fitted on
each half of the training images: one guides BrainDiVE, the other re-ranks), ``banks``/``bank_items``,
``voxel_captions``, ``caption_eval`` and ``caption_index`` (sentence embeddings of the distinct captions,
row of the array ``caption_sentence_embeddings``), ``synthesis_runs`` / ``synthesis_images`` (BrainDiVE runs: target
spec, parameters, state; per seed its image and predicted activations), ``synthesis_eval`` (their evaluation
against the simulated subjects, one JSON table per evaluation run).

Writes go through :meth:`Workspace.writer`: one process at a time (an exclusive lock file), all rows
in one transaction, array files written under new names before the commit that references them.
If the writer dies, the database is as it was before and the unreferenced files are removed the
next time a writer opens the workspace. Readers (the app) open the database read-only and briefly.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import functools
import json
import os
import threading
import uuid
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import NotFoundError, VoxelScopeError
from ..surface.rois import ROI_COLUMNS

__all__ = ["Workspace", "WriteTransaction", "WorkspaceBusy", "SchemaMismatch", "DiskFull", "default_workspace", "code_version"]

REPO_ROOT = Path(__file__).resolve().parents[2]  # the checkout: backend/store/workspace.py -> repository root
DB_NAME = "voxelscope.duckdb"
SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, method VARCHAR NOT NULL, parameters JSON, model_ids JSON, seed BIGINT,
    code_version VARCHAR, created_at TIMESTAMP, host VARCHAR);
CREATE TABLE IF NOT EXISTS arrays (
    name VARCHAR PRIMARY KEY, path VARCHAR NOT NULL, shape VARCHAR, dtype VARCHAR, run_id VARCHAR,
    description VARCHAR);
CREATE TABLE IF NOT EXISTS subjects (
    subject VARCHAR PRIMARY KEY, space VARCHAR, source VARCHAR, n_sessions INTEGER, n_trials INTEGER,
    n_images INTEGER, n_voxels INTEGER, betas_array VARCHAR, run_id VARCHAR);
CREATE TABLE IF NOT EXISTS voxels (
    subject VARCHAR, voxel INTEGER, hemi VARCHAR, vertex INTEGER,
    {roi_columns}, roi VARCHAR,
    ncsnr REAL, noise_ceiling REAL, noise_ceiling_test REAL,
    PRIMARY KEY (subject, voxel));
CREATE TABLE IF NOT EXISTS voxel_truth (
    subject VARCHAR, voxel INTEGER, category VARCHAR, prf_x REAL, prf_y REAL, prf_sigma REAL,
    prf_share REAL, ncsnr_true REAL, weights REAL[], PRIMARY KEY (subject, voxel));
CREATE TABLE IF NOT EXISTS roi_labels (roi_file VARCHAR, label INTEGER, name VARCHAR, category VARCHAR);
CREATE TABLE IF NOT EXISTS stimulus_sources (
    source VARCHAR PRIMARY KEY, kind VARCHAR, path VARCHAR, dataset VARCHAR, n_images INTEGER,
    height INTEGER, width INTEGER);
CREATE TABLE IF NOT EXISTS stimuli (
    stim_id INTEGER PRIMARY KEY, source VARCHAR, image_index INTEGER, coco_id BIGINT, shared BOOLEAN,
    background VARCHAR, bg_colour VARCHAR, texture VARCHAR, setting VARCHAR, categories VARCHAR[], file VARCHAR);
CREATE TABLE IF NOT EXISTS captions (stim_id INTEGER, k INTEGER, caption VARCHAR, PRIMARY KEY (stim_id, k));
CREATE TABLE IF NOT EXISTS stimulus_objects (
    stim_id INTEGER, obj INTEGER, category VARCHAR, kind VARCHAR, colour VARCHAR, x REAL, y REAL, size REAL,
    area REAL, text VARCHAR, PRIMARY KEY (stim_id, obj));
CREATE TABLE IF NOT EXISTS subject_stimuli (
    subject VARCHAR, row INTEGER, stim_id INTEGER, n_reps INTEGER, split VARCHAR, PRIMARY KEY (subject, row));
CREATE TABLE IF NOT EXISTS feature_sets (
    key VARCHAR PRIMARY KEY, model_id VARCHAR, fingerprint VARCHAR, array_name VARCHAR, n INTEGER, dim INTEGER,
    run_id VARCHAR);
CREATE TABLE IF NOT EXISTS encoders (
    subject VARCHAR, feature_key VARCHAR, model_id VARCHAR, run_id VARCHAR, weights_array VARCHAR, cv VARCHAR,
    n_train INTEGER, n_test INTEGER, method VARCHAR DEFAULT 'ridge', PRIMARY KEY (subject, feature_key, method));
CREATE TABLE IF NOT EXISTS banks (
    bank VARCHAR PRIMARY KEY, model_id VARCHAR, array_name VARCHAR, n INTEGER, dim INTEGER, source VARCHAR,
    run_id VARCHAR);
CREATE TABLE IF NOT EXISTS bank_items (bank VARCHAR, idx INTEGER, caption VARCHAR, image VARCHAR,
    PRIMARY KEY (bank, idx));
CREATE TABLE IF NOT EXISTS voxel_captions (
    subject VARCHAR, method VARCHAR, voxel INTEGER, caption VARCHAR, keywords VARCHAR, run_id VARCHAR,
    PRIMARY KEY (subject, method, voxel));
CREATE TABLE IF NOT EXISTS caption_eval (
    subject VARCHAR, method VARCHAR, voxel INTEGER, sentence_r REAL, names_truth BOOLEAN,
    PRIMARY KEY (subject, method, voxel));
CREATE TABLE IF NOT EXISTS caption_index (
    caption VARCHAR PRIMARY KEY, row INTEGER, model_id VARCHAR, run_id VARCHAR);
CREATE TABLE IF NOT EXISTS attention_encoders (
    subject VARCHAR, feature_key VARCHAR, model_id VARCHAR, run_id VARCHAR, path VARCHAR, n_train INTEGER,
    n_test INTEGER, PRIMARY KEY (subject, feature_key));
CREATE TABLE IF NOT EXISTS encoder_halves (
    subject VARCHAR, feature_key VARCHAR, half INTEGER, run_id VARCHAR, weights_array VARCHAR, n_train INTEGER,
    PRIMARY KEY (subject, feature_key, half));
CREATE TABLE IF NOT EXISTS synthesis_runs (
    run_id VARCHAR PRIMARY KEY, key VARCHAR, label VARCHAR, target JSON, subjects VARCHAR[], n_seeds INTEGER,
    first_seed INTEGER, steps INTEGER, scale REAL, sampler VARCHAR, state VARCHAR, created_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS synthesis_images (
    run_id VARCHAR, seed INTEGER, images_array VARCHAR, idx INTEGER, pred_guide REAL, pred_rerank REAL,
    kept BOOLEAN, rank INTEGER, true_response REAL, judged VARCHAR, PRIMARY KEY (run_id, seed));
CREATE TABLE IF NOT EXISTS synthesis_eval (eval_run VARCHAR PRIMARY KEY, created_at TIMESTAMP, rows JSON);
CREATE TABLE IF NOT EXISTS voxel_clusters (
    subject VARCHAR, voxel INTEGER, cluster INTEGER, prob REAL, run_id VARCHAR, PRIMARY KEY (subject, voxel));
CREATE TABLE IF NOT EXISTS decoders (
    decoder_id VARCHAR PRIMARY KEY, kind VARCHAR, subjects VARCHAR[], regime VARCHAR, path VARCHAR, run_id VARCHAR,
    created_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS reconstructions (
    run_id VARCHAR, decoder_id VARCHAR, subject VARCHAR, stim_id INTEGER, sample INTEGER, rank INTEGER,
    score REAL, images_array VARCHAR, idx INTEGER, PRIMARY KEY (run_id, stim_id, sample));
CREATE TABLE IF NOT EXISTS reconstruction_runs (
    run_id VARCHAR PRIMARY KEY, key VARCHAR, decoder_id VARCHAR, subject VARCHAR, n_images INTEGER,
    samples INTEGER, strength REAL, steps INTEGER, state VARCHAR, metrics JSON, created_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS voxel_encoding (
    subject VARCHAR, feature_key VARCHAR, voxel INTEGER, alpha REAL, r_test REAL, r2_test REAL, r2_nc REAL,
    PRIMARY KEY (subject, feature_key, voxel));
""".replace("{roi_columns}", ", ".join(f'"{c}" VARCHAR' for c in ROI_COLUMNS))  # one column per ROI file


def _migrate(tx) -> None:
    """Bring a workspace of this schema version written by an older VoxelScope up to date (inside the write
    transaction): ``encoders`` gained ``method`` (ridge or in-context) and a key that includes it."""
    cols = {r[0] for r in tx.sql("SELECT column_name FROM information_schema.columns WHERE table_name = 'encoders'")}
    if "method" not in cols:
        tx.sql("ALTER TABLE encoders RENAME TO encoders_before_method")
        tx.sql(SCHEMA[SCHEMA.index("CREATE TABLE IF NOT EXISTS encoders ("):].split(";")[0])
        tx.sql("INSERT INTO encoders SELECT *, 'ridge' FROM encoders_before_method")
        tx.sql("DROP TABLE encoders_before_method")


class WorkspaceBusy(VoxelScopeError, RuntimeError):
    """Another process holds the workspace: a writer (its lock), or a reader that has the file open."""


class DiskFull(VoxelScopeError, OSError):
    """A write ran out of disk space; it was rolled back."""


class SchemaMismatch(VoxelScopeError, RuntimeError):
    """The workspace was written by a VoxelScope with another schema version."""


READER_WAIT_S = 120.0
_SHARED = threading.local()  # per thread: db path -> the connection of an open Workspace.reading() block  # how long a writer waits for readers (the app's short queries) to let go of the file


def default_workspace() -> Path:
    """``$VOXELSCOPE_WORKSPACE`` or ``workspace/`` at the repository root."""
    env = os.environ.get("VOXELSCOPE_WORKSPACE")
    return Path(env) if env else REPO_ROOT / "workspace"


def code_version() -> str:
    """Package version plus the git commit when the code runs from a checkout."""
    root = REPO_ROOT
    head = root / ".git" / "HEAD"
    commit = ""
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref:"):
            name = ref.split(" ", 1)[1]
            p = root / ".git" / name
            if p.exists():
                commit = p.read_text().strip()
            elif (root / ".git" / "packed-refs").exists():  # refs packed by git gc or a clone
                packed = dict(line.split(" ", 1)[::-1] for line in (root / ".git" / "packed-refs").read_text()
                              .splitlines() if line and line[0] not in "#^")
                commit = packed.get(name, "")
        else:
            commit = ref
    except OSError:
        pass
    return f"{__version__}+{commit[:10]}" if commit else __version__


def one_connection(fn):
    """Decorator for readers ``fn(ws, ...)`` that run several queries: they share one connection
    (:meth:`Workspace.reading`)."""
    @functools.wraps(fn)
    def wrapper(ws, *args, **kwargs):
        with ws.reading():
            return fn(ws, *args, **kwargs)

    return wrapper


class Workspace:
    """A workspace folder. ``Workspace(path).exists`` tells whether a world has been written."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else default_workspace()
        self.db_path = self.path / DB_NAME
        self.arrays_dir = self.path / "arrays"

    @property
    def staging_dir(self) -> Path:
        """``staging/``: files a long computation writes before its short write (resumable chunks, checkpoints,
        arrays larger than memory), outside ``arrays/``, so a writer's clean-up of orphans never touches them."""
        p = self.path / "staging"
        p.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def exists(self) -> bool:
        """True when a complete world of this schema version is stored. Raises WorkspaceBusy while a
        writer holds the database (DuckDB lets no other process open it then)."""
        if not self.db_path.exists():
            return False
        try:
            with self.read() as con:
                meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        except WorkspaceBusy:
            raise
        except Exception:  # noqa: BLE001 - an unreadable or empty database is not a usable workspace
            return False
        return meta.get("complete") == "true" and meta.get("schema_version") == str(SCHEMA_VERSION)

    # ------------------------------------------------------------------ reading
    @contextlib.contextmanager
    def read(self):
        """A short-lived read-only DuckDB connection (the one of an enclosing :meth:`reading` block, if any)."""
        import duckdb

        shared = getattr(_SHARED, "cons", {}).get(str(self.db_path))
        if shared is not None:
            yield shared
            return
        if not self.db_path.exists():
            raise FileNotFoundError(f"no workspace at {self.path} (run `python -m backend demo build` or an import)")
        try:
            con = duckdb.connect(str(self.db_path), read_only=True)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise WorkspaceBusy(f"workspace {self.path} is being written by another process; try again when it "
                                    "has finished") from exc
            raise
        try:
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def reading(self):
        """One read-only connection for every read of this workspace inside the block (in this thread).

        Opening a connection costs 20-30 ms; a page that runs dozens of small queries opens one instead. Keep the
        block short: while it is open a writer in another process waits (up to ``READER_WAIT_S``)."""
        cons = _SHARED.__dict__.setdefault("cons", {})
        key = str(self.db_path)
        if key in cons or not self.db_path.exists():  # nested, or nothing to open (the reads say so themselves)
            yield self
            return
        with self.read() as con:
            cons[key] = con
            try:
                yield self
            finally:
                del cons[key]

    def query(self, sql: str, params=None):
        """Run one read-only query and return a pandas DataFrame."""
        with self.read() as con:
            return con.execute(sql, params or []).df()

    def array(self, name: str, mmap: bool = True) -> np.ndarray:
        """Load a registered array (memory-mapped by default)."""
        with self.read() as con:
            row = con.execute("SELECT path FROM arrays WHERE name = ?", [name]).fetchone()
        if row is None:
            raise NotFoundError(f"array {name!r} is not registered in workspace {self.path}")
        return np.load(self.path / row[0], mmap_mode="r" if mmap else None)

    def has_table(self, name: str) -> bool:
        """Whether the database has table ``name`` (workspaces written before a table was added lack it)."""
        return bool(len(self.query("SELECT 1 FROM information_schema.tables WHERE table_name = ?", [name])))

    def meta(self) -> dict[str, str]:
        with self.read() as con:
            return dict(con.execute("SELECT key, value FROM meta").fetchall())

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def writer(self, reset: bool = False, reader_wait_s: float = READER_WAIT_S):
        """Exclusive, all-or-nothing write access. Yields a :class:`WriteTransaction`.

        Parameters
        ----------
        reset : bool
            Start from empty tables (inside the same transaction: on failure the old content stays).
            Without it, a workspace written by another schema version is refused.
        reader_wait_s : float
            While a reader (the app) has the database open for a moment, retry for up to this many
            seconds before raising :class:`WorkspaceBusy`. Another *writer* is never waited for.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        self.arrays_dir.mkdir(exist_ok=True)
        lock, con = self._acquire(reader_wait_s)
        tx = WriteTransaction(self, con)
        try:
            con.execute(SCHEMA).fetchall()
            tx.remove_orphans()
            tx.sql("BEGIN TRANSACTION")
            found = tx.sql("SELECT value FROM meta WHERE key = 'schema_version'")
            if reset:
                tables = [r[0] for r in tx.sql("SELECT table_name FROM duckdb_tables()")]
                for t in tables:
                    tx.sql(f'DROP TABLE "{t}"')
                tx.sql(SCHEMA)
            elif found and found[0][0] != str(SCHEMA_VERSION):
                raise SchemaMismatch(f"workspace {self.path} was written with schema version {found[0][0]}, this "
                                   f"VoxelScope uses {SCHEMA_VERSION}: rebuild it (python -m backend demo build) or "
                                   "import into a new folder")
            tx.set_meta(schema_version=SCHEMA_VERSION)
            _migrate(tx)
            yield tx
            tx.sql("COMMIT")
            tx.committed = True
            tx.sql("CHECKPOINT")
        except BaseException as exc:
            with contextlib.suppress(Exception):
                con.execute("ROLLBACK").fetchall()
            for p in tx.new_files:  # files this write created are not referenced by anything
                with contextlib.suppress(OSError):
                    p.unlink()
            if getattr(exc, "errno", None) == errno.ENOSPC or "No space left on device" in str(exc):
                raise DiskFull(f"the disk holding workspace {self.path} is full: nothing of this write was stored "
                               "(the workspace is as it was); free some space and run it again") from exc
            raise
        finally:
            con.close()
            if tx.committed:
                tx.remove_orphans_after_commit()
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()


    def _acquire(self, reader_wait_s: float):
        """(lock file, DuckDB connection) for one writer; waits for readers, never for another writer."""
        import time

        import duckdb

        lock = open(self.path / "write.lock", "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            who = lock.read().strip()
            lock.close()
            raise WorkspaceBusy(f"workspace {self.path} is being written by another process ({who or 'unknown'}); "
                                "wait for it to finish") from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}")
        lock.flush()
        t0, delay = time.monotonic(), 0.05
        while True:
            try:
                return lock, duckdb.connect(str(self.db_path))
            except duckdb.IOException as exc:
                if time.monotonic() - t0 < reader_wait_s:
                    time.sleep(delay)
                    delay = min(2 * delay, 1.0)
                    continue
                fcntl.flock(lock, fcntl.LOCK_UN)
                lock.close()
                raise WorkspaceBusy(f"workspace {self.db_path} is open in another process: {exc}") from exc


class WriteTransaction:
    """Inside :meth:`Workspace.writer`: register runs, arrays and rows."""

    def __init__(self, ws: Workspace, con):
        self.ws = ws
        self.con = con
        self.new_files: list[Path] = []
        self.committed = False

    def sql(self, query: str, params=None) -> list:
        """Execute one statement and consume its result (DuckDB wants results finished before the next call)."""
        return self.con.execute(query, params or []).fetchall()

    def new_run(self, method: str, parameters: dict, seed: int | None = None, model_ids: dict | None = None) -> str:
        """Record how a result is being made; returns its run id."""
        run_id = f"{method}-{_dt.datetime.now(_dt.timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        self.sql(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, method, json.dumps(parameters, default=str), json.dumps(model_ids or {}), seed, code_version(),
             _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None), os.uname().nodename])
        return run_id

    def adopt_array(self, name: str, staged: Path, run_id: str, description: str = "") -> None:
        """Store the ``.npy`` file ``staged`` (written outside the writer, in :attr:`Workspace.staging_dir`) under
        ``name``: moved into ``arrays/``, never read whole (betas of a full-size subject, patch tokens)."""
        path = self.new_array_path(name)
        os.replace(staged, path)
        self.put_array(name, path, run_id, description)

    def new_array_path(self, name: str) -> Path:
        """A fresh file path for array ``name`` (never overwrites a file that a committed row references)."""
        return self.new_file_path(name, ".npy")

    def new_file_path(self, name: str, suffix: str) -> Path:
        """A fresh path in the workspace's ``arrays/`` folder for a file this write creates (model weights, ...);
        removed again if the write does not commit."""
        self.ws.arrays_dir.mkdir(parents=True, exist_ok=True)
        p = self.ws.arrays_dir / f"{name}.{uuid.uuid4().hex[:8]}{suffix}"
        self.new_files.append(p)
        return p

    def put_array(self, name: str, array: np.ndarray | Path, run_id: str, description: str = "") -> None:
        """Store ``array`` (or adopt an .npy file written by :meth:`new_array_path`) under ``name``."""
        if isinstance(array, Path):
            path = array
            arr = np.load(path, mmap_mode="r")
        else:
            path = self.new_array_path(name)
            tmp = path.with_suffix(".tmp.npy")
            try:
                np.save(tmp, array)
            except BaseException:  # a full disk, a kill: no half-written file stays behind
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise
            os.replace(tmp, path)
            arr = array
        self.sql("DELETE FROM arrays WHERE name = ?", [name])
        self.sql("INSERT INTO arrays VALUES (?, ?, ?, ?, ?, ?)",
                         [name, str(path.relative_to(self.ws.path)), json.dumps(list(arr.shape)), str(arr.dtype),
                          run_id, description])

    def put_file(self, name: str, path: Path, run_id: str, description: str = "") -> None:
        """Register a file written to a :meth:`new_file_path` (model weights, ...) under ``name``."""
        self.sql("DELETE FROM arrays WHERE name = ?", [name])
        self.sql("INSERT INTO arrays VALUES (?, ?, ?, ?, ?, ?)",
                 [name, str(path.relative_to(self.ws.path)), "", path.suffix.lstrip("."), run_id, description])

    def insert_df(self, table: str, df) -> None:
        """Append a DataFrame whose columns match ``table``'s, by name."""
        self.con.register("_df", df)
        cols = ", ".join(f'"{c}"' for c in df.columns)
        self.sql(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _df")
        self.con.unregister("_df")

    def set_meta(self, **kv) -> None:
        for k, v in kv.items():
            self.sql("INSERT OR REPLACE INTO meta VALUES (?, ?)", [k, str(v)])

    def _referenced(self) -> set[Path]:
        return {(self.ws.path / p).resolve() for (p,) in self.con.execute("SELECT path FROM arrays").fetchall()}

    def remove_orphans(self) -> None:
        """Delete array files that no committed row references (left by an interrupted writer)."""
        ref = self._referenced()
        for pattern in ("*.npy", "*.safetensors"):
            for p in self.ws.arrays_dir.glob(pattern):
                if p.resolve() not in ref:
                    p.unlink()

    def remove_orphans_after_commit(self) -> None:
        """Best effort: if a reader has the file open right now, the next writer cleans up instead (the data
        is already committed; an unreferenced file is only wasted space)."""
        import duckdb

        try:
            con = duckdb.connect(str(self.ws.db_path))
        except duckdb.IOException:
            return
        try:
            self.con = con
            self.remove_orphans()
        finally:
            con.close()

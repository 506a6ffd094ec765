"""Long work as background jobs: queued by the app or the command line, run by one worker process.

The queue is huey's (a small, well-kept task queue) on SQLite storage in the workspace folder
(``jobs.sqlite3``): no server to install, one machine. Next to huey's tables the same file holds a
``jobs`` table with what the pages show: kind, parameters, state (queued / running / done / failed /
cancelled), the step being run with its counts, rate and ETA, the error text, and the run ids the job
wrote. The app only writes job requests there and stays a reader of the workspace; the worker is the
workspace's one writer.

A killed worker (even ``kill -9``) leaves its job marked running; the next worker puts it back in the
queue, and the job resumes from its own checkpoints (the world build keeps finished render chunks,
captions commit per batch of voxels), so nothing is half-written or written twice.
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import time
import traceback
import uuid
from pathlib import Path

import pandas as pd

from ..errors import InvalidInputError, NotFoundError
from ..store import Workspace

__all__ = ["JOB_KINDS", "STATES", "PREPARE", "submit", "cancel", "list_jobs", "get_job", "run_worker", "JobCancelled",
           "prepare_demo", "preparation", "worker_running", "start_worker", "ensure_job", "job_executor",
           "set_job_executor", "EXECUTOR_KINDS"]

STATES = ("queued", "running", "done", "failed", "cancelled")
DB_NAME = "jobs.sqlite3"
_SCHEMA = """CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, kind TEXT, params TEXT, state TEXT, stage TEXT, done REAL, total REAL,
    rate REAL, eta_s REAL, error TEXT, runs TEXT, cancel INTEGER DEFAULT 0, pid INTEGER,
    created REAL, started REAL, finished REAL)"""


_SETTINGS = "CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT)"
EXECUTOR_KINDS = ("encoders", "captions", "attention", "synthesis", "synthesis_evaluation", "reconstruction")  # kinds with parallel parts


class JobCancelled(Exception):
    """Raised inside a job when its cancellation was asked for."""


# ------------------------------------------------------------------------------------------ the kinds of job

def _device(params: dict) -> str:
    """The job's device: its ``device`` parameter, else :func:`backend.models.default_device` (a GPU when present)."""
    from ..models import default_device

    return params.get("device") or default_device()


def _world(ws: Workspace, params: dict, progress) -> list[str]:
    from ..datasets.demo import build_demo_world, default_config, tiny_config

    from ..explore import cached_roi_map
    from ..store import subjects

    cfg = (tiny_config if params.get("tiny") else default_config)(int(params.get("seed", 0)))
    run = build_demo_world(ws, cfg, progress=progress)["run"]
    names = subjects(ws)
    for k, s in enumerate(names):  # the home page's ROI maps, so its first visit renders nothing
        progress("Drawing the ROI maps", k, len(names))
        cached_roi_map(ws, s)
    progress("Drawing the ROI maps", len(names), len(names))
    return [run]


def _encoders(ws: Workspace, params: dict, progress) -> list[str]:
    from ..encoders import fit_encoders

    return [r["run"] for r in fit_encoders(ws, params.get("subjects"), device=_device(params),
                                           executor=params.get("executor"),
                                           only_missing=True, progress=progress)]


def _incontext(ws: Workspace, params: dict, progress) -> list[str]:
    from ..encoders import fit_incontext_encoder, load_incontext_model

    device = _device(params)
    model = load_incontext_model(device=device)
    return [fit_incontext_encoder(ws, s, int(params["n_images"]), order=params.get("order", "first"),
                                  seed=int(params.get("seed", 0)), model=model, device=device,
                                  progress=progress)["run"] for s in params["subjects"]]


def _captions(ws: Workspace, params: dict, progress) -> list[str]:
    from ..captions import caption_all

    res = caption_all(ws, params.get("subjects"), methods=params.get("methods"), device=_device(params),
                      batch=int(params.get("batch", 256)), voxels=params.get("voxels"),
                      bank_size=int(params.get("bank_size", 50_000)), progress=progress, log=lambda m: None,
                      executor=params.get("executor"))
    return [r["run"] for s in res["captions"].values() for r in s.values()]


def _attention(ws: Workspace, params: dict, progress) -> list[str]:
    from ..encoders import AttentionConfig, fit_attention_encoders

    cfg = AttentionConfig(**params.get("config", {}))
    return [r["run"] for r in fit_attention_encoders(ws, params.get("subjects"), cfg, device=_device(params),
                                                     only_missing=True, progress=progress,
                                                     executor=params.get("executor"))]


def _synthesis(ws: Workspace, params: dict, progress) -> list[str]:
    from ..synthesis import GuidanceConfig, synthesize

    preview = params.get("preview")
    if preview and not re.fullmatch(r"[\w.-]+\.png", preview):
        raise InvalidInputError(f"preview {preview!r}: expected a plain file name ending in .png")
    res = synthesize(ws, params["target"], n_seeds=int(params.get("n_seeds", 32)),
                     first_seed=int(params.get("first_seed", 0)), config=GuidanceConfig(**params.get("guidance", {})),
                     keep=float(params.get("keep", 0.2)), device=_device(params), progress=progress,
                     preview_file=(ws.path / "previews" / preview) if preview else None,
                     executor=params.get("executor"))
    return [res["run_id"]]


def _synthesis_evaluation(ws: Workspace, params: dict, progress) -> list[str]:
    from ..synthesis import GuidanceConfig, evaluate_synthesis, stored_evaluation

    evaluate_synthesis(ws, params.get("subjects"), n_seeds=int(params.get("n_seeds", 100)),
                       config=GuidanceConfig(**params.get("guidance", {})), device=_device(params),
                       progress=progress, log=lambda m: None, executor=params.get("executor"))
    return [stored_evaluation(ws)[0]]


def _reconstruction(ws: Workspace, params: dict, progress) -> list[str]:
    from ..reconstruction import ReconConfig, ensure_decoder, reconstruct

    device = _device(params)
    decoder = ensure_decoder(ws, str(params.get("decoder", "bit")), device=device, progress=progress,
                             executor=params.get("executor"))
    res = reconstruct(ws, decoder, params["subject"], ReconConfig(**params.get("config", {})), device=device,
                      progress=progress)
    return [res["run_id"]]


# name -> (label, function(ws, params, progress) -> run ids)
JOB_KINDS = {"world": ("Build the demo world", _world), "encoders": ("Fit the voxel encoders", _encoders),
             "incontext": ("Write encoders from a few images (in-context)", _incontext),
             "captions": ("Caption every voxel", _captions),
             "attention": ("Fit the attention encoders", _attention),
             "synthesis": ("Synthesize images (BrainDiVE)", _synthesis),
             "synthesis_evaluation": ("Evaluate BrainDiVE against the simulated subjects", _synthesis_evaluation),
             "reconstruction": ("Reconstruct seen images (Brain-IT)", _reconstruction)}


# ------------------------------------------------------------------------------------------ the jobs table
def _connect(ws: Workspace) -> sqlite3.Connection:
    ws.path.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(ws.path / DB_NAME, timeout=30)
    con.execute(_SCHEMA)
    con.execute(_SETTINGS)
    return con


def job_executor(ws: Workspace) -> str | None:
    """The executor chosen in the app for the jobs its pages start (``local`` or ``ray``), or None when none was
    chosen (the worker's ``$VOXELSCOPE_EXECUTOR`` then decides, else local)."""
    with _connect(ws) as con:
        row = con.execute("SELECT value FROM settings WHERE key = 'executor'").fetchone()
    return row[0] if row else None


def set_job_executor(ws: Workspace, name: str) -> None:
    """Run the parallel parts of jobs submitted from now on (``EXECUTOR_KINDS``) on ``name`` (``local`` or ``ray``)."""
    from ..executor import EXECUTORS

    if name not in EXECUTORS:
        raise InvalidInputError(f"unknown executor {name!r}: choose one of {', '.join(EXECUTORS)}")
    with _connect(ws) as con:
        con.execute("INSERT OR REPLACE INTO settings VALUES ('executor', ?)", [name])


def _update(ws: Workspace, job_id: str, **fields) -> None:
    with _connect(ws) as con:
        con.execute(f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in fields)} WHERE job_id = ?",
                    [*fields.values(), job_id])


def _huey(ws: Workspace):
    """(huey on the workspace's SQLite file, its one task: run a job by id)."""
    from huey import SqliteHuey

    huey = SqliteHuey("voxelscope", filename=str(ws.path / DB_NAME))
    return huey, huey.task(name="run_job")(_run_job)


def submit(ws: Workspace, kind: str, params: dict | None = None) -> str:
    """Queue a job of ``kind`` (see ``JOB_KINDS``); returns its id. A worker (``python -m backend jobs worker``)
    runs it."""
    if kind not in JOB_KINDS:
        raise InvalidInputError(f"unknown job kind {kind!r} (known: {', '.join(JOB_KINDS)})")
    job_id = f"{kind}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    params = dict(params or {})
    if kind in EXECUTOR_KINDS and "executor" not in params and (ex := job_executor(ws)):
        params["executor"] = ex  # the app's setting, recorded with the job
    with _connect(ws) as con:
        con.execute("INSERT INTO jobs (job_id, kind, params, state, created) VALUES (?, ?, ?, 'queued', ?)",
                    [job_id, kind, json.dumps(params or {}), time.time()])
    _huey(ws)[1](str(ws.path), job_id)  # calling a huey task enqueues it
    return job_id


def list_jobs(ws: Workspace) -> pd.DataFrame:
    """Every job, newest first: job_id, kind, params, state, stage, done, total, rate, eta_s, error, runs,
    created, started, finished."""
    with _connect(ws) as con:
        return pd.read_sql_query("SELECT job_id, kind, params, state, stage, done, total, rate, eta_s, error, runs, "
                                 "created, started, finished FROM jobs ORDER BY created DESC", con)


def get_job(ws: Workspace, job_id: str) -> dict:
    """One job's row (see :func:`list_jobs`); what the job has not reported yet (stage, done, total, ...) is None."""
    jobs = list_jobs(ws)
    row = jobs[jobs.job_id == job_id]
    if row.empty:
        raise NotFoundError(f"no job {job_id!r} in {ws.path / DB_NAME}")
    # (pandas reads SQL NULLs of number columns as NaN, and NaN is truthy: a job that had started but not yet
    # reported its total drew a NaN progress bar, whose error froze the page's job panel)
    return {k: None if isinstance(v, float) and v != v else v for k, v in row.iloc[0].to_dict().items()}


def cancel(ws: Workspace, job_id: str) -> str:
    """Ask a job to stop: a queued job is cancelled at once, a running one at its next progress report
    (what it committed stays, and a new job of the same kind continues from there). Returns the job's state."""
    state = get_job(ws, job_id)["state"]
    if state in ("done", "failed", "cancelled"):
        return state
    with _connect(ws) as con:
        con.execute("UPDATE jobs SET cancel = 1 WHERE job_id = ?", [job_id])
        con.execute("UPDATE jobs SET state = 'cancelled', finished = ? WHERE job_id = ? AND state = 'queued'",
                    [time.time(), job_id])
    return get_job(ws, job_id)["state"]


# ------------------------------------------------------------------------------------------ the worker
def _progress_writer(ws: Workspace, job_id: str, every_s: float = 0.5):
    """A ``progress(stage, done, total)`` callback that writes the job's step, counts, rate and ETA (at most every
    ``every_s`` seconds, and at each new step) and raises :class:`JobCancelled` once a cancel was asked for."""
    state = {"stage": None, "t0": 0.0, "d0": 0.0, "last": 0.0}

    def progress(stage: str, done: float, total: float) -> None:
        now = time.monotonic()
        if stage != state["stage"]:
            state.update(stage=stage, t0=now, d0=done, last=0.0)
        if now - state["last"] < every_s and done < total:
            return
        state["last"] = now
        rate = (done - state["d0"]) / max(now - state["t0"], 1e-9)
        eta = (total - done) / rate if rate > 0 else None
        with _connect(ws) as con:
            con.execute("UPDATE jobs SET stage = ?, done = ?, total = ?, rate = ?, eta_s = ? WHERE job_id = ?",
                        [stage, float(done), float(total), rate, eta, job_id])
            if con.execute("SELECT cancel FROM jobs WHERE job_id = ?", [job_id]).fetchone()[0]:
                raise JobCancelled(job_id)

    return progress


def _run_job(ws_path: str, job_id: str) -> None:
    """Run one job in the worker (huey calls this)."""
    ws = Workspace(ws_path)
    job = get_job(ws, job_id)
    if job["state"] != "queued":  # cancelled while queued, or already finished
        return
    _update(ws, job_id, state="running", started=time.time(), pid=os.getpid(), error=None)
    try:
        runs = JOB_KINDS[job["kind"]][1](ws, json.loads(job["params"]), _progress_writer(ws, job_id))
    except JobCancelled:
        _update(ws, job_id, state="cancelled", finished=time.time())
    except Exception as exc:  # noqa: BLE001 - the error text goes to the page
        _update(ws, job_id, state="failed", finished=time.time(),
                error=f"{exc}\n\n{traceback.format_exc(limit=6)}")
    else:
        _update(ws, job_id, state="done", finished=time.time(), runs=json.dumps(runs))


PREPARE = ("world", "encoders", "captions")  # the demo world's preparation, in order


def _needed(ws: Workspace) -> list[str]:
    """The preparation steps whose results the workspace lacks."""
    from ..store import WorkspaceBusy

    try:
        if not ws.exists:
            return list(PREPARE)
        from ..captions import captioned_subjects
        from ..store import has_encoder, subjects

        names = subjects(ws)
        need = [] if all(has_encoder(ws, s) for s in names) else ["encoders"]
        return need + ([] if captioned_subjects(ws) >= set(names) else ["captions"])
    except WorkspaceBusy:
        return []  # being written right now: a job is at work


def prepare_demo(ws: Workspace, tiny: bool = False) -> list[str]:
    """Queue the steps of the demo world's preparation (world, encoders, captions) that the workspace lacks and
    that are not queued or running already; returns the ids of the jobs queued now (none on later starts)."""
    jobs = list_jobs(ws)
    active = set(jobs[jobs.state.isin(["queued", "running"])].kind)
    needed = _needed(ws)
    return [submit(ws, kind, {"tiny": tiny} if kind == "world" else {}) for kind in needed if kind not in active]


def preparation(ws: Workspace) -> pd.DataFrame:
    """The newest job of each preparation step (kind, label, state, stage, done, total, rate, eta_s, error);
    steps never queued are absent."""
    jobs = list_jobs(ws)
    jobs = jobs[jobs.kind.isin(PREPARE)].drop_duplicates("kind")  # newest first
    jobs = jobs.assign(label=[JOB_KINDS[k][0] for k in jobs.kind], order=[PREPARE.index(k) for k in jobs.kind])
    return jobs.sort_values("order").drop(columns="order").reset_index(drop=True)


def _worker_pid(ws: Workspace) -> int | None:
    """The pid in the workspace's worker pid file if that process is alive."""
    try:
        pid = int((ws.path / "worker.pid").read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def worker_running(ws: Workspace) -> bool:
    """Whether a worker process is running on this workspace (its pid file names a live process)."""
    return _worker_pid(ws) is not None


def start_worker(ws: Workspace, log: Path | None = None) -> int:
    """Start ``python -m backend jobs worker`` for ``ws`` in the background (detached from the caller); returns its
    pid. Used by the app when no worker runs (``./dev.sh app`` starts one itself)."""
    import subprocess
    import sys

    ws.path.mkdir(parents=True, exist_ok=True)
    out = open(log or ws.path / "worker.log", "a")
    proc = subprocess.Popen([sys.executable, "-m", "backend", "--workspace", str(ws.path), "jobs", "worker"],
                            cwd=Path(__file__).resolve().parents[2], stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    (ws.path / "worker.pid").write_text(str(proc.pid))  # at once: a second click must see this worker
    return proc.pid


def ensure_job(ws: Workspace, kind: str, params: dict | None = None, same_params: bool = False) -> str:
    """What a page's button does: queue a job of ``kind`` unless one is queued or running already (with
    ``same_params``: one with these very parameters; others queue behind it), and start a worker if none runs.
    Returns the id of the active job."""
    jobs = list_jobs(ws)
    active = jobs[(jobs.kind == kind) & jobs.state.isin(["queued", "running"])]
    if same_params:
        want = json.dumps(params or {}, sort_keys=True)
        active = active[[json.dumps(json.loads(p), sort_keys=True) == want for p in active.params]]
    job_id = active.job_id.iloc[0] if len(active) else submit(ws, kind, params)
    if not worker_running(ws):
        start_worker(ws)
    return job_id


def _limit_threads() -> int:
    """Jobs compute with one core fewer than the machine has (``$VOXELSCOPE_JOB_THREADS`` overrides), so the app's
    own work keeps a core: two processes each spinning as many torch threads as there are cores ran a training
    step 40x slower on 2 cores."""
    n = int(os.environ.get("VOXELSCOPE_JOB_THREADS", max(1, (os.cpu_count() or 2) - 1)))
    import torch

    torch.set_num_threads(n)
    return n


def run_worker(ws: Workspace) -> None:
    """The worker: first puts back in the queue the jobs a killed worker left running (they resume from their
    checkpoints), then runs queued jobs one at a time until stopped (Ctrl-C, SIGTERM)."""
    other = _worker_pid(ws)
    if other is not None and other != os.getpid():
        raise InvalidInputError(f"a worker already runs on {ws.path} (pid {other}); one worker per workspace: it is "
                                "the workspace's one writer")
    _limit_threads()
    with _connect(ws) as con:
        stale = [r[0] for r in con.execute("SELECT job_id FROM jobs WHERE state = 'running'").fetchall()]
        con.execute("UPDATE jobs SET state = 'queued' WHERE state = 'running'")
    huey, task = _huey(ws)
    for job_id in stale:
        task(str(ws.path), job_id)
    pid_file = ws.path / "worker.pid"
    pid_file.write_text(str(os.getpid()))
    try:
        huey.create_consumer(workers=1, worker_type="thread").run()
    finally:
        if pid_file.exists() and pid_file.read_text() == str(os.getpid()):
            pid_file.unlink()

"""Background jobs: long work (world build, encoder fit, captions; later synthesis and reconstruction) queued by the
app or the command line and run by one worker process (huey on SQLite in the workspace folder).

``submit(ws, kind, params)``, ``list_jobs``, ``get_job``, ``cancel``, ``run_worker``; kinds in ``JOB_KINDS``.
"""
from .queue import (EXECUTOR_KINDS, JOB_KINDS, PREPARE, STATES, JobCancelled, cancel, ensure_job, get_job,
                    job_executor, list_jobs, prepare_demo, preparation, run_worker, set_job_executor, start_worker,
                    submit, worker_running)

__all__ = ["JOB_KINDS", "STATES", "PREPARE", "submit", "cancel", "list_jobs", "get_job", "run_worker", "JobCancelled",
           "prepare_demo", "preparation", "worker_running", "start_worker", "ensure_job", "job_executor",
           "set_job_executor", "EXECUTOR_KINDS"]

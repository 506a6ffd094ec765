"""``python -m backend jobs submit|list|cancel|worker``: background jobs."""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    from ..jobs import JOB_KINDS

    p = sub.add_parser("jobs", help="background jobs: queue, list, cancel, run the worker")
    jsub = p.add_subparsers(dest="jobs_cmd", required=True)
    s = jsub.add_parser("submit", help="queue a job")
    s.add_argument("kind", choices=list(JOB_KINDS))
    s.add_argument("--params", default="{}", help='JSON. world: {"tiny": true, "seed": 0}; encoders: {"subjects": [...], '
                   '"device": "cuda"}; captions: {"subjects": [...], "methods": [...], "voxels": [...], "batch": 256, '
                   '"bank_size": 50000, "device": "cpu"}')
    s.set_defaults(func=submit)
    ls = jsub.add_parser("list", help="every job with its state and progress")
    ls.set_defaults(func=list_)
    c = jsub.add_parser("cancel", help="cancel a queued or running job")
    c.add_argument("job_id")
    c.set_defaults(func=cancel)
    w = jsub.add_parser("worker", help="run queued jobs (resumes jobs a killed worker left running)")
    w.set_defaults(func=worker)
    pr = jsub.add_parser("prepare", help="queue the demo world's missing preparation steps (world, encoders, captions)")
    pr.add_argument("--tiny", action="store_true", help="a tiny world (for tests and quick looks)")
    pr.set_defaults(func=prepare)


def submit(ws, args) -> int:
    from ..errors import InvalidInputError
    from ..jobs import submit as submit_job

    try:
        params = json.loads(args.params)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"--params is not JSON: {exc}") from None
    print(submit_job(ws, args.kind, params))
    return 0


def list_(ws, args) -> int:
    from ..jobs import list_jobs

    jobs = list_jobs(ws)
    if jobs.empty:
        print("no jobs")
        return 0
    for j in jobs.itertuples():
        step = f"{j.stage}: {j.done:,.0f} / {j.total:,.0f}" if isinstance(j.stage, str) else ""
        eta = f", {j.eta_s:.0f} s left" if j.state == "running" and j.eta_s == j.eta_s and j.eta_s is not None else ""
        err = f" - {str(j.error).splitlines()[0]}" if isinstance(j.error, str) else ""
        print(f"{j.job_id}  {j.state:9s}  {step}{eta}{err}")
    return 0


def cancel(ws, args) -> int:
    from ..jobs import cancel as cancel_job

    print(f"{args.job_id}: {cancel_job(ws, args.job_id)}")
    return 0


def worker(ws, args) -> int:
    from ..jobs import run_worker

    print(f"worker on {ws.path} (Ctrl-C to stop)", flush=True)
    run_worker(ws)
    return 0


def prepare(ws, args) -> int:
    from ..jobs import prepare_demo

    queued = prepare_demo(ws, tiny=args.tiny)
    print("queued: " + ", ".join(queued) if queued else "nothing to prepare: the demo world is ready or being prepared")
    return 0

"""Many users at once: N concurrent browser sessions (one headless Chromium, one context each) on one app server,
each doing a realistic sequence: open the Cortex explorer, switch overlay, open a concept map, open a voxel card,
search the captions, open the attention maps. Prints the median and 95th-percentile time per action (from
navigation or input to the app going idle), errors (exceptions shown in the page), and the server's memory (RSS of
its process tree, from /proc) before and at its peak. Not a test.

    .venv/bin/python bench/many_users.py --workspace /tmp/full --sessions 20
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import CHROMIUM, CHROMIUM_ARGS, streamlit_server  # noqa: E402

IDLE = ("() => !document.querySelector('[data-testid=\"stStatusWidget\"]') && "
        "document.querySelectorAll('[data-testid=\"stMain\"] *').length > 20")


def tree_rss_mb(port: int) -> float:
    """RSS of the process listening on ``port`` and its children (MB), from /proc."""
    out = subprocess.run(["pgrep", "-f", "--", f"--server.port {port}"], capture_output=True, text=True).stdout.split()
    pids = set(out)
    for p in list(pids):
        pids |= set(subprocess.run(["pgrep", "-P", p], capture_output=True, text=True).stdout.split())
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


async def session(browser, url: str, k: int, times: dict, errors: list) -> None:
    ctx = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await ctx.new_page()

    async def timed(name, action):
        t = time.perf_counter()
        try:
            await action()
            await page.wait_for_selector("[data-testid='stApp']", timeout=240_000)
            await page.wait_for_function(IDLE, timeout=240_000)
            times.setdefault(name, []).append(time.perf_counter() - t)
            if await page.locator("[data-testid='stException']").count():
                errors.append(f"session {k}, {name}: an exception in the page")
        except Exception as exc:  # noqa: BLE001 - a bench reports, it does not stop
            errors.append(f"session {k}, {name}: {type(exc).__name__}: {str(exc)[:120]}")

    def go(path: str):  # 20 sessions on 2 cores: a navigation can wait minutes for the server
        return page.goto(url + path, timeout=240_000, wait_until="commit")

    vertex = 1000 + 37 * k
    await timed("explorer (ROIs)", lambda: go("/explorer?subject=subj01&overlay=rois"))
    await timed("overlay change", lambda: go("/explorer?subject=subj01&overlay=r2_nc"))
    await timed("concept map", lambda: go("/explorer?subject=subj01&q=faces"))
    await timed("voxel card", lambda: go(f"/explorer?subject=subj01&vertex=lh:{vertex}"))

    async def search():
        await go("/captions")
        await page.wait_for_function(IDLE, timeout=240_000)
        box = page.get_by_role("textbox").first
        await box.fill("a face" if k % 2 else "food", timeout=240_000)
        await box.press("Enter")
        await page.wait_for_timeout(300)

    await timed("caption search", search)
    await timed("attention map", lambda: go("/attention"))
    await ctx.close()


async def run(url: str, n: int, port: int) -> tuple[dict, list, float]:
    from playwright.async_api import async_playwright

    times: dict = {}
    errors: list = []
    peak = [0.0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], tree_rss_mb(port))
            time.sleep(0.5)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    with tempfile.TemporaryDirectory():
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            await asyncio.gather(*(session(browser, url, k, times, errors) for k in range(n)))
            await browser.close()
    stop.set()
    th.join()
    return times, errors, peak[0]


def main() -> None:
    a = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--workspace", required=True)
    a.add_argument("--sessions", type=int, default=20)
    args = a.parse_args()
    with streamlit_server(Path(args.workspace), timeout=120) as url:
        port = int(url.rsplit(":", 1)[1])
        before = tree_rss_mb(port)
        t0 = time.perf_counter()
        times, errors, peak = asyncio.run(run(url, args.sessions, port))
        wall = time.perf_counter() - t0
        time.sleep(5)
        after = tree_rss_mb(port)
    print(f"\n{args.sessions} concurrent sessions, {wall:.0f} s in all; server RSS {before:.0f} MB before, "
          f"{peak:.0f} MB at peak, {after:.0f} MB after the sessions closed (MALLOC_ARENA_MAX="
          f"{os.environ.get('MALLOC_ARENA_MAX', 'unset')})")
    print("| action | n | median (s) | 95th percentile (s) |")
    print("|---|---|---|---|")
    for name, ts in times.items():
        ts = sorted(ts)
        p95 = ts[min(len(ts) - 1, int(round(0.95 * (len(ts) - 1))))]
        print(f"| {name} | {len(ts)} | {statistics.median(ts):.1f} | {p95:.1f} |")
    print(f"errors: {len(errors)}")
    for e in errors[:20]:
        print("  ", e)


if __name__ == "__main__":
    main()

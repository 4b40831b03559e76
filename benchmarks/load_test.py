"""Load test: many browser sessions run ensembles at once through the shared, bounded job queue.

Starts its own ``panel serve app.py`` on a free 127.0.0.1 port (3-day synthetic dataset in a
temporary ``PPVIZ_DATA_DIR``, one tiny untrained diffusion checkpoint via ``PPVIZ_CHECKPOINTS`` /
``PPVIZ_DEFAULT_DIFFUSION``, ``PPVIZ_MAX_JOBS=--max-jobs``), then opens ``--sessions`` real
browser sessions (one headless Debian Chromium, one context each) on the Downscale page with a
small region, and clicks **Run ensemble** in all of them within about a second. Each session uses
its own seed, so no two requests share a run or hit the result cache.

Per session it records the queue position the page showed (``Queued: position N in line``; the
job that starts at once shows ``Running`` instead), the latency from the click to the finished
ensemble on the page (``... computed in X s`` in the status line), and errors: page errors,
console errors, ``Failed.``/``Cancelled.`` in the job text, danger alerts. A thread samples the
server's RSS (process and children, psutil) every 0.1 s; the peak, and the kernel's high-water
mark (VmHWM) of the server process, are compared with ``--memory-bound-mb``.

FIFO criterion (server side, exact). The page shows no job ids, and under this load its
``Queued: position N`` texts reach the browser late or not at all (all text updates of a busy
page arrive in bursts), so the browser cannot order the jobs reliably. The server is therefore
started through ``benchmarks/queue_probe.py``, which is ``panel serve`` with
``ppviz.jobs.JobQueue.submit`` and ``Job._finish`` wrapped to log each job (id, label with the
session's seed, created/started/finished) to a JSON-lines file; nothing else changes. The check:
exactly one job per session, jobs *started* in submit order, and with one worker (``--max-jobs
1``) each started only after the previous one finished (never two at once). The page's positions
are printed as seen, for information.

Run from the repository root::

    .venv/bin/python benchmarks/load_test.py [--sessions 8] [--members 2] [--steps 6] \
        [--region sample] [--max-jobs 1] [--timeout 240] [--memory-bound-mb 2000]

Exits with status 1 if a check fails (a session did not finish, errors, FIFO, memory).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ppviz.serve_probe import liveness_url, wait_for_liveness  # noqa: E402 - after the path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--no-first-run"]
T0 = "2021-01-02T06:00"
SEED0 = 1000
# In-page recorder: finds the job-progress text (inside Bokeh's shadow DOMs) and logs its changes
# with Date.now(), every 50 ms, so the order of "Done in" across pages can be compared.
RECORDER_JS = r"""() => {
  const pat = /^(Queued: position|Running|Done in|Failed\.|Cancelled\.|Result from the cache)/;
  const rec = {log: [], host: null, last: null};
  window.__ppvizJob = rec;
  const find = () => {  // the innermost element (in any shadow root) holding the job text
    const stack = [document];
    while (stack.length) {
      const root = stack.pop();
      for (const el of root.querySelectorAll('*')) {
        if (el.shadowRoot) stack.push(el.shadowRoot);
        else if (el.children.length === 0 && pat.test((el.textContent || '').trim())) return el;
      }
    }
    return null;
  };
  const tick = () => {
    if (!rec.host || !rec.host.isConnected) rec.host = find();
    if (!rec.host) return;
    const t = (rec.host.textContent || '').trim();
    if (t !== rec.last) { rec.last = t; rec.log.push([Date.now(), t]); }
  };
  tick();
  rec.timer = setInterval(tick, 50);
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_tiny_checkpoint(root: Path, name: str = "tiny-diffusion") -> None:
    """An untrained tiny downscaler (:mod:`ppviz.diffusion.tiny`): a run takes about a second."""
    from ppviz.diffusion.tiny import save_tiny_diffusion

    save_tiny_diffusion(root, name, summary="tiny untrained U-Net (load test)")


def start_server(tmp: Path, max_jobs: int, timeout: float = 180) -> tuple[subprocess.Popen, str, Path]:
    (tmp / "ckpt").mkdir(parents=True, exist_ok=True)
    make_tiny_checkpoint(tmp / "ckpt")
    env = dict(os.environ, PPVIZ_DATA_DIR=str(tmp / "data"), PPVIZ_SYNTH_DAYS="3", PPVIZ_CHECKPOINTS=str(tmp / "ckpt"),
               PPVIZ_DEFAULT_DIFFUSION="tiny-diffusion", PPVIZ_MAX_JOBS=str(max_jobs), PPVIZ_DEVICE="cpu",
               # the burst of Run clicks is what is measured: no run on open, no warm-up at start
               PPVIZ_RUN_ON_OPEN="0", PPVIZ_WARM="0",
               PPVIZ_QUEUE_LOG=str(tmp / "queue.jsonl"), BOKEH_RESOURCES="server")
    ne = REPO.parent / "shared" / "natural-earth"
    if ne.is_dir():
        env.setdefault("PPVIZ_NATURAL_EARTH", str(ne))
    port = free_port()
    log_path = tmp / "panel-serve.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "benchmarks" / "queue_probe.py"), "serve", str(REPO / "app.py"), "--port", str(port), "--address", "127.0.0.1",
         "--allow-websocket-origin", f"127.0.0.1:{port}", "--liveness"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    try:
        wait_for_liveness(proc, liveness_url(port), timeout=timeout, log=log_path, interval=0.3)
    except RuntimeError:
        stop_server(proc)
        raise
    return proc, f"http://127.0.0.1:{port}/app", log_path


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class MemorySampler(threading.Thread):
    """Peak RSS of a process plus its children (psutil; /proc VmRSS as a fallback), every ``period`` s."""

    def __init__(self, pid: int, period: float = 0.1):
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.peak = 0
        self._halt = threading.Event()

    @staticmethod
    def _proc_kb(pid: int, field: str) -> int:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return 0

    def sample(self) -> int:
        try:
            import psutil

            p = psutil.Process(self.pid)
            procs = [p] + p.children(recursive=True)
            total = 0
            for q in procs:
                try:
                    total += q.memory_info().rss
                except psutil.Error:
                    pass
            return total
        except ImportError:
            return self._proc_kb(self.pid, "VmRSS") * 1024
        except Exception:  # noqa: BLE001 - the process is gone
            return 0

    def hwm(self) -> int:
        """Kernel high-water mark (VmHWM) of the server process, bytes."""
        return self._proc_kb(self.pid, "VmHWM") * 1024

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak = max(self.peak, self.sample())
            self._halt.wait(self.period)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def _console(rec: dict, msg) -> None:
    """Console errors count, except resources on other hosts: the test runs offline on loopback."""
    if msg.type != "error":
        return
    where = (msg.location or {}).get("url", "")
    if "ERR_NAME_NOT_RESOLVED" in msg.text or "ERR_INTERNET_DISCONNECTED" in msg.text:
        rec["offline"].append(where)
        return
    rec["errors"].append(f"console: {msg.text} ({where})")


async def _session(browser, i: int, url: str, args, t_deadline: float) -> dict:
    """Open session ``i`` on the Downscale page, ready to run (returns its record with the page)."""
    from playwright.async_api import expect

    rec = {"session": i, "seed": SEED0 + i, "errors": [], "offline": [], "positions": [], "log": []}
    ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await ctx.new_page()
    page.set_default_timeout(max(1.0, t_deadline - time.time()) * 1000)
    page.on("pageerror", lambda e: rec["errors"].append(f"pageerror: {e}"))
    page.on("console", lambda m: _console(rec, m))
    rec["ctx"], rec["page"] = ctx, page
    query = f"time={T0}&region={args.region}&members={args.members}&steps={args.steps}&seed={SEED0 + i}&page=0"
    await page.goto(f"{url}?{query}")
    await expect(page.get_by_text("no ensemble for these settings yet").first).to_be_visible(
        timeout=max(1.0, t_deadline - time.time()) * 1000)
    return rec


async def _run(args, url: str) -> list[dict]:
    from playwright.async_api import async_playwright, expect

    t_deadline = time.time() + args.timeout
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            t0 = time.time()
            recs = await asyncio.gather(*(_session(browser, i, url, args, t_deadline) for i in range(args.sessions)))
            print(f"{len(recs)} pages open and ready in {time.time() - t0:.1f} s", flush=True)
            for rec in recs:
                await rec["page"].evaluate(RECORDER_JS)

            async def click(rec):  # all sessions at once
                rec["t_click"] = time.time()
                await rec["page"].get_by_role("button", name="Run ensemble").click()

            await asyncio.gather(*(click(r) for r in recs))

            async def finish(rec):
                page = rec["page"]
                done = page.get_by_text(re.compile(r"computed in [\d.]+ s")).first
                failed = page.get_by_text(re.compile(r"^(Failed\.|Cancelled\.)$")).first
                try:
                    await expect(done.or_(failed)).to_be_visible(timeout=max(1.0, t_deadline - time.time()) * 1000)
                    rec["t_done"] = time.time()
                    if await failed.is_visible():
                        rec["errors"].append("job text: " + (await failed.inner_text()))
                        rec.pop("t_done")
                    else:
                        status = await done.inner_text()
                        if "tiny-diffusion" not in status:
                            rec["errors"].append(f"unexpected checkpoint in status: {status!r}")
                except Exception as exc:  # noqa: BLE001 - timeout: recorded, not raised
                    rec["errors"].append(f"not finished: {type(exc).__name__}: {str(exc).splitlines()[0]}")
                rec["log"] = await page.evaluate("() => window.__ppvizJob.log")
                alerts = await page.locator(".alert-danger").all_inner_texts()
                rec["errors"] += [f"alert: {a.strip()}" for a in alerts if a.strip()]

            await asyncio.gather(*(finish(r) for r in recs))
            for rec in recs:
                await rec.pop("ctx").close()
                rec.pop("page")
        finally:
            await browser.close()
    for rec in recs:
        for _, text in rec["log"]:
            m = re.match(r"Queued: position (\d+)", text)
            if m and (not rec["positions"] or rec["positions"][-1] != int(m.group(1))):
                rec["positions"].append(int(m.group(1)))
        rec["first_position"] = rec["positions"][0] if rec["positions"] else (
            0 if rec["log"] and rec["log"][0][1].startswith("Running") else None)
        rec["t_running"] = next((t / 1000 for t, s in rec["log"] if s.startswith(("Running", "Done in"))), None)
        rec["t_jobdone"] = next((t / 1000 for t, s in rec["log"] if s.startswith("Done in")), None)
        rec["latency"] = rec["t_done"] - rec["t_click"] if "t_done" in rec else None
    return recs


def read_queue_log(path: Path) -> list[dict]:
    """Finished jobs from queue_probe's log, in submit order, each with its session's seed."""
    import json

    if not path.exists():
        return []
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    order = [x["id"] for x in lines if x["event"] == "submit"]
    done = {x["id"]: x for x in lines if x["event"] == "finish"}
    out = []
    for k, jid in enumerate(order):
        j = dict(done.get(jid, {"id": jid, "status": "unfinished", "started": None, "finished": None}), submit_rank=k)
        m = re.search(r"seed (\d+)", j.get("label", "") or next(x["label"] for x in lines if x["id"] == jid))
        j["seed"] = int(m.group(1)) if m else None
        out.append(j)
    return out


def check_fifo(jobs: list[dict], n_sessions: int, max_jobs: int) -> tuple[bool, str]:
    """Server side (queue_probe log): one job per session, started in submit order; with one
    worker also no overlap (each starts after the previous one finished)."""
    if len(jobs) != n_sessions or any(j["started"] is None for j in jobs):
        return False, f"{len(jobs)} jobs submitted for {n_sessions} sessions, {sum(j['started'] is None for j in jobs)} never started"
    starts = [j["started"] for j in jobs]
    in_order = all(a <= b for a, b in zip(starts, starts[1:]))
    why = f"start order == submit order: {in_order}"
    ok = in_order
    if max_jobs == 1:
        serial = all(b["started"] >= a["finished"] for a, b in zip(jobs, jobs[1:]))
        why += f"; one at a time (each starts after the previous finished): {serial}"
        ok = ok and serial
    seeds = [j["seed"] - SEED0 for j in jobs]
    return ok, why + f"; sessions in submit order {seeds}"


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=8)
    p.add_argument("--members", type=int, default=2)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--region", default="sample")
    p.add_argument("--max-jobs", type=int, default=1)
    p.add_argument("--timeout", type=float, default=240, help="seconds for the browser part, all sessions")
    p.add_argument("--memory-bound-mb", type=float, default=2000)
    p.add_argument("--chromium", default=os.environ.get("PPVIZ_CHROMIUM") or shutil.which("chromium")
                   or "/usr/bin/chromium")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    """Run the load test; prints the report and returns it (``result["ok"]``: every check passed)."""
    args = parse_args(argv)
    cmd = ".venv/bin/python benchmarks/load_test.py " + " ".join(shlex.quote(a) for a in (argv or []))
    tmp = Path(tempfile.mkdtemp(prefix="ppviz-load-"))
    proc = sampler = None
    t_start = time.time()
    try:
        proc, url, log_path = start_server(tmp, args.max_jobs)
        t_server = time.time() - t_start
        sampler = MemorySampler(proc.pid)
        sampler.start()
        box: dict = {}

        def runner():  # a fresh thread: no running asyncio loop (e.g. under pytest-playwright)
            try:
                box["recs"] = asyncio.run(_run(args, url))
            except BaseException as exc:  # noqa: BLE001
                box["exc"] = exc

        th = threading.Thread(target=runner, daemon=True)
        th.start()
        th.join(args.timeout + 120)
        if th.is_alive():
            raise RuntimeError("the browser part did not end in time")
        if "exc" in box:
            raise box["exc"]
        recs = box["recs"]
        jobs = read_queue_log(tmp / "queue.jsonl")
        sampler.stop()
        peak_mb = max(sampler.peak, sampler.hwm()) / 2**20
        sampled_mb, hwm_mb = sampler.peak / 2**20, sampler.hwm() / 2**20
    finally:
        try:
            if sampler is not None:
                sampler.stop()
        finally:
            if proc is not None:
                stop_server(proc)
            shutil.rmtree(tmp, ignore_errors=True)

    lat = [r["latency"] for r in recs if r["latency"] is not None]
    completed = len(lat)
    fifo_ok, fifo_why = check_fifo(jobs, args.sessions, args.max_jobs)
    by_seed = {j["seed"]: j for j in jobs}
    for r in recs:
        j = by_seed.get(r["seed"])
        if j is None:
            r["errors"].append("no job on the server")
        elif j["status"] != "done":
            r["errors"].append(f"job {j['status']}: {j.get('error')}")
    n_err = sum(bool(r["errors"]) for r in recs)
    mem_ok = peak_mb <= args.memory_bound_mb
    ok = completed == args.sessions and n_err == 0 and fifo_ok and mem_ok
    print(f"load test: {args.sessions} browser sessions, region {args.region}, {args.members} members x {args.steps} "
          f"steps, tiny untrained checkpoint, PPVIZ_MAX_JOBS={args.max_jobs}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    clicks = [r["t_click"] for r in recs]
    print(f"server up in {t_server:.1f} s; {len(recs)} clicks sent within {max(clicks) - min(clicks):.2f} s")
    print(" session  seed  submit#  queue positions seen   job run s  click->done s  errors")
    for r in recs:
        j = by_seed.get(r["seed"], {})
        run_s = j["finished"] - j["started"] if j.get("finished") and j.get("started") else float("nan")
        rank = str(j["submit_rank"] + 1) if j else "-"
        pos = ",".join(map(str, r["positions"])) or ("running" if r["first_position"] == 0 else "none seen")
        latency = f"{r['latency']:.2f}" if r["latency"] is not None else "-"
        print(f" {r['session']:7d}  {r['seed']:4d}  {rank:>7s}  {pos:21s}  {run_s:9.2f}  {latency:>13s}  "
              f"{'; '.join(r['errors'])[:200] or '0'}")
    offline = sorted({u for r in recs for u in r["offline"]})
    if offline:
        print(f"not counted as errors (other hosts, offline): {len(offline)} resource(s), e.g. {offline[0]}")
    print(f"sessions: {args.sessions}  completed: {completed}  sessions with errors: {n_err}")
    print(f"latency click->done: p50 {pct(lat, 0.5):.2f} s  p95 {pct(lat, 0.95):.2f} s  max {max(lat, default=0):.2f} s")
    print(f"peak server memory: {peak_mb:.0f} MB (sampled RSS incl. children {sampled_mb:.0f} MB, VmHWM {hwm_mb:.0f} MB)"
          f" vs bound {args.memory_bound_mb:.0f} MB -> {'ok' if mem_ok else 'OVER'}")
    print(f"FIFO ok: {fifo_ok} ({fifo_why})")
    print(f"command: {cmd.strip()}")
    print("RESULT:", "PASS" if ok else "FAIL")
    return {"ok": ok, "sessions": args.sessions, "completed": completed, "errors": n_err, "fifo_ok": fifo_ok,
            "mem_ok": mem_ok, "peak_mb": peak_mb, "p50": pct(lat, 0.5), "p95": pct(lat, 0.95), "records": recs}


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv[1:])["ok"] else 1)

"""Occupancy: how many requests finephrase keeps in flight when some answers are stragglers, against a long-tail
stand-in server (benchmarks/tail_server.py: not a model, only drawn latencies), and the wall time that costs.

    python benchmarks/occupancy.py                # 40,000 documents, concurrency 2,048, chunks of 2,000, 3 repeats
    python benchmarks/occupancy.py --repeats 1    # one pass of each configuration (~5 minutes before the fix)
    python benchmarks/occupancy.py --quick        # 3,000 documents, concurrency 256, chunks of 250, latencies / 10

Two configurations, side by side in one run (alternating: uniform, tail, uniform, tail, ...), each against a fresh
server with the same seed:
- `uniform`: every answer after a latency uniform in 2..5 s (quick 0.2..0.5 s), no tail;
- `tail`: the same, but 2% of the answers (`--tail-share`) take 40 s (`--tail-seconds`; quick 4 s).

Each run is the real CLI as its own process: `finephrase rephrase IN --prompt faq --backend endpoint
--endpoint-url URL --model tail --max-concurrency 2048 --chunk-size 2000 --max-tokens 64 --context-length 4096`,
on short documents (the bundled sample's texts cut to 1,000 characters, cycled, parquet). Measured:
- requests in flight, sampled by the server every second (quick: every 0.1 s) to its timeline; the mean over the
  middle 80% of the sending span (first completion received to the last one received: while documents are left
  to send, a client can keep every slot busy; after that only the drain is left, up to one straggler's latency,
  which the wall allowance covers) ÷ `--max-concurrency`; beside it the mean over the middle 80% of the whole
  serving span (to the last answer), for reference;
- wall time of the finephrase process (spawn to exit, start-up included) ÷ Little's law's ideal, which is the sum
  of the latencies the server actually drew ÷ the concurrency (the time the work takes with every slot always
  busy); the allowance is 1.15 × ideal + the longest latency drawn (one straggler that nothing can hide);
- peak RSS of the finephrase process (`ru_maxrss` via a small wrapper process, as in memory.py), in MB (10^6
  bytes);
- the documents committed (from the ledger): all of them, else the run failed.

Targets (for the `tail` configuration; `uniform` is the reference): mean in flight ≥ 90% of the concurrency, wall
≤ 1.15 × ideal + one straggler, peak RSS ≤ 1 GB. A missed target prints FAIL and is recorded; the exit status is
non-zero only when a run itself failed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    TailServer,
    base_parser,
    env_for_children,
    finephrase_cmd,
    fmt,
    ledger_committed_docs,
    machine,
    machine_line,
    make_rows,
    median,
    resolve_repeats,
    table,
    write_input,
    write_results,
)
from memory import _WRAPPER  # noqa: E402  (runs a command, reports its exit code, ru_maxrss and wall time)

NAME = "occupancy"
TARGET_IN_FLIGHT = 0.90  # mean in flight ÷ concurrency, tail configuration
TARGET_WALL = 1.15  # wall ≤ TARGET_WALL × ideal + the longest latency drawn
TARGET_RSS_MB = 1000.0  # 1 GB
MIDDLE = 0.8  # the share of the serving span the in-flight mean is taken over


def run_measured(cmd: list, log_path: Path, timeout: float) -> dict:
    """cmd through memory.py's wrapper, in its own process group (killed whole on timeout): exit code, peak RSS
    (KiB -> MB), wall time, and the wall-clock start and end."""
    r_fd, w_fd = os.pipe()
    t_start = time.time()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", _WRAPPER, str(w_fd), *map(str, cmd)], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env_for_children(),
                                pass_fds=(w_fd,), start_new_session=True)
        os.close(w_fd)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            os.close(r_fd)
            raise RuntimeError(f"{' '.join(map(str, cmd[:5]))} ... ran past {timeout:.0f}s (killed); log: "
                               f"{log_path.read_text(errors='replace')[-2000:]}")
    t_end = time.time()
    with os.fdopen(r_fd, "rb") as f:
        report = f.read().decode().split()
    if proc.returncode != 0 or len(report) != 3 or report[0] != "0":
        raise RuntimeError(f"{' '.join(map(str, cmd[:5]))} ... failed ({proc.returncode}, {report}):\n"
                           f"{log_path.read_text(errors='replace')[-3000:]}")
    return {"peak_rss_mb": int(report[1]) * 1024 / 1e6, "wall_s": float(report[2]), "t_start": t_start,
            "t_end": t_end}


def read_timeline(path: Path) -> list[dict]:
    out = []
    for line in path.read_bytes().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:  # a torn last line
            pass
    return out


def _middle_mean(timeline: list[dict], start: float, end: float) -> tuple[float | None, int | None, int]:
    """Mean and minimum of the in-flight samples over the middle MIDDLE share of [start, end], and their count."""
    lo, hi = start + (1 - MIDDLE) / 2 * (end - start), end - (1 - MIDDLE) / 2 * (end - start)
    xs = [s["in_flight"] for s in timeline if lo <= s["t"] <= hi]
    return (sum(xs) / len(xs) if xs else None), (min(xs) if xs else None), len(xs)


def summarize(timeline: list[dict], concurrency: int) -> dict:
    """The server's view: in flight over the middle of the sending span, and the latencies drawn.

    The sending span runs from the first completion received to the last one received: while documents are left to
    send, a client can keep every slot busy. After the last request only the drain is left (in flight can only
    fall, for up to one straggler's latency, which the wall allowance counts), so it is not averaged in; the mean
    over the middle of the whole serving span (to the last answer) is reported beside it."""
    last = timeline[-1]
    first_t, sent_t, last_t = last["first"], last["last_received"], last["last"]
    if first_t is None or last_t is None:
        raise RuntimeError("the server answered no completion")
    mean, low, n = _middle_mean(timeline, first_t, sent_t)
    mean_serving, _, _ = _middle_mean(timeline, first_t, last_t)
    return {"sending_span_s": sent_t - first_t, "serving_span_s": last_t - first_t, "samples_middle": n,
            "mean_in_flight": mean, "min_in_flight_middle": low,
            "in_flight_ratio": mean / concurrency if mean is not None else None,
            "mean_in_flight_serving_span": mean_serving,
            "ideal_s": last["latency_sum"] / concurrency, "latency_sum_s": last["latency_sum"],
            "latency_max_s": last["latency_max"], "requests": last["received"], "answered": last["answered"],
            "abandoned": last["abandoned"], "tails": last["tails"]}


def one_run(cfg: dict, inp: Path, work: Path, tag: str, args) -> dict:
    tl = work / f"timeline-{tag}.jsonl"
    out = work / f"out-{tag}"
    tl.unlink(missing_ok=True)
    with TailServer(tl, tail_share=cfg["tail_share"], tail_seconds=cfg["tail_seconds"], low=cfg["low"],
                    high=cfg["high"], seed=args.seed, interval=cfg["interval"]) as server:
        cmd = finephrase_cmd("rephrase", inp, "--prompt", "faq", "--backend", "endpoint", "--endpoint-url",
                             f"{server.url}/v1", "--model", "tail", "--output", out,
                             "--max-concurrency", args.concurrency, "--chunk-size", args.chunk_size,
                             "--max-tokens", 64, "--context-length", 4096, "--seed", args.seed,
                             "--progress-interval", 3600)
        r = run_measured(cmd, work / f"finephrase-{tag}.log", args.timeout)
        time.sleep(min(1.0, 2 * cfg["interval"]))  # one more sample after the last answer
    r.update(summarize(read_timeline(tl), args.concurrency))  # the server wrote its last line when stopped
    r["documents_out"] = ledger_committed_docs(out)
    if r["documents_out"] != args.docs:
        raise RuntimeError(f"{tag}: {r['documents_out']:,} of {args.docs:,} documents committed")
    r["wall_over_ideal"] = r["wall_s"] / r["ideal_s"]
    r["wall_allowance_s"] = TARGET_WALL * r["ideal_s"] + r["latency_max_s"]
    r["wall_ok"] = r["wall_s"] <= r["wall_allowance_s"]
    r["timeline"] = [[round(s["t"] - r["t_start"], 2), s["in_flight"]] for s in read_timeline(tl)]
    if not args.workdir:
        shutil.rmtree(out, ignore_errors=True)
    return r


def main(argv=None):
    p = base_parser(NAME, "requests in flight, wall ÷ Little's-law ideal and peak RSS against a long-tail stand-in "
                    "server (uniform vs 2% stragglers)")
    p.add_argument("--docs", type=int, default=None, help="documents (40,000; quick 3,000)")
    p.add_argument("--concurrency", type=int, default=None, help="--max-concurrency (2,048; quick 256)")
    p.add_argument("--chunk-size", type=int, default=None, help="documents per committed chunk (2,000; quick 250)")
    p.add_argument("--tail-share", type=float, default=0.02, help="share of stragglers in the tail configuration "
                   "(0.02)")
    p.add_argument("--tail-seconds", type=float, default=None, help="a straggler's latency (40 s; quick 4 s)")
    p.add_argument("--low", type=float, default=None, help="other answers: latency at least (2 s; quick 0.2 s)")
    p.add_argument("--high", type=float, default=None, help="... and at most (5 s; quick 0.5 s)")
    p.add_argument("--max-chars", type=int, default=1000, help="documents cut to this many characters (1,000)")
    p.add_argument("--configs", default="uniform,tail", help="which configurations, comma separated (uniform,tail)")
    p.add_argument("--seed", type=int, default=0, help="seed of the server's latency draws and of the requests (0)")
    p.add_argument("--timeout", type=float, default=None, help="seconds one finephrase run may take (1,800; quick "
                   "300)")
    args = p.parse_args(argv)
    resolve_repeats(args)
    q = args.quick
    args.docs = args.docs or (3_000 if q else 40_000)
    args.concurrency = args.concurrency or (256 if q else 2048)
    args.chunk_size = args.chunk_size or (250 if q else 2000)
    scale = 0.1 if q else 1.0  # quick: every latency ÷ 10
    low = args.low if args.low is not None else 2.0 * scale
    high = args.high if args.high is not None else 5.0 * scale
    tail_s = args.tail_seconds if args.tail_seconds is not None else 40.0 * scale
    args.timeout = args.timeout or (300 if q else 1800)
    interval = 0.1 if q else 1.0
    all_cfgs = {"uniform": {"tail_share": 0.0, "tail_seconds": tail_s, "low": low, "high": high, "interval": interval},
                "tail": {"tail_share": args.tail_share, "tail_seconds": tail_s, "low": low, "high": high,
                         "interval": interval}}
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    if not names or any(n not in all_cfgs for n in names):
        p.error(f"--configs takes some of {', '.join(all_cfgs)}")
    cfgs = {n: all_cfgs[n] for n in names}

    print(machine_line(machine()))
    print(f"{args.docs:,} documents (parquet, ≤ {args.max_chars:,} characters), concurrency {args.concurrency:,}, "
          f"chunks of {args.chunk_size:,}, repeats {args.repeats}; latencies uniform {low:g}..{high:g} s, tail "
          f"{args.tail_share:.0%} × {tail_s:g} s; in flight sampled every {interval:g} s")
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="fp-bench-occupancy-"))
    work.mkdir(parents=True, exist_ok=True)
    runs = {n: [] for n in cfgs}
    failed = None
    try:
        inp = write_input(work / "in" / "docs.parquet", make_rows(args.docs, args.max_chars), "parquet")
        for rep in range(args.repeats):
            for n, cfg in cfgs.items():
                r = one_run(cfg, inp, work, f"{n}-{rep}", args)
                runs[n].append(r)
                print(f"  run {rep + 1} {n:>7}: wall {r['wall_s']:.1f}s (ideal {r['ideal_s']:.1f}s), mean in "
                      f"flight {fmt(r['mean_in_flight'], 0)} of {args.concurrency:,}, peak RSS "
                      f"{r['peak_rss_mb']:.0f} MB, {r['tails']:,} stragglers", flush=True)
    except RuntimeError as e:
        failed = str(e)
        print(f"FAILED: {failed}")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)

    def med(n, k):
        return median([r[k] for r in runs[n]])

    summary = {}
    rows = []
    for n, cfg in cfgs.items():
        if not runs[n]:
            continue
        s = {k: med(n, k) for k in ("wall_s", "sending_span_s", "serving_span_s", "ideal_s", "mean_in_flight",
                                    "in_flight_ratio", "mean_in_flight_serving_span", "wall_over_ideal",
                                    "wall_allowance_s", "peak_rss_mb", "latency_max_s")}
        s["wall_ok"] = s["wall_s"] <= s["wall_allowance_s"]
        s["tails"] = runs[n][0]["tails"]
        summary[n] = s
        tail = f"{cfg['tail_share']:.0%} × {cfg['tail_seconds']:g}s" if cfg["tail_share"] else "none"
        rows.append([n, tail, fmt(s["wall_s"], 1), fmt(s["sending_span_s"], 1), fmt(s["serving_span_s"], 1),
                     fmt(s["ideal_s"], 1), fmt(s["wall_over_ideal"], 2), fmt(s["wall_allowance_s"], 1),
                     fmt(s["mean_in_flight"], 0),
                     f"{s['in_flight_ratio']:.1%}" if s["in_flight_ratio"] is not None else "-",
                     fmt(s["mean_in_flight_serving_span"], 0), fmt(s["peak_rss_mb"], 0)])
    if rows:
        print(table(["config", "tail", "wall s", "sending s", "serving s", "ideal s", "wall ÷ ideal", "allowed s",
                     "mean in flight", "÷ target", "(to last answer)", "peak RSS MB"], rows))
    verdicts = {}
    if "tail" in summary:
        t = summary["tail"]
        verdicts["in_flight"] = t["in_flight_ratio"] is not None and t["in_flight_ratio"] >= TARGET_IN_FLIGHT
        verdicts["wall"] = t["wall_ok"]
    if summary:
        verdicts["peak_rss"] = max(s["peak_rss_mb"] for s in summary.values()) <= TARGET_RSS_MB
    if "uniform" in summary and "tail" in summary:
        u, t = summary["uniform"], summary["tail"]
        print(f"tail ÷ uniform: mean in flight {t['mean_in_flight'] / u['mean_in_flight']:.2f}, wall "
              f"{t['wall_s'] / u['wall_s']:.2f} (ideal {t['ideal_s'] / u['ideal_s']:.2f})")
    pf = lambda ok: "PASS" if ok else "FAIL"  # noqa: E731
    if "in_flight" in verdicts:
        t = summary["tail"]
        print(f"{pf(verdicts['in_flight'])}  mean in flight (middle {MIDDLE:.0%} of sending) ÷ concurrency, tail: "
              f"{t['in_flight_ratio']:.1%} (target ≥ {TARGET_IN_FLIGHT:.0%})")
        print(f"{pf(verdicts['wall'])}  wall, tail: {t['wall_s']:.1f}s = {t['wall_over_ideal']:.2f} × ideal "
              f"{t['ideal_s']:.1f}s (target ≤ {TARGET_WALL} × ideal + {t['latency_max_s']:g}s = "
              f"{t['wall_allowance_s']:.1f}s)")
    if "peak_rss" in verdicts:
        print(f"{pf(verdicts['peak_rss'])}  peak RSS at {args.concurrency:,} in flight: "
              f"{max(s['peak_rss_mb'] for s in summary.values()):.0f} MB (target ≤ {TARGET_RSS_MB:.0f} MB)")
    if q and verdicts:
        print("(quick: scaled down; start-up weighs against a few seconds of ideal time: not the targets' setting)")
    write_results(NAME, args, {
        "documents": args.docs, "concurrency": args.concurrency, "chunk_size": args.chunk_size,
        "max_chars": args.max_chars, "seed": args.seed, "configs": cfgs, "middle_share": MIDDLE,
        "targets": {"in_flight_ratio_min": TARGET_IN_FLIGHT, "wall_factor": TARGET_WALL,
                    "peak_rss_mb_max": TARGET_RSS_MB, "verdicts": verdicts},
        "summary": summary, "runs": runs, "failed": failed,
    })
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()

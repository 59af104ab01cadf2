"""Client-side overhead: documents/s through `finephrase rephrase` against a zero-latency server, beside
datatrove's InferenceRunner (with its checkpointing) on the same input and the same server, and the raw ceilings.

    python benchmarks/overhead.py                 # 20,000 documents, jsonl and parquet, 3 repeats
    python benchmarks/overhead.py --quick         # 200 documents, parquet only, 1 repeat

Every variant runs as its own process, one after the other, against one zero-latency server
(benchmarks/zero_server.py); wall time is measured from spawning the process to its exit, so interpreter
start-up, imports and the server check count, as they do for a user. Variants:

- finephrase: the real CLI, `finephrase rephrase IN --prompt faq --backend endpoint --endpoint-url URL
  --max-concurrency C --chunk-size K`, everything on (reading, selection, prompting, requests, parsing, the
  quality gate, parquet writing, fsynced exactly-once commits, the manifest);
- datatrove: datatrove 0.10.1's `InferenceRunner` with `InferenceConfig(server_type="endpoint",
  endpoint_url=URL)` (the supported way to target an external OpenAI-compatible server; for a localhost http URL
  it uses datatrove's own raw-socket client, one connection per request), checkpointing on
  (`checkpoints_local_dir`, `records_per_chunk=K`: its sqlite request cache and jsonl chunk copies),
  `ParquetWriter` (zstd) with `${rank}_chunk_${chunk_index}.parquet`, the same reader input, the same faq
  prompt (finephrase's template, rendered the same way), the same max_tokens and concurrency;
- aiohttp ceiling: the same requests sent by aiohttp.ClientSession (orjson bodies, as finephrase's client
  sends them) at the same concurrency, with its connections already open (finephrase's HTTP library, nothing
  else: no reading, no writing);
- httpx ceiling: the same through httpx.AsyncClient (json=..., response.json()), the library finephrase used
  before (kept to show why it was replaced);
- raw ceiling: the same request bodies over keep-alive sockets with a minimal asyncio protocol (the machine's
  ceiling for this request size; bodies pre-encoded).

Reported per variant: documents/s (median over repeats), CPU time of the process per document, and the
fixed cost of a 1-document run (start-up), from which a steady-state rate is derived.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    ZeroServer,
    base_parser,
    env_for_children,
    finephrase_cmd,
    fmt,
    machine,
    machine_line,
    make_rows,
    median,
    print_profile,
    profile_command,
    resolve_repeats,
    table,
    write_input,
    write_results,
)

NAME = "overhead"
MAX_TOKENS = 2048  # the endpoint backend's default; the same for every variant
TARGET_RATIO = 3.0
TARGET_DOCS_PER_S = 2000.0


# -- one timed child process ------------------------------------------------------------------------------------


def timed(cmd: list[str], cwd: Path | None = None, timeout: float = 3600) -> dict:
    """Run cmd; wall seconds and CPU seconds (user + sys of it and its waited-for children)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env_for_children(), cwd=cwd)
    out_chunks = []
    # read output while waiting (a chatty child must not block on a full pipe)
    for line in proc.stdout:
        out_chunks.append(line)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    output = b"".join(out_chunks).decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[:6]))} ... exited {proc.returncode}:\n{output[-3000:]}")
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "output": output}


# -- the variants ---------------------------------------------------------------------------------------------------


def finephrase_rephrase(input_path: Path, out: Path, url: str, concurrency: int, chunk: int) -> list[str]:
    return finephrase_cmd("rephrase", input_path, "--prompt", "faq", "--backend", "endpoint", "--endpoint-url", url,
                          "--output", out, "--max-concurrency", concurrency, "--chunk-size", chunk,
                          "--max-tokens", MAX_TOKENS, "--progress-interval", 3600)


def run_finephrase(input_path: Path, out: Path, url: str, concurrency: int, chunk: int) -> dict:
    r = timed(finephrase_rephrase(input_path, out, url, concurrency, chunk))
    import pyarrow.parquet as pq

    rows = pq.read_table(out / "faq").num_rows if (out / "faq").exists() else 0
    rejects = pq.read_table(out / "rejects" / "faq").num_rows if (out / "rejects" / "faq").exists() else 0
    r["documents_out"] = rows + rejects
    return r


def run_datatrove(input_path: Path, out: Path, url: str, concurrency: int, chunk: int) -> dict:
    r = timed([sys.executable, os.path.abspath(__file__), "--_datatrove", str(input_path), str(out), url,
               str(concurrency), str(chunk)])
    import pyarrow.parquet as pq

    files = sorted((out / "data").glob("*.parquet"))
    r["documents_out"] = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    return r


def datatrove_worker(input_path: str, out: str, url: str, concurrency: int, chunk: int):
    """The datatrove side (run in its own process: datatrove wants a real main module)."""
    from datatrove.executor.local import LocalPipelineExecutor
    from datatrove.pipeline.inference.run_inference import InferenceConfig, InferenceRunner
    from datatrove.pipeline.readers import JsonlReader, ParquetReader
    from datatrove.pipeline.writers import ParquetWriter
    from datatrove.utils.logging import logger

    from finephrase.prompts.library import load_prompts

    logger.remove()  # its DEBUG console log would be part of the measurement; finephrase's console is quiet too
    prompt = load_prompts("faq")[0]

    async def rollout(doc, generate):
        res = await generate({"messages": prompt.render(doc.text), "max_tokens": MAX_TOKENS})
        return {"text": res.text, "finish_reason": res.finish_reason, "usage": res.usage}

    p = Path(input_path)
    if p.suffix == ".parquet":
        reader = ParquetReader(str(p.parent), glob_pattern=p.name, text_key="text", id_key="id")
    else:
        reader = JsonlReader(str(p.parent), glob_pattern=p.name, text_key="text", id_key="id", compression=None)
    runner = InferenceRunner(
        rollout_fn=rollout,
        config=InferenceConfig(server_type="endpoint", endpoint_url=url, model_name_or_path="zero",
                               max_concurrent_generations=concurrency, use_chat=True,
                               metric_interval=3600),
        output_writer=ParquetWriter(f"{out}/data", output_filename="${rank}_chunk_${chunk_index}.parquet",
                                    compression="zstd"),
        checkpoints_local_dir=f"{out}/checkpoints",
        records_per_chunk=chunk,
    )
    LocalPipelineExecutor([reader, runner], tasks=1, workers=1, logging_dir=f"{out}/logs").run()


def request_bodies(rows: list[dict]) -> list[bytes]:
    import orjson

    from finephrase.prompts.library import load_prompts

    prompt = load_prompts("faq")[0]
    return [orjson.dumps({"model": "zero", "messages": prompt.render(r["text"]), "max_tokens": MAX_TOKENS})
            for r in rows]


async def _timed(send, rows: list[dict], concurrency: int) -> dict:
    """Time `send(row)` (True for a good answer) over every row, `concurrency` at a time, after one untimed
    round of `concurrency` requests that opens the connections."""
    sem = asyncio.Semaphore(concurrency)

    async def one(r):
        async with sem:
            return await send(r)

    await asyncio.gather(*(one(r) for r in rows[:concurrency]))  # warm: the connections are open
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    ok = await asyncio.gather(*(one(r) for r in rows))
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "cpu_s": time.process_time() - cpu0, "documents_out": sum(ok)}


async def httpx_ceiling(url: str, rows: list[dict], concurrency: int) -> dict:
    """The same requests through httpx.AsyncClient (json=..., response.json()), no pipeline around them."""
    import httpx

    from finephrase.prompts.library import load_prompts

    prompt = load_prompts("faq")[0]
    async with httpx.AsyncClient(base_url=url, timeout=600,
                                 limits=httpx.Limits(max_connections=concurrency + 4,
                                                     max_keepalive_connections=concurrency + 4)) as client:
        async def send(r) -> bool:
            resp = await client.post("/v1/chat/completions", json={
                "model": "zero", "messages": prompt.render(r["text"]), "max_tokens": MAX_TOKENS})
            data = resp.json()
            return resp.status_code == 200 and bool(data["choices"][0]["message"]["content"])

        return await _timed(send, rows, concurrency)


async def aiohttp_ceiling(url: str, rows: list[dict], concurrency: int) -> dict:
    """The same requests through aiohttp.ClientSession with orjson bodies, no pipeline around them."""
    import aiohttp
    import orjson

    from finephrase.prompts.library import load_prompts

    prompt = load_prompts("faq")[0]
    async with aiohttp.ClientSession(
            headers={"Content-Type": "application/json"},
            connector=aiohttp.TCPConnector(limit=concurrency + 4, limit_per_host=0)) as session:
        async def send(r) -> bool:
            body = orjson.dumps({"model": "zero", "messages": prompt.render(r["text"]), "max_tokens": MAX_TOKENS})
            async with session.post(f"{url}/v1/chat/completions", data=body) as resp:
                data = orjson.loads(await resp.read())
            return resp.status == 200 and bool(data["choices"][0]["message"]["content"])

        return await _timed(send, rows, concurrency)


async def raw_ceiling(url: str, bodies: list[bytes], concurrency: int) -> dict:
    """The same bodies over keep-alive sockets with a minimal protocol (see zero_server._RawClient)."""
    host, port = url.removeprefix("http://").split(":")
    port = int(port)
    loop = asyncio.get_running_loop()
    reqs = [(b"POST /v1/chat/completions HTTP/1.1\r\nHost: " + f"{host}:{port}".encode()
             + b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(b)).encode() + b"\r\n\r\n" + b)
            for b in bodies]
    it = iter(reqs)
    done = loop.create_future()
    state = {"received": 0, "errors": 0}
    total = len(reqs)

    class Conn(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buf, self.need = transport, bytearray(), None
            self.send()

        def send(self):
            req = next(it, None)
            if req is None:
                self.transport.close()
            else:
                self.transport.write(req)

        def data_received(self, data):
            self.buf += data
            while True:
                if self.need is None:
                    end = self.buf.find(b"\r\n\r\n")
                    if end < 0:
                        return
                    i = self.buf.find(b"Content-Length: ")
                    if self.buf[9:12] != b"200":
                        state["errors"] += 1
                    self.need = end + 4 + int(self.buf[i + 16: self.buf.find(b"\r\n", i)])
                if len(self.buf) < self.need:
                    return
                del self.buf[: self.need]
                self.need = None
                state["received"] += 1
                if state["received"] == total and not done.done():
                    done.set_result(None)
                self.send()

    t0 = time.perf_counter()
    cpu0 = time.process_time()
    for _ in range(min(concurrency, total)):
        await loop.create_connection(Conn, host, port)
    await asyncio.wait_for(done, 600)
    return {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0,
            "documents_out": state["received"] - state["errors"]}


# -- driver ---------------------------------------------------------------------------------------------------------


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--_datatrove":
        _, inp, out, url, conc, chunk = argv
        return datatrove_worker(inp, out, url, int(conc), int(chunk))
    p = base_parser(NAME, "documents/s through finephrase vs datatrove's InferenceRunner vs raw clients, "
                    "against a zero-latency server")
    p.add_argument("--docs", type=int, default=None, help="documents (20,000; quick 200)")
    p.add_argument("--formats", default=None, help="input formats, comma separated (jsonl,parquet; quick parquet)")
    p.add_argument("--concurrency", type=int, default=128, help="requests in flight, every variant (128)")
    p.add_argument("--chunk-size", type=int, default=None, help="documents per commit / checkpoint chunk "
                   "(1000; quick 50)")
    p.add_argument("--skip-datatrove", action="store_true", help="leave datatrove out")
    p.add_argument("--profile", action="store_true", help="then run finephrase once more under py-spy (if "
                   "installed) and print where its CPU time goes")
    args = p.parse_args(argv)
    resolve_repeats(args)
    n = args.docs or (200 if args.quick else 20_000)
    formats = (args.formats or ("parquet" if args.quick else "jsonl,parquet")).split(",")
    chunk = args.chunk_size or (50 if args.quick else 1000)
    conc = args.concurrency

    datatrove_ok, datatrove_why = not args.skip_datatrove, "skipped (--skip-datatrove)"
    if datatrove_ok:
        # its checkpointing needs these (datatrove's [inference] extra, which we do not install whole)
        missing = [m for m in ("aiosqlite", "aiofiles", "xxhash") if importlib.util.find_spec(m) is None]
        if missing:
            datatrove_ok = False
            datatrove_why = (f"not run: {', '.join(missing)} not installed (pip install aiosqlite aiofiles xxhash: "
                             f"datatrove's checkpointing needs them)")

    m = machine()
    print(machine_line(m))
    print(f"{n:,} documents (the bundled sample's texts, cut to <= 5,000 chars, cycled), faq prompt, "
          f"max_tokens {MAX_TOKENS}, concurrency {conc}, chunk {chunk}, repeats {args.repeats}")
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="fp-bench-overhead-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = make_rows(n)
    results = {"documents": n, "concurrency": conc, "chunk_size": chunk, "max_tokens": MAX_TOKENS,
               "formats": {}, "datatrove": "run" if datatrove_ok else datatrove_why}
    table_rows = []
    try:
        with ZeroServer() as server:
            url = server.url
            for fmt_ in formats:
                inp = write_input(work / fmt_ / f"docs.{fmt_}", rows, fmt_)
                one = write_input(work / f"{fmt_}-one" / f"docs.{fmt_}", rows[:1], fmt_)
                variants = {"finephrase": run_finephrase}
                if datatrove_ok:
                    variants["datatrove"] = run_datatrove
                runs = {k: [] for k in variants}
                fixed = {}
                for name, fn in variants.items():  # the fixed cost: one 1-document run each
                    out = work / "out" / f"{fmt_}-{name}-one"
                    fixed[name] = fn(one, out, url, conc, chunk)["wall_s"]
                    shutil.rmtree(out, ignore_errors=True)
                for rep in range(args.repeats):  # interleaved: the ratio is measured side by side
                    for name, fn in variants.items():
                        out = work / "out" / f"{fmt_}-{name}-{rep}"
                        cpu0 = server.cpu_seconds()
                        r = fn(inp, out, url, conc, chunk)
                        r["server_cpu_s"] = server.cpu_seconds() - cpu0
                        r.pop("output", None)
                        r["docs_per_s"] = n / r["wall_s"]
                        runs[name].append(r)
                        print(f"  {fmt_:8} {name:11} run {rep + 1}: {r['docs_per_s']:,.0f} docs/s "
                              f"({r['wall_s']:.1f}s, {r['documents_out']:,} documents out)", flush=True)
                        shutil.rmtree(out, ignore_errors=True)
                fr = {}
                for name, rs in runs.items():
                    wall = median([r["wall_s"] for r in rs])
                    fr[name] = {
                        "docs_per_s": median([r["docs_per_s"] for r in rs]),
                        "wall_s": wall,
                        "cpu_ms_per_doc": median([1000 * r["cpu_s"] / n for r in rs]),
                        "server_cpu_ms_per_doc": median([1000 * r["server_cpu_s"] / n for r in rs]),
                        "fixed_cost_s": fixed[name],
                        "steady_docs_per_s": (n - 1) / (wall - fixed[name]) if wall > fixed[name] else None,
                        "documents_out": [r["documents_out"] for r in rs],
                        "runs": rs,
                    }
                results["formats"][fmt_] = fr
                for name in runs:
                    v = fr[name]
                    table_rows.append([fmt_, name, fmt(v["docs_per_s"]), fmt(v["steady_docs_per_s"]),
                                       fmt(v["cpu_ms_per_doc"], 2), fmt(v["fixed_cost_s"], 1),
                                       f"{min(v['documents_out']):,}/{n:,}"])
            # the ceilings: no pipeline, the same request bodies, in this process
            bodies = request_bodies(rows)
            aio, hx, raw = [], [], []
            for _ in range(args.repeats):
                aio.append(asyncio.run(aiohttp_ceiling(url, rows, conc)))
                hx.append(asyncio.run(httpx_ceiling(url, rows, conc)))
                raw.append(asyncio.run(raw_ceiling(url, bodies, conc)))
            for name, rs in (("aiohttp ceiling", aio), ("httpx ceiling", hx), ("raw ceiling", raw)):
                dps = median([n / r["wall_s"] for r in rs])
                results[name.replace(" ", "_")] = {"docs_per_s": dps,
                                                   "cpu_ms_per_doc": median([1000 * r["cpu_s"] / n for r in rs]),
                                                   "runs": rs}
                table_rows.append(["(any)", name, fmt(dps), "-", fmt(median([1000 * r["cpu_s"] / n for r in rs]), 2),
                                   "-", f"{min(r['documents_out'] for r in rs):,}/{n:,}"])
            if args.profile:
                fmt_ = formats[-1]
                out = work / "out" / "profiled"
                prof = profile_command(finephrase_rephrase(work / fmt_ / f"docs.{fmt_}", out, url, conc, chunk),
                                       work / "profile.txt")
                results["profile"] = prof or "py-spy is not installed (pip install py-spy)"
                shutil.rmtree(out, ignore_errors=True)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)

    print(table(["input", "variant", "docs/s (median)", "steady docs/s", "CPU ms/doc", "1-doc run s",
                 "docs out"], table_rows))
    verdicts = {}
    for fmt_, fr in results["formats"].items():
        fp = fr["finephrase"]["docs_per_s"]
        v = {"finephrase_docs_per_s": fp, "meets_2000_docs_per_s": fp >= TARGET_DOCS_PER_S}
        if "datatrove" in fr:
            ratio = fp / fr["datatrove"]["docs_per_s"]
            v.update(ratio_finephrase_over_datatrove=ratio, meets_3x_datatrove=ratio >= TARGET_RATIO)
            steady = [fr[k]["steady_docs_per_s"] for k in ("finephrase", "datatrove")]
            if all(steady):
                v["steady_ratio"] = steady[0] / steady[1]
        verdicts[fmt_] = v
        line = f"{fmt_}: finephrase {fp:,.0f} docs/s (target >= {TARGET_DOCS_PER_S:,.0f}: " \
               f"{'met' if v['meets_2000_docs_per_s'] else 'NOT met'})"
        if "ratio_finephrase_over_datatrove" in v:
            line += f"; finephrase / datatrove = {v['ratio_finephrase_over_datatrove']:.2f}x (target >= " \
                    f"{TARGET_RATIO:.0f}x: {'met' if v['meets_3x_datatrove'] else 'NOT met'})"
        else:
            line += f"; datatrove {results['datatrove']}"
        print(line)
    if isinstance(results.get("profile"), dict):
        print_profile(f"finephrase rephrase ({formats[-1]}, {n:,} documents) under py-spy", results["profile"])
    results["targets"] = {"docs_per_s": TARGET_DOCS_PER_S, "ratio_over_datatrove": TARGET_RATIO,
                          "cores": m["cores_usable"], "verdicts": verdicts}
    write_results(NAME, args, results)


if __name__ == "__main__":
    main()

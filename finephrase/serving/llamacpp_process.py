"""The embedded engine's own process: llama.cpp's C++ server (prebuilt, from the `xllamacpp` wheel) on one GGUF.

`LlamaCppServer` starts this module as a child process (`python -m finephrase.serving.llamacpp_process ...`), so the
engine can be killed, restarted and cleaned up like any other managed server while the run goes on. It serves
llama.cpp's HTTP API on 127.0.0.1: `/v1/chat/completions` (chat template from the GGUF, continuous batching over
`--slots` sequences, prompt caching, GBNF `grammar`, per-request `seed`), `/tokenize` and `/v1/models`.

`--engine-arg NAME=VALUE` sets any field of xllamacpp's `CommonParams` (dotted for nested ones:
`sampling.top_k=40`, `cpuparams.n_threads=2`, `n_batch=1024`); the value is read as the field's current type.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

SHUTDOWN_GRACE_S = 10.0  # after a stop signal, the process ends within this, its threads stopped or not
ORPHAN_POLL_S = 2.0  # how often the server looks whether the process that started it is still there
REPEAT_PENALTY = 1.1  # for requests that set none (--engine-arg sampling.penalty_repeat=... changes it)


def set_field(params, name: str, raw: str) -> None:
    """Set `params.<dotted name>` from text, typed like the field's current value (ValueError: one line)."""
    *parents, leaf = name.split(".")
    target = params
    for part in parents:
        target = getattr(target, part, None)
        if target is None:
            raise ValueError(f"--engine-arg {name}: llama.cpp has no parameter group '{part}'")
    if not hasattr(target, leaf):
        raise ValueError(f"--engine-arg {name}: llama.cpp has no parameter '{leaf}'")
    current = getattr(target, leaf)
    try:
        if isinstance(current, bool):
            if raw.lower() not in ("1", "0", "true", "false", "on", "off"):
                raise ValueError(raw)
            value = raw.lower() in ("1", "true", "on")
        elif isinstance(current, (int, float)):
            value = type(current)(raw)
        elif isinstance(current, (list, set)):
            value = type(current)(v for v in raw.split(",") if v)
        else:
            value = raw
        setattr(target, leaf, value)
    except (TypeError, ValueError):
        raise ValueError(f"--engine-arg {name}={raw}: expected a value of type {type(current).__name__}") from None


def apply_engine_args(params, engine_args: list[str]) -> None:
    """Each NAME=VALUE onto `params` (ValueError: one line). The embedded backend's preflight runs this on a
    blank CommonParams too, so a mistyped --engine-arg is refused before anything starts."""
    for item in engine_args:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--engine-arg {item}: expected NAME=VALUE")
        set_field(params, name.strip(), raw.strip())


def build_params(args: argparse.Namespace):
    import xllamacpp

    p = xllamacpp.CommonParams()
    p.model.path = args.model
    p.model_alias = {args.alias}
    p.hostnames = ["127.0.0.1"]
    p.port = args.port
    p.n_parallel = args.slots
    p.n_ctx = args.context_length * args.slots  # llama.cpp splits n_ctx evenly over the slots
    p.n_threads_http = args.slots + 4  # a /tokenize call never waits behind the slots' generations
    p.cont_batching = True
    p.cache_prompt = True
    # a request that names no sequence (id_slot) goes to the least recently used idle one, which llama.cpp first
    # fills from its host-memory prompt cache; picking by prompt similarity (default 0.1) skips that cache and
    # found fewer prefixes (benchmarks/slot_reuse.py: 0.52 of prompt tokens cached against 0.40-0.46)
    p.slot_prompt_similarity = 0.0
    p.endpoint_metrics = True
    # llama-cpp-python's server, the embedded engine before this one, penalized repeats by default (1.1 over the
    # last 64 tokens); llama.cpp's server does not (1.0), and the 135M model then loops until max_tokens
    p.sampling.penalty_repeat = REPEAT_PENALTY
    if args.threads:
        p.cpuparams.n_threads = args.threads
        p.cpuparams_batch.n_threads = args.threads
    apply_engine_args(p, args.engine_arg)
    return p


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m finephrase.serving.llamacpp_process", allow_abbrev=False,
                                 description="llama.cpp's server (xllamacpp) on one GGUF, until SIGTERM.")
    ap.add_argument("--model", required=True, help="the GGUF file")
    ap.add_argument("--alias", required=True, help="the model name the server answers to")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--slots", type=int, default=4, help="sequences decoded together (n_parallel)")
    ap.add_argument("--context-length", type=int, default=2048, help="tokens of context per slot")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: llama.cpp's default, the machine's cores)")
    ap.add_argument("--engine-arg", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args(argv)
    try:
        import xllamacpp
    except ImportError:
        print("error: the embedded engine needs xllamacpp: run `make install` (or `pip install xllamacpp`)",
              file=sys.stderr)
        return 2
    try:
        params = build_params(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=_stop_when_orphaned, args=(os.getppid(), stop), daemon=True).start()
    server = xllamacpp.Server(params)  # loads the model and serves from background threads
    print(f"finephrase: llama.cpp server ready at {server.listening_address}", flush=True)
    stop.wait()
    # stopping the engine can wait on requests its client dropped: the process ends after SHUTDOWN_GRACE_S whatever
    # happens
    deadline = threading.Timer(SHUTDOWN_GRACE_S, os._exit, args=(0,))
    deadline.daemon = True
    deadline.start()
    del server  # stops the decoding loop and frees the model
    # llama.cpp's HTTP listener can stay in accept() after that, and the interpreter's exit would wait on it forever
    # (measured: a restarted server outlived its killed run by minutes after "main loop exited"): leave at once
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _stop_when_orphaned(parent: int, stop: threading.Event) -> None:
    """Stop when the process that started the server is gone (its parent-death signal follows the thread that
    started the server, and a server started by a restart comes from a worker thread)."""
    while not stop.wait(ORPHAN_POLL_S):
        if os.getppid() != parent:
            stop.set()


if __name__ == "__main__":
    sys.exit(main())

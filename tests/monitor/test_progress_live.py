"""What a running task tells its user: tokens/s while requests are still generating (the engine's own count), a
note when the engine runs far below its speed, a DRAINING line with the requests left, and request slots given
to the oldest chunk first.

The engine's counter is read from the real llama.cpp server. The drain test uses the stand-in server
(tests/fakeserver.py, not a model): what is under test is our own drain accounting, which needs one request that
takes seconds on demand.
"""

import asyncio
import signal
import subprocess
import sys
import time

import orjson
from conftest import REPO, ledger_line_count, run_cli, write_parquet
from fakeserver import FakeServer

from finephrase.monitor.engine_speed import SpeedWatch
from finephrase.monitor.progress import Progress
from finephrase.pipeline.inference.slots import RequestSlots
from finephrase.serving.client import ChatClient, Sampling
from finephrase.serving.counters import EngineCounter, decoding_now, metric_sum

# -- request slots ----------------------------------------------------------------------------------------------

def test_a_freed_slot_goes_to_the_oldest_chunk_not_to_the_first_come():
    async def scenario():
        slots, order = RequestSlots(1), []
        first = await slots.acquire((0, 1))

        async def ask(priority):
            slot = await slots.acquire(priority)
            order.append(priority)
            slots.release(slot)

        waiters = [asyncio.create_task(ask(p)) for p in [(3, 7), (1, 3), (2, 5), (1, 2)]]
        await asyncio.sleep(0.01)
        assert order == [] and slots.waiting() == 4
        slots.release(first)
        await asyncio.gather(*waiters)
        return order, slots.free

    order, free = asyncio.run(scenario())
    assert order == [(1, 2), (1, 3), (2, 5), (3, 7)] and free == 1


def test_a_cancelled_waiter_neither_keeps_nor_loses_a_slot():
    async def scenario():
        slots = RequestSlots(1)
        taken = await slots.acquire((0,))
        waiter = asyncio.create_task(slots.acquire((5,)))
        await asyncio.sleep(0.01)
        waiter.cancel()
        await asyncio.sleep(0.01)
        slots.release(taken)
        again = await asyncio.wait_for(slots.acquire((9,)), 1)  # the slot came back, not to the cancelled waiter
        return again, slots.free, slots.waiting()

    assert asyncio.run(scenario()) == (0, 0, 0)


def test_each_slot_has_its_own_number():
    async def scenario():
        slots = RequestSlots(3)
        a, b, c = [await slots.acquire(()) for _ in range(3)]
        waiter = asyncio.create_task(slots.acquire((1,)))
        await asyncio.sleep(0.01)
        slots.release(b)  # handed to the waiter as it is
        got = await waiter
        slots.release(c)
        return sorted([a, b, c]), got, await slots.acquire(())

    assert asyncio.run(scenario()) == ([0, 1, 2], 1, 2)


# -- the engine's counters --------------------------------------------------------------------------------------

def test_counters_are_read_from_prometheus_text_and_llamacpp_slots():
    text = ('# HELP vllm:generation_tokens_total x\nvllm:generation_tokens_total{model_name="a"} 120.0\n'
            'vllm:generation_tokens_total{model_name="b"} 30\nvllm:generation_tokens_total_created 17e8\n')
    assert metric_sum(text, "vllm:generation_tokens_total") == 150.0
    assert metric_sum(text, "llamacpp:tokens_predicted_total") is None
    old = orjson.dumps([{"is_processing": True, "next_token": {"n_decoded": 7}}, {"is_processing": False}])
    new = orjson.dumps([{"is_processing": True, "next_token": [{"n_decoded": 5}]},
                        {"is_processing": False, "next_token": [{"n_decoded": 0}]}])
    assert decoding_now(old) == 7 and decoding_now(new) == 5 and decoding_now(b"not json") is None


def test_the_real_engine_counts_tokens_before_the_request_finishes(llama_endpoint):
    async def scenario():
        async with ChatClient(llama_endpoint, "SmolLM2-135M-Instruct") as client:
            assert await client.detect_tokenizer() == "llamacpp"
            counter = EngineCounter(client)
            before = await counter.read()
            request = asyncio.create_task(client.chat(
                [{"role": "user", "content": "Write a long story about a lighthouse keeper and his cat."}],
                Sampling(temperature=0.8, max_tokens=200, seed=1)))
            seen = []
            while not request.done() and len(seen) < 3:
                await asyncio.sleep(0.4)
                if not request.done():
                    seen.append(await counter.read())
            result = await request
            return before, seen, result, await counter.read()

    before, seen, result, after = asyncio.run(scenario())
    assert result.completion_tokens and result.completion_tokens > 50
    assert seen and seen[0] is not None and seen[0] > before, (before, seen)  # counted while still generating
    assert after - before == result.completion_tokens  # and, at the end, exactly what the request says


def test_progress_keeps_counting_across_an_engine_restart_and_falls_back_without_a_counter():
    p = Progress(0, 1, 1, interval=1e9, stream=open("/dev/null", "w"))
    p.engine_count(1000)  # an engine that generated before this session: its count starts here
    p.engine_count(1300)
    assert p.generated() == 300
    p.engine_count(50)  # restarted: its counter began again
    assert p.generated() == 350
    p.finished_unit(output_tokens=40)
    p.engine_count(None)  # the engine stopped answering its counters: finished requests again
    assert p.generated() == 40


# -- the speed watch --------------------------------------------------------------------------------------------

def test_the_speed_watch_notes_an_engine_far_below_its_own_speed_and_a_crowded_cpu():
    now, load = [0.0], [1.0]
    watch = SpeedWatch(cpu_engine=True, clock=lambda: now[0], loadavg=lambda: (load[0], 0, 0), cores=2)

    def at(t, rate, busy=True):
        now[0] = t
        return watch.check(rate, busy)

    assert at(70, 400) == [] and at(100, 420) == []
    assert at(110, 100) == [] and at(200, 100) == []  # slow, but not yet for two minutes
    slow = at(231, 100)
    assert len(slow) == 1 and "100 tok/s" in slow[0] and "420 tok/s" in slow[0] and "CPU" in slow[0]
    assert at(240, 90) == []  # said once
    assert at(250, 410) == [] and at(260, 100) == [] and len(at(381, 100)) == 1  # back, slow again: said again
    assert at(390, 10, busy=False) == []  # an engine with little to do is not slow
    load[0] = 4.5
    crowded = at(400, 300)
    assert len(crowded) == 1 and "load average 4.5 on 2 cores" in crowded[0]
    assert at(410, 300) == []


# -- a drain ----------------------------------------------------------------------------------------------------

def test_a_drain_says_how_many_requests_it_waits_for(tmp_path):
    fake = FakeServer(slow_seconds=8.0, delay=0.05).start()
    rows = [{"id": f"d{i}", "text": ("SLOW " if i == 0 else "") + f"Document {i} explains topic {i} in a few words."}
            for i in range(40)]
    src = write_parquet(tmp_path / "docs.parquet", rows)
    out = tmp_path / "out"
    args = ["rephrase", src, "--prompt", "faq", "--output", out, "--backend", "endpoint", "--endpoint-url", fake.url,
            "--chunk-size", "2", "--max-concurrency", "2", "--max-held-docs", "6", "--progress-interval", "0.5"]
    proc = subprocess.Popen([sys.executable, "-m", "finephrase.cli", *map(str, args)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while ledger_line_count(out) < 1:  # chunks after the straggler's commit while it is still in flight
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        time.sleep(1.5)
        status = run_cli("status", out)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        fake.stop()
    assert proc.returncode == 75, err
    draining = [line for line in err.splitlines() if "DRAINING (" in line]
    assert draining and "1 request left" in draining[-1] and "ETA" in draining[-1], err
    assert status.returncode == 0 and "draining" in status.stdout and "1 request left" in status.stdout, \
        status.stdout

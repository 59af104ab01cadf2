"""The hand-over between the reader thread and the request loop: the reader thread runs the upstream steps (reader,
selection) and puts each document into a bounded queue (`produce`); the loop takes them in batches (`take`). The
queue ends with END, or with a Failure carrying what the upstream steps raised (the loop raises it)."""

from __future__ import annotations

import queue
import threading

END = object()


class Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


def produce(data, q: queue.Queue, stop: threading.Event) -> None:
    """Put every document of `data` into `q`, then END (or a Failure); return early once `stop` is set."""
    try:
        for doc in data:
            while not stop.is_set():
                try:
                    q.put(doc, timeout=0.2)
                    break
                except queue.Full:
                    pass
            if stop.is_set():
                return
        q.put(END)
    except BaseException as e:  # forwarded to the loop, raised there
        q.put(Failure(e))


def take(q: queue.Queue, n: int, stop: threading.Event) -> list:
    """Block for one item (waking up to notice `stop`), then drain up to n without blocking."""
    while True:
        try:
            items = [q.get(timeout=0.2)]
            break
        except queue.Empty:
            if stop.is_set():
                return [END]
    while len(items) < n:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            break
    return items

"""``tenure serve --workers N``: N server processes, each with its own listening socket.

uvicorn's own workers share one listening socket, and whichever process wakes
first accepts every connection waiting: a client keeping 32 connections alive
talks to one process while the others idle. Here each process binds the same
address with ``SO_REUSEPORT``, so the kernel spreads connections over them.
The parent restarts a process that dies and, on SIGTERM or SIGINT, stops them
all (each finishes the requests it has). Where ``SO_REUSEPORT`` does not exist,
uvicorn's workers are used instead.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
from pathlib import Path
from types import FrameType

import uvicorn

__all__ = ["serve_workers"]

log = logging.getLogger("tenure.serve")

_STOP_SECONDS = 30.0


def _listening(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _worker(root: str, host: str, port: int, loader: bool | None) -> None:
    """One server process (the target of a spawned process)."""
    from tenure.api._app import create_app
    from tenure.project import Project

    sock = _listening(host, port)
    app = create_app(Project(Path(root)), loader=loader, server_process=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])


def _free_port(host: str) -> int:
    with _listening(host, 0) as probe:
        return int(probe.getsockname()[1])


def serve_workers(
    root: Path, *, host: str, port: int, workers: int, loader: bool | None = None
) -> None:
    """Serve the project at *root* from *workers* processes until SIGTERM or SIGINT."""
    if not hasattr(socket, "SO_REUSEPORT"):
        os.environ["TENURE_PROJECT"] = str(root)
        if loader is False:
            os.environ["TENURE_SERVE_LOADER"] = "false"
        uvicorn.run(
            "tenure.api:app_from_environment",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
        )
        return
    if port == 0:
        port = _free_port(host)
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()

    def handle(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}

    def start() -> multiprocessing.process.BaseProcess:
        process = context.Process(
            target=_worker, args=(str(root), host, port, loader), name="tenure-serve"
        )
        process.start()
        return process

    processes = [start() for _ in range(workers)]
    try:
        while not stop.wait(0.5):
            for i, process in enumerate(processes):
                if not process.is_alive():
                    log.warning("server process %s exited (%s); starting another",
                                process.pid, process.exitcode)  # fmt: skip
                    processes[i] = start()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes the requests it has
        for process in processes:
            process.join(timeout=_STOP_SECONDS)
            if process.is_alive():
                process.kill()
                process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)

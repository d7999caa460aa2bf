"""Environments in worker processes (``env.workers: N``), behind the ordinary :class:`TextEnv` interface.

:class:`EnvWorkerPool` starts N processes, each building its own environment with the given factory. A
:class:`WorkerEnv` is the trainer-side proxy of one worker. Snapshots never cross the process boundary: the worker
keeps every snapshot it takes and the proxy hands out a :class:`SnapshotHandle` (worker, incarnation, id), which is
what rollout nodes hold and what ``restore`` takes back. Restoring, the tree search's way of branching, thus costs
one small message, whatever the environment's state size. :meth:`EnvWorkerPool.release` drops the snapshots of an
iteration once the rollout is over. :func:`worker_envs` deals a batch's tasks to the workers by each task's estimated
step cost (:meth:`~spo3.envs.base.TextEnv.step_cost`), so that every round of the rollout, which waits for its
slowest worker, gives each worker about the same work.

Requests are pipelined and batched: :meth:`WorkerEnv.begin_transition` queues "restore, step, snapshot" and returns
at once; :meth:`WorkerEnv.flush` (or the first wait for an answer) sends each worker its queued requests as one
message, which the worker answers with one message. So one batch's steps run in all workers at the same time (and,
in :class:`spo3.rollout.common.Stepper`, while the next half-batch is generated), and a half-batch costs each worker
one round trip instead of one per step: fewer wake-ups of the trainer's process, which on a machine with as many
cores as workers takes CPU time from them.

Each worker measures the CPU time it spends on resets and transitions and reports it when the iteration's
snapshots are released (:attr:`EnvWorkerPool.worker_cpu`): how evenly the work was spread, a figure that the
machine's other load distorts far less than wall time.

Faults: a worker that dies (killed, crashed in native code) is detected when its answer is awaited. It is
restarted at once with a fresh environment; everything it held is gone, so the pending request and every later
use of one of its old handles raise :class:`WorkerDied`, and the rollout ends those episodes as failures.
:attr:`EnvWorkerPool.deaths` counts the restarts.

Workers are forked (no pickling of the factory or the environment); environments must not rely on threads.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from spo3.envs.base import EnvError, Observation, TextEnv, Transition

__all__ = ["EnvWorkerPool", "SnapshotHandle", "WorkerDied", "WorkerEnv", "batch_envs", "worker_envs"]


class WorkerDied(EnvError):
    """The environment worker process died; the episode state it held is lost."""


@dataclass(frozen=True)
class SnapshotHandle:
    """A snapshot kept in a worker process."""

    worker: int
    incarnation: int
    """Which start of the worker took it: a restarted worker no longer has it."""
    id: int


def _serve(conn: Any, factory: Callable[[], TextEnv]) -> None:
    """The worker loop: one environment, its snapshots by id; each message is a list of requests, done in order
    and answered with one message. "release" answers with the CPU seconds spent on resets and transitions since the
    last one."""
    env = factory()
    # Everything inherited from the trainer (loaded games, libraries) lives as long as the worker: out of the
    # collector's reach, a full collection no longer traverses it (in benchmarks/bench_rollout.py it cost an ALFWorld
    # worker 0.17-0.39 s of CPU per iteration, 10-20% of its work, writing to every inherited object's pages). What
    # it leaves uncollected is bounded by what the worker inherited.
    gc.freeze()
    snapshots: dict[int, Any] = {}
    spent = 0.0

    def keep() -> int:
        snapshots[len(snapshots)] = env.snapshot()
        return len(snapshots) - 1

    def run(op: str, args: tuple) -> Any:
        nonlocal spent
        if op in ("transition", "reset"):
            start = time.process_time()
            if op == "transition":
                env.restore(snapshots[args[0]])
            answer = (env.step(args[1]) if op == "transition" else env.reset(args[0])), keep()
            spent += time.process_time() - start
            return answer
        if op == "snapshot":
            return keep()
        if op == "restore":
            return env.restore(snapshots[args[0]])
        if op == "release":
            snapshots.clear()
            seconds, spent = spent, 0.0
            return seconds
        attr = getattr(env, op)  # a plain TextEnv method or attribute
        return attr(*args) if callable(attr) else attr

    while True:
        try:
            requests = conn.recv()
        except (EOFError, OSError):
            return
        answers = []
        for ticket, op, args in requests:
            try:
                answers.append((ticket, True, run(op, args)))
            except Exception as exc:  # noqa: BLE001 - the trainer re-raises it
                answers.append((ticket, False, exc))
        conn.send(answers)
        if any(op == "close" for _, op, _ in requests):
            return


class _Worker:
    def __init__(self, ctx: Any, factory: Callable[[], TextEnv]) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, factory), daemon=True)
        self.process.start()
        child.close()  # so that the worker's death closes the pipe
        self.tickets = 0
        self.queued: list[tuple[int, str, tuple]] = []
        """Requests not sent yet (:meth:`EnvWorkerPool.flush`)."""
        self.answers: dict[int, tuple[bool, Any]] = {}


class EnvWorkerPool:
    """N environment worker processes.

    Args:
      factory: builds one environment (called in each worker, and again when a worker is restarted).
      workers: number of processes (>= 1).
    """

    def __init__(self, factory: Callable[[], TextEnv], workers: int) -> None:
        if workers < 1:
            raise ValueError(f"EnvWorkerPool: workers={workers} must be >= 1")
        self._ctx = mp.get_context("fork")
        self._factory = factory
        self._workers = [_Worker(self._ctx, factory) for _ in range(workers)]
        self.incarnations = [0] * workers
        self.deaths = 0
        """Workers restarted after dying, in all."""
        self.envs = [WorkerEnv(self, i) for i in range(workers)]
        """One proxy per worker."""
        self.worker_cpu = [0.0] * workers
        """CPU seconds each worker spent on resets and transitions between the last two :meth:`release` calls."""

    def __len__(self) -> int:
        return len(self._workers)

    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers]

    def submit(self, worker: int, op: str, *args: Any) -> Callable[[], Any]:
        """Queue a request (sent by :meth:`flush`, or by the first wait for an answer); the returned callable
        waits for its answer (raising the worker's exception, or :class:`WorkerDied`)."""
        w, incarnation = self._workers[worker], self.incarnations[worker]
        ticket = w.tickets
        w.tickets += 1
        w.queued.append((ticket, op, args))
        return lambda: self._answer(worker, incarnation, ticket)

    def flush(self) -> None:
        """Send every worker its queued requests, as one message each."""
        for w in self._workers:
            if w.queued:
                try:
                    w.conn.send(w.queued)
                except (BrokenPipeError, OSError):
                    pass  # noticed when an answer is awaited
                w.queued = []

    def call(self, worker: int, op: str, *args: Any) -> Any:
        return self.submit(worker, op, *args)()

    def _answer(self, worker: int, incarnation: int, ticket: int) -> Any:
        if incarnation != self.incarnations[worker]:
            raise WorkerDied(f"environment worker {worker} died before answering")
        self.flush()
        w = self._workers[worker]
        while ticket not in w.answers:
            try:
                while not w.conn.poll(1.0):
                    if not w.process.is_alive():
                        raise EOFError
                answers = w.conn.recv()
            except (EOFError, OSError):
                self._restart(worker)
                raise WorkerDied(f"environment worker {worker} died (exit code {w.process.exitcode}); restarted") from None
            w.answers.update((got, (ok, value)) for got, ok, value in answers)
        ok, value = w.answers.pop(ticket)
        if not ok:
            raise value
        return value

    def _restart(self, worker: int) -> None:
        old = self._workers[worker]
        old.process.join(timeout=1.0)
        old.conn.close()
        self._workers[worker] = _Worker(self._ctx, self._factory)
        self.incarnations[worker] += 1
        self.deaths += 1

    def release(self) -> None:
        """Every worker drops its snapshots (handles taken so far become invalid) and reports its CPU time
        (:attr:`worker_cpu`; 0 for a worker that died since the last release: its figure died with it)."""
        for worker, pending in enumerate([self.submit(i, "release") for i in range(len(self))]):
            try:
                self.worker_cpu[worker] = pending()
            except WorkerDied:
                self.worker_cpu[worker] = 0.0

    def close(self) -> None:
        for w in self._workers:
            try:
                w.conn.send([(-1, "close", ())])
            except (BrokenPipeError, OSError):
                pass
        for w in self._workers:
            w.process.join(timeout=5.0)
            if w.process.is_alive():
                w.process.kill()
            w.conn.close()

    def __enter__(self) -> EnvWorkerPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class WorkerEnv(TextEnv):
    """The trainer-side proxy of one worker's environment: every :class:`TextEnv` method works across the process
    boundary, snapshots are :class:`SnapshotHandle`s."""

    asynchronous = True

    def __init__(self, pool: EnvWorkerPool, worker: int) -> None:
        self.pool, self.worker = pool, worker
        self.family = pool.call(worker, "family")
        self.max_steps = pool.call(worker, "max_steps")
        self._task_types: dict[str, str] = {}

    def tasks(self, split: str) -> list[str]:
        return self.pool.call(self.worker, "tasks", split)

    def task_type(self, task_id: str) -> str:
        if task_id not in self._task_types:
            self._task_types[task_id] = self.pool.call(self.worker, "task_type", task_id)
        return self._task_types[task_id]

    def walkthrough(self, task_id: str) -> list[str] | None:
        return self.pool.call(self.worker, "walkthrough", task_id)

    def step_cost(self, task_id: str) -> float:
        return self.pool.call(self.worker, "step_cost", task_id)

    def reset(self, task_id: str) -> Observation:
        return self.pool.call(self.worker, "reset", task_id)[0]

    def step(self, action: str) -> Transition:
        return self.pool.call(self.worker, "step", action)

    def snapshot(self) -> SnapshotHandle:
        return self._handle(self.pool.call(self.worker, "snapshot"))

    def restore(self, snapshot: Any) -> Observation:
        return self.pool.call(self.worker, "restore", self._own(snapshot))

    def flush(self) -> None:
        """Send the requests begun so far (of every worker of the pool)."""
        self.pool.flush()

    def begin_reset(self, task_id: str) -> Callable[[], tuple[Observation, SnapshotHandle]]:
        pending = self.pool.submit(self.worker, "reset", task_id)
        return lambda: self._with_handle(pending())

    def begin_transition(self, snapshot: Any, action: str) -> Callable[[], tuple[Transition, SnapshotHandle]]:
        try:
            snapshot_id = self._own(snapshot)
        except WorkerDied as exc:
            lost = exc

            def raise_lost() -> tuple[Transition, SnapshotHandle]:
                raise lost
            return raise_lost
        pending = self.pool.submit(self.worker, "transition", snapshot_id, action)
        return lambda: self._with_handle(pending())

    def _with_handle(self, answer: tuple[Any, int]) -> tuple[Any, SnapshotHandle]:
        return answer[0], self._handle(answer[1])

    def _handle(self, snapshot_id: int) -> SnapshotHandle:
        return SnapshotHandle(self.worker, self.pool.incarnations[self.worker], snapshot_id)

    def _own(self, snapshot: Any) -> int:
        if not isinstance(snapshot, SnapshotHandle) or snapshot.worker != self.worker:
            raise EnvError(f"worker {self.worker}: not one of its snapshots: {snapshot!r}")
        if snapshot.incarnation != self.pool.incarnations[self.worker]:
            raise WorkerDied(f"environment worker {self.worker} died since this snapshot was taken")
        return snapshot.id


def worker_envs(pool: EnvWorkerPool, costs: Sequence[float]) -> list[WorkerEnv]:
    """One environment per task of a batch, given each task's estimated step cost
    (:meth:`~spo3.envs.base.TextEnv.step_cost`): the costliest task first, each onto the worker with the least
    estimated work so far (ties: the lower index), so that the workers finish each round of the rollout at about
    the same time, a round waiting for its slowest worker. Equal costs deal round-robin. Where a task runs changes
    the time only, never a result."""
    load = [0.0] * len(pool)
    envs: list[WorkerEnv] = [pool.envs[0]] * len(costs)
    for task in sorted(range(len(costs)), key=lambda i: -costs[i]):
        worker = min(range(len(pool)), key=load.__getitem__)
        load[worker] += costs[task]
        envs[task] = pool.envs[worker]
    return envs


def batch_envs(env: TextEnv, tasks: Sequence[str], pool: EnvWorkerPool | None) -> Sequence[TextEnv]:
    """The environment of each task of a batch: ``env`` itself, or with ``pool`` (``env.workers``) a worker's, the
    tasks dealt by ``env``'s step costs (:func:`worker_envs`)."""
    if pool is None:
        return [env] * len(tasks)
    return worker_envs(pool, [env.step_cost(task) for task in tasks])

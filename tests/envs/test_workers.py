"""Environments in worker processes: the TextEnv interface across the process boundary, the same rollouts as in
process, and a worker killed mid-rollout (restarted; its episodes end as counted failures)."""

import os
import signal
import time

import numpy as np
import pytest

from spo3.config import load_config
from spo3.envs.guard import GuardedEnv
from spo3.envs.workers import EnvWorkerPool, SnapshotHandle, WorkerDied, worker_envs
from spo3.metrics import read_metrics
from spo3.policies.base import Response
from spo3.policies.tabular import TabularPolicy
from spo3.rollout.common import RolloutStats, Stepper
from spo3.rollout.group import group_rollout
from spo3.rollout.tree import TreeSearch, TreeSettings
from spo3.state.store import StateStore
from spo3.training.builders import build_env
from spo3.training.evaluate import evaluate
from spo3.training.loop import train
from tests.fakes import GraphEnv

GAMES = ["env.textworld.challenge=tw-coin_collector", "env.textworld.level=5", "env.textworld.train_seeds=[0,1]"]


@pytest.fixture(scope="module")
def textworld():
    cfg = load_config(None, GAMES)
    env = build_env(cfg.env)
    yield env
    env.close()


@pytest.fixture
def pool(textworld):
    with EnvWorkerPool(lambda: textworld, 2) as pool:
        yield pool


def test_snapshot_and_restore_work_across_the_process_boundary(pool, textworld):
    remote = pool.envs[1]
    task = textworld.tasks("train")[0]
    assert remote.tasks("train") == textworld.tasks("train") and remote.family == textworld.family
    first = remote.reset(task)
    assert first == textworld.reset(task)
    start = remote.snapshot()
    assert isinstance(start, SnapshotHandle) and start.worker == 1
    action = first.admissible_actions[0]
    stepped = remote.step(action)
    assert stepped == textworld.step(action)
    assert remote.restore(start) == first  # back at the start: the same observation and the same future
    assert remote.step(action) == stepped
    (tr, after), (tr2, _) = remote.begin_transition(start, action)(), remote.begin_transition(start, action)()
    assert tr == tr2 == stepped and after.worker == 1
    with pytest.raises(Exception, match="not one of its snapshots"):
        pool.envs[0].restore(start)


def rollouts(envs, tasks, seed=0):
    group = group_rollout(envs, tasks, TabularPolicy(seed=seed), group_size=3, temperature=1.0)
    search = TreeSearch(envs, tasks, TabularPolicy(seed=seed), StateStore().snapshot(),
                        TreeSettings(max_trajectories=3, max_env_steps=30), np.random.default_rng(seed))
    for _ in search.rounds():
        pass
    return group, search.result


def test_worker_rollouts_equal_in_process_rollouts(pool, textworld):
    tasks = textworld.tasks("train") * 2
    local = rollouts([textworld] * len(tasks), tasks)
    remote = rollouts(worker_envs(pool, [textworld.step_cost(task) for task in tasks]), tasks)
    for a, b in zip(local, remote):
        assert [(s.key, s.action, s.next_key, s.won) for s in a.samples] == [(s.key, s.action, s.next_key, s.won) for s in b.samples]
        assert a.trajectories == b.trajectories
    # with workers the batch went to the policy in two halves, overlapping the first half's steps
    assert remote[0].stats.policy_calls == 2 * local[0].stats.policy_calls


class Weighted(GraphEnv):
    """The steps of the tasks named "heavy..." take twenty times the CPU time of the others'."""

    def __init__(self):
        graph = {"A": {"go b": "B", "go c": "C"}, "B": {"go a": "A", "go g": "G"}, "C": {"go a": "A"}}
        super().__init__(graph, {task: "A" for task in ("heavy1", "light1", "heavy2", "light2")}, goals={"G"}, max_steps=6)

    def step(self, action):
        start, busy = time.process_time(), 0.004 if self._state[0].startswith("heavy") else 0.0002
        while time.process_time() - start < busy:
            pass
        return super().step(action)

    def step_cost(self, task_id):
        return 20.0 if task_id.startswith("heavy") else 1.0


def test_each_worker_reports_the_cpu_time_of_its_resets_and_steps():
    env, tasks = Weighted(), ["heavy1", "light1", "heavy2", "light2"]
    with EnvWorkerPool(lambda: env, 2) as pool:
        envs = worker_envs(pool, [1.0] * len(tasks))  # dealt round-robin: both heavy tasks in worker 0
        rollouts(envs, tasks)
        pool.release()
        assert pool.worker_cpu[0] > 5 * pool.worker_cpu[1] > 0
        pool.release()
        assert pool.worker_cpu == [0.0, 0.0]  # since the last release


def test_tasks_are_dealt_by_step_cost_so_that_the_workers_get_the_same_work():
    env, tasks = Weighted(), ["heavy1", "light1", "heavy2", "light2"]
    with EnvWorkerPool(lambda: env, 2) as pool:
        assert [e.worker for e in worker_envs(pool, [1.0] * 5)] == [0, 1, 0, 1, 0]  # equal costs: round-robin
        envs = worker_envs(pool, [env.step_cost(task) for task in tasks])
        assert [e.worker for e in envs] == [0, 0, 1, 1]  # costliest first, each onto the least loaded worker
        assert envs[0].step_cost("heavy1") == 20.0  # asked across the process boundary too
        rollouts(envs, tasks)
        pool.release()
        assert max(pool.worker_cpu) < 2 * min(pool.worker_cpu)  # one heavy task each (round-robin: > 5x apart)


def test_a_half_batch_costs_each_worker_one_round_trip(pool, textworld, monkeypatch):
    """Every step of a half-batch goes to its worker in one message (answered with one), not one per step."""
    sent = []
    for i, worker in enumerate(pool._workers):
        monkeypatch.setattr(worker, "conn", _CountingConnection(worker.conn, i, sent))
    tasks = textworld.tasks("train") * 2  # 4 tasks over 2 workers: each half holds one task of each worker
    envs = worker_envs(pool, [1.0] * len(tasks))
    search = TreeSearch(envs, tasks, TabularPolicy(seed=0), StateStore().snapshot(),
                        TreeSettings(max_trajectories=3, max_env_steps=30), np.random.default_rng(0))
    for env, task in zip(envs, tasks):
        env.task_type(task)  # asked once per task and worker, then cached: not part of the stepping
    sent.clear()
    rounds = sum(1 for _ in search.rounds())
    steps = search.result.stats.env_steps
    assert len(sent) <= len(pool) * (1 + 2 * rounds)  # the resets, then at most two halves per round
    assert len(sent) < steps / 2  # one message per step would be more than the steps


class _CountingConnection:
    def __init__(self, conn, worker, sent):
        self._conn, self._worker, self._sent = conn, worker, sent

    def send(self, message):
        self._sent.append(self._worker)
        self._conn.send(message)

    def __getattr__(self, name):
        return getattr(self._conn, name)


class KillingPolicy(TabularPolicy):
    """Kills worker 0 with SIGKILL during its ``at``-th sampling call (its earlier steps are then in flight)."""

    def __init__(self, pool, at):
        super().__init__(seed=0)
        self.pool, self.at, self.calls = pool, at, 0

    def sample(self, inputs, n, temperature=1.0, generators=None):
        self.calls += 1
        if self.calls == self.at:
            os.kill(self.pool.pids()[0], signal.SIGKILL)
        return super().sample(inputs, n, temperature, generators)


@pytest.mark.parametrize("mode", ["group", "tree"])
def test_a_killed_worker_is_restarted_and_its_episodes_fail(pool, textworld, mode):
    tasks = textworld.tasks("train")
    envs = worker_envs(pool, [1.0] * len(tasks))
    old_pid = pool.pids()[0]
    policy = KillingPolicy(pool, at=4)
    if mode == "group":
        result = group_rollout(envs, tasks, policy, group_size=2, temperature=1.0)
    else:
        search = TreeSearch(envs, tasks, policy, StateStore().snapshot(), TreeSettings(max_trajectories=3, max_env_steps=30),
                            np.random.default_rng(0))
        for _ in search.rounds():
            pass
        result = search.result
    assert pool.deaths == 1 and pool.pids()[0] != old_pid
    assert result.stats.env_failures >= 1
    failed = [s for s in result.samples if s.task_id == tasks[0] and s.done and not s.won]
    assert failed, "the killed worker's episode did not end as a failure"
    assert all(t.task_id in tasks for t in result.trajectories)
    # the restarted worker serves new episodes; the other worker never noticed
    assert envs[0].reset(tasks[0]).task_id == tasks[0] and envs[1].reset(tasks[1]).task_id == tasks[1]
    with pytest.raises(WorkerDied):
        envs[0].restore(SnapshotHandle(0, 0, 0))  # a handle of the dead incarnation


def test_training_with_workers_matches_in_process(tmp_path):
    def run(name, *extra):
        cfg = load_config(None, [
            *GAMES, "iterations=2", "tasks_per_iteration=2", "algo.max_trajectories=3", "eval.every=0",
            "eval.episodes=2", "env.eval_split=train", "log.progress=false", f"log.output_dir={tmp_path}",
            f"log.run_name={name}", *extra,
        ])
        return [r for r in read_metrics(train(cfg)) if r["iteration"] > 0]

    def same(record):  # what must not depend on where the environments run (evaluation included)
        return {k: v for k, v in record.items() if k not in ("time", "policy_calls")}

    local, remote = run("local"), run("workers", "env.workers=2")
    assert [same(r) for r in local] == [same(r) for r in remote]
    assert all(r["env_failures"] == 0 for r in remote)
    assert all(len(r["time"]["env_workers_cpu"]) == 2 and min(r["time"]["env_workers_cpu"]) > 0 for r in remote)
    assert all(r["time"]["cpu"] > 0 for r in local + remote) and all("env_workers_cpu" not in r["time"] for r in local)
    assert all(w["policy_calls"] > s["policy_calls"] for s, w in zip(local, remote))  # generation split to overlap


def test_evaluation_in_workers_equals_evaluation_in_process(pool, textworld):
    tasks, policy = textworld.tasks("train"), TabularPolicy(seed=0)
    local = evaluate(policy, textworld, tasks, 6, seed=3)
    remote = evaluate(policy, textworld, tasks, 6, seed=3, pool=pool)
    assert remote.to_dict(with_episodes=True) == local.to_dict(with_episodes=True)
    assert min(pool.worker_cpu) > 0  # both workers played episodes (and released their snapshots)


class NativeHang(GraphEnv):
    """"hang" blocks where no signal handler can run, as a call stuck in native code does (SIGALRM is blocked)."""

    def __init__(self):
        super().__init__({"A": {"hang": "A", "go b": "B"}}, {"t": "A"}, goals={"B"})

    def step(self, action):
        if action == "hang":
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(10)
        return super().step(action)


def test_an_engine_call_hung_in_native_code_in_a_worker_ends_as_a_counted_failure():
    guarded = GuardedEnv(NativeHang, timeout_s=0.2)
    guarded.reset("t")  # the trainer's own guarded calls (evaluation) start its watchdog before a worker forks
    with EnvWorkerPool(lambda: guarded, 1) as pool:
        env, stats = pool.envs[0], RolloutStats()
        stepper = Stepper(env.family, "global", 2, stats)
        root = stepper.root(env, "t")
        t0 = time.perf_counter()
        child, tr, _, _ = stepper.step(env, root, Response("<think>x</think><action>hang</action>", (), ()))
        assert time.perf_counter() - t0 < 5  # the worker's watchdog ended it after 2 x 0.2 s, not the 10 s sleep
        assert child.done and not tr.won and stats.env_failures == 1 and pool.deaths == 1
        assert env.reset("t").text == root.obs.text  # the restarted worker plays on

"""Run directories: resume that never dead-ends, refuses a foreign checkpoint, one writer, durable checkpoints and
append-only metrics files (spo3.training.run_dir, spo3.training.checkpoint, spo3.metrics.records)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

import spo3.training.checkpoint as checkpoint_module
import spo3.training.loop as loop_module
from spo3.metrics import MetricsLogger, read_metrics
from spo3.state import StateStore
from spo3.training.checkpoint import CheckpointError, checkpoints, latest_checkpoint, verify_checkpoint
from spo3.training.loop import train
from spo3.training.run_dir import ResumeError, RunLock, RunLockedError
from tests.test_train import config, maze, without_time


def records(run):
    return without_time(read_metrics(run))


def test_crash_before_the_first_checkpoint_resumes_from_the_beginning(tmp_path, monkeypatch, capsys):
    straight = train(config(tmp_path, "grpo", "straight", "iterations=2"), env=maze())

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop_module, "save_checkpoint", killed)
    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path, "grpo", "crashed", "iterations=2"), env=maze())
    monkeypatch.undo()
    run = tmp_path / "crashed"
    assert (run / "metrics.jsonl").exists() and not checkpoints(run)
    with pytest.raises(FileExistsError):  # still protected against a plain restart
        train(config(tmp_path, "grpo", "crashed", "iterations=2"), env=maze())
    orphan = train(config(tmp_path, "grpo", "orphan", "iterations=1"), env=maze())
    (orphan / "metrics.jsonl").unlink()  # checkpoints alone also make a run: never mixed with a fresh one
    with pytest.raises(FileExistsError):
        train(config(tmp_path, "grpo", "orphan", "iterations=1"), env=maze())
    capsys.readouterr()
    train(config(tmp_path, "grpo", "crashed", "iterations=2"), resume=True, env=maze())
    assert "no checkpoint in" in capsys.readouterr().out
    assert records(run) == records(straight)


def test_damaged_newest_checkpoint_falls_back_to_the_newest_intact_one(tmp_path, capsys):
    straight = train(config(tmp_path, "3spo", "straight", "iterations=4"), env=maze())
    run = train(config(tmp_path, "3spo", "run", "iterations=3"), env=maze())
    assert [p.name for p in checkpoints(run)] == ["iter_000002", "iter_000003"]
    (run / "checkpoints" / "iter_000003" / "trainer.json").write_text("{}")
    capsys.readouterr()
    train(config(tmp_path, "3spo", "run", "iterations=4"), resume="auto", env=maze())
    out = capsys.readouterr().out
    assert "skipped iter_000003" in out and "trainer.json: damaged" in out and "continuing from iter_000002" in out
    assert (run / "checkpoints" / "iter_000003.damaged").is_dir()
    assert records(run) == records(straight)


def test_every_checkpoint_damaged_is_a_clear_error(tmp_path):
    run = train(config(tmp_path, "grpo", "dmg", "iterations=1"), env=maze())
    (latest_checkpoint(run) / "optimizer.pt").write_bytes(b"garbage")
    with pytest.raises(ResumeError, match="no intact checkpoint.*optimizer.pt.*Remove the checkpoints directory"):
        train(config(tmp_path, "grpo", "dmg", "iterations=2"), resume=True, env=maze())


def test_torn_last_metrics_line_is_dropped_with_a_message(tmp_path, capsys):
    straight = train(config(tmp_path, "grpo", "straight", "iterations=3"), env=maze())
    run = train(config(tmp_path, "grpo", "torn", "iterations=2"), env=maze())
    with (run / "metrics.jsonl").open("ab") as f:
        f.write(b'{"iteration": 3, "algori\xc3')  # a kill mid-write, mid-character
    with pytest.raises(ValueError, match="damaged metrics record"):
        read_metrics(run)
    capsys.readouterr()
    train(config(tmp_path, "grpo", "torn", "iterations=3"), resume=True, env=maze())
    assert "dropped a torn last record" in capsys.readouterr().out
    assert records(run) == records(straight)


def test_foreign_checkpoint_is_refused_and_config_yaml_kept(tmp_path):
    run = train(config(tmp_path, "3spo", "run", "iterations=1"), env=maze())
    before = (run / "config.yaml").read_text()
    with pytest.raises(ResumeError, match=r"^--resume refused: .* \(algo.alpha 50.0 -> 1.0\); pass "
                                          r"--allow-config-change algo.alpha"):
        train(config(tmp_path, "3spo", "run", "iterations=2", "algo.alpha=1.0"), resume=True, env=maze())
    assert (run / "config.yaml").read_text() == before
    # A GRPO checkpoint copied into a 3SPO run.
    grpo = train(config(tmp_path, "grpo", "grpo", "iterations=1"), env=maze())
    shutil.rmtree(run / "checkpoints")
    shutil.copytree(grpo / "checkpoints", run / "checkpoints")
    with pytest.raises(ResumeError, match=r"algo.name 'grpo' -> '3spo'"):
        train(config(tmp_path, "3spo", "run", "iterations=2"), resume=True, env=maze())


def test_allowed_config_change_is_logged_and_reaches_the_store(tmp_path, capsys):
    run = train(config(tmp_path, "3spo", "run", "iterations=1"), env=maze())
    assert StateStore.load(latest_checkpoint(run) / StateStore.FILENAME).params.alpha == 50.0
    capsys.readouterr()
    train(config(tmp_path, "3spo", "run", "iterations=2", "algo.alpha=1.0"), resume=True, env=maze(),
          allow_config_change=["algo.alpha"])
    assert "algo.alpha changes from 50.0 to 1.0" in capsys.readouterr().out
    assert StateStore.load(latest_checkpoint(run) / StateStore.FILENAME).params.alpha == 1.0
    assert yaml.safe_load((run / "config.yaml").read_text())["algo"]["alpha"] == 1.0
    (change,) = [json.loads(line) for line in (run / "config_changes.jsonl").read_text().splitlines()]
    assert change["changes"] == {"algo.alpha": {"from": 50.0, "to": 1.0}} and change["checkpoint"] == "iter_000001"


def test_leftover_temporary_checkpoints_are_removed(tmp_path, capsys):
    run = train(config(tmp_path, "grpo", "run", "iterations=1"), env=maze())
    leftover = run / "checkpoints" / ".tmp-iter_000002-99999"
    (leftover / "policy").mkdir(parents=True)
    train(config(tmp_path, "grpo", "run", "iterations=2"), resume=True, env=maze())
    assert not leftover.exists() and "removed 1 unfinished checkpoint directory" in capsys.readouterr().out


def test_only_spo3_iter_directories_are_checkpoints(tmp_path):
    run = train(config(tmp_path, "grpo", "run", "iterations=1", "log.keep_checkpoints=1"), env=maze())
    best = run / "checkpoints" / "iter_best"
    shutil.copytree(latest_checkpoint(run), best)
    (run / "checkpoints" / "iter_999999").mkdir()
    (run / "checkpoints" / "iter_999999" / "manifest.json").write_text('{"format": "someone else"}')
    train(config(tmp_path, "grpo", "run", "iterations=3", "log.keep_checkpoints=1"), resume=True, env=maze())
    assert [p.name for p in checkpoints(run)] == ["iter_000003"]
    assert best.is_dir() and (run / "checkpoints" / "iter_999999").is_dir()  # never loaded, never pruned


def test_manifest_must_be_complete_and_stay_inside(tmp_path):
    run = train(config(tmp_path, "grpo", "run", "iterations=1"), env=maze())
    ckpt = latest_checkpoint(run)
    path = ckpt / "manifest.json"
    manifest = json.loads(path.read_text())

    def check(files, match):
        path.write_text(json.dumps({**manifest, "files": files}))
        with pytest.raises(CheckpointError, match=match):
            verify_checkpoint(ckpt)

    check({}, "lists no files")
    check({k: v for k, v in manifest["files"].items() if k != "rng.pt"}, "partial manifest .*rng.pt")
    check({k: v for k, v in manifest["files"].items() if not k.startswith("policy/")}, "partial manifest .*policy/")
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"x")
    check({**manifest["files"], "../../../outside.bin": checkpoint_module._sha256(outside)}, "outside the checkpoint")
    path.write_text(json.dumps(manifest))
    verify_checkpoint(ckpt)


def test_checkpoint_files_and_directories_are_fsynced_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(checkpoint_module.os, "fsync",
                        lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))), real_fsync(fd))[1])
    monkeypatch.setattr(checkpoint_module.os, "replace",
                        lambda a, b: (events.append(("replace", str(a))), real_replace(a, b))[1])
    run = train(config(tmp_path, "grpo", "run", "iterations=1"), env=maze())
    ckpt = latest_checkpoint(run)
    (rename,) = [i for i, e in enumerate(events) if e[0] == "replace" and re.search(r"/\.tmp-iter_\d+-\d+$", e[1])]
    tmp = events[rename][1]
    synced_before = {e[1] for e in events[:rename] if e[0] == "fsync"}
    for path in [*(p for p in ckpt.rglob("*")), ckpt]:
        assert tmp + str(path)[len(str(ckpt)):] in synced_before, path
    assert ("fsync", str(ckpt.parent)) in events[rename:]


def test_one_writer_per_run(tmp_path):
    run = tmp_path / "run"
    with RunLock(run):
        with pytest.raises(RunLockedError, match=f"in use by process {os.getpid()}"):
            RunLock(run).acquire()
        with pytest.raises(RunLockedError, match=str(os.getpid())):
            train(config(tmp_path, "grpo", "run", "iterations=1"), resume=True, env=maze())
    # A lock file left by a process that died is taken over.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run / ".lock").write_text(dead.stdout)
    train(config(tmp_path, "grpo", "run", "iterations=1"), resume=True, env=maze())
    assert read_metrics(run)[-1]["iteration"] == 1


def test_metrics_csv_is_appended_and_rewritten_once_per_new_column(tmp_path):
    logger = MetricsLogger(tmp_path)
    logger.write({"iteration": 1, "a": 1.0})
    inode = (tmp_path / "metrics.csv").stat().st_ino
    logger.write({"iteration": 2, "a": 2.0})
    assert (tmp_path / "metrics.csv").stat().st_ino == inode  # appended, not replaced
    logger.write({"iteration": 3, "a": 3.0, "eval": {"success_rate": 0.5}})
    assert (tmp_path / "metrics.csv").stat().st_ino != inode  # a new column: one rewrite
    logger.write({"iteration": 4, "a": 4.0})
    assert (tmp_path / "metrics.csv").read_text().splitlines() == [
        "iteration,a,eval/success_rate", "1,1.0,", "2,2.0,", "3,3.0,0.5", "4,4.0,",
    ]


def test_the_metrics_logger_does_not_grow_with_the_run(tmp_path):
    """The soak (benchmarks/soak.py) found the logger holding every record in memory, ~6 KB per iteration without
    bound; metrics.jsonl is their one copy."""
    import tracemalloc

    record = {"iteration": 0, **{f"metric_{i}": {"value": float(i), "name": f"m{i}"} for i in range(40)}}
    logger = MetricsLogger(tmp_path)
    logger.write(record)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(1, 301):
            logger.write({**record, "iteration": i})
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 100_000, f"the logger holds {held} bytes after 300 records"
    assert [r["iteration"] for r in read_metrics(tmp_path)] == list(range(301))
    logger.truncate(150)  # resuming still works from the file
    assert read_metrics(tmp_path)[-1]["iteration"] == 150 and len((tmp_path / "metrics.csv").read_text().splitlines()) == 152

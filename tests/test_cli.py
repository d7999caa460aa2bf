"""The spo3 command: configs validate, `spo3 train CONFIG` runs for each method, `spo3 eval` reports."""

import json
from pathlib import Path

import pytest
import yaml

from spo3.cli import main
from spo3.config import ConfigError, load_config, load_yaml
from spo3.metrics import read_metrics

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))
SMALL = Path(__file__).resolve().parents[1] / "configs" / "textworld_tabular.yaml"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_is_valid(path):
    try:
        load_config(path)
    except ConfigError as exc:  # the paper configs name hub models: valid wherever the model is cached
        assert str(exc).startswith("policy.model:") and "/" in load_yaml(path)["policy"]["model"]
        load_config(path, ["policy.model=tiny"])


def test_help_config_lists_fields_with_docs(capsys):
    assert main(["train", "--help-config"]) == 0
    out = capsys.readouterr().out
    assert "algo.alpha = 50.0" in out and "lambda(t) = alpha * ln t" in out
    assert "env.textworld.level" in out


def test_bad_override_names_the_field(capsys, tmp_path):
    assert main(["train", str(SMALL), "algo.alpah=3", f"log.output_dir={tmp_path}"]) == 2
    assert "algo.alpah: unknown key (did you mean 'alpha'?)" in capsys.readouterr().err
    assert main(["train", str(SMALL), "algo.xi=0", f"log.output_dir={tmp_path}"]) == 2
    assert "algo.xi" in capsys.readouterr().err


@pytest.mark.parametrize("algo", ["3spo", "grpo", "gigpo"])
def test_train_small_textworld_config_then_eval(algo, tmp_path, capsys):
    args = ["train", str(SMALL), f"algo.name={algo}", "iterations=2", "eval.every=1", "eval.episodes=4",
            f"log.output_dir={tmp_path}", "log.progress=false"]
    assert main(args) == 0
    run = tmp_path / f"textworld-{algo}-s0"
    records = read_metrics(run)
    assert [r["iteration"] for r in records] == [0, 1, 2] and records[-1]["algorithm"] == algo
    assert main(["eval", str(run), "--episodes", "4"]) == 0
    out = capsys.readouterr().out
    assert "success" in out and "95% CI" in out
    report = json.loads(next(run.glob("eval-train-iter_*.json")).read_text())
    assert report["episodes"] == 4 and len(report["per_episode"]) == 4
    # in environment workers: the same report
    assert main(["eval", str(run), "env.workers=2", "--episodes", "4", "--out", str(tmp_path / "workers.json")]) == 0
    assert json.loads((tmp_path / "workers.json").read_text())["per_episode"] == report["per_episode"]
    # resume from the run directory: two more iterations
    assert main(["train", "--resume", str(run), "iterations=4"]) == 0
    assert [r["iteration"] for r in read_metrics(run)][-1] == 4
    # a changed fingerprint field is refused in one line, and accepted when allowed
    assert main(["train", str(run), "--resume", "algo.alpha=1.0", "iterations=5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "algo.alpha 50.0 -> 1.0" in err and "--allow-config-change algo.alpha" in err
    assert main(["train", str(run), "--resume", "--allow-config-change", "algo.alpha", "algo.alpha=1.0",
                 "iterations=5"]) == 0
    assert [r["iteration"] for r in read_metrics(run)][-1] == 5

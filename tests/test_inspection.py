"""Inspecting a run: `spo3 states`, the expansion trace, the end-of-run summary, and figures that leave the
caller's matplotlib backend alone."""

import csv
import json
from collections import Counter
from pathlib import Path

import matplotlib
import pytest

from spo3.cli import main
from spo3.experiments import inspection
from spo3.experiments.compare import plot_variants

SMALL = Path(__file__).resolve().parents[1] / "configs" / "textworld_tabular.yaml"


@pytest.fixture(scope="module")
def run_3spo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", str(SMALL), "iterations=2", "eval.every=0", "eval.episodes=2", f"log.output_dir={out}",
                 "log.progress=false", "log.expansions=true"]) == 0
    return out / "textworld-3spo-s0"


def test_train_prints_a_summary_that_names_the_files(run_3spo, capsys):
    text = inspection.format_run_summary(run_3spo)
    assert "final evaluation success" in text and "95% CI" in text
    assert "unique states" in text and "truncated" in text
    assert str(run_3spo / "metrics.jsonl") in text and "spo3 states" in text and "expansions.jsonl" in text


def test_states_command_table_histogram_grep_and_csv(run_3spo, capsys, tmp_path):
    store = inspection.load_store(run_3spo)
    assert main(["states", str(run_3spo), "--top", "3", "--sort", "visits", "--csv", str(tmp_path / "s.csv")]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(f"{run_3spo}: {len(store)} states, t = {store.t}")
    assert lines[1].split()[:7] == ["key", "N_total", "N_succ", "SR", "S", "n", "trunc"]
    visits = [int(line.split()[1]) for line in lines[2:5]]
    assert visits == sorted(visits, reverse=True) and visits[0] == max(r["n_total"] for r in store.records())
    hist = inspection.n_histogram(store)
    assert sum(hist.values()) == len(store) and f"n={max(hist)}: {hist[max(hist)]}" in lines[-2]
    with open(tmp_path / "s.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(store) and list(rows[0]) == list(inspection.COLUMNS)
    # --grep filters on the observation text
    word = store.records()[0]["anchor"].split()[0]
    assert main(["states", str(run_3spo), "--grep", word.upper(), "--top", "0"]) == 0
    out = capsys.readouterr().out
    expected = sum(word.lower() in (r["anchor"] or "").lower() for r in store.records())
    assert f"{expected} match" in out.splitlines()[0]


def test_state_table_columns_agree_with_the_store(run_3spo):
    store = inspection.load_store(run_3spo)
    rows = inspection.state_table(store, sort="n")
    assert [r["n"] for r in rows] == sorted((r["n"] for r in rows), reverse=True)
    for row in rows:
        assert row["n"] == store.rollouts([row["key"]])[0] and row["truncated"] == (row["n"] == 0)
        assert row["sr"] == pytest.approx(row["n_success"] / row["n_total"])


def test_expansion_trace_is_consistent(run_3spo):
    expansions = inspection.read_expansions(run_3spo)
    records = [json.loads(line) for line in (run_3spo / "metrics.jsonl").read_text().splitlines()]
    assert {e["iteration"] for e in expansions} == {1, 2}
    for record in records[1:]:  # every expansion (allocation with n > 0) of the metrics' n histogram is in the trace
        mine = [e for e in expansions if e["iteration"] == record["iteration"]]
        assert len(mine) == sum(v for n, v in record["n_hist"].items() if n != "0")
    for e in expansions:
        sampled = len(e["actions"])
        assert sampled >= 1 and sampled == len(e["children"]) == len(e["rewards"]) == len(e["order"])
        assert sorted(e["order"]) == list(range(sampled))
        ranked = [e["rewards"][j] for j in e["order"]]
        assert ranked == sorted(ranked, reverse=True)
    key = Counter(e["key"] for e in expansions).most_common(1)[0][0]
    trace = inspection.state_trace(expansions, key[:10])
    assert trace and all(e["key"] == key for e in trace)


def test_resume_drops_the_trace_of_iterations_it_runs_again(tmp_path):
    args = ["train", str(SMALL), "iterations=2", "eval.every=0", "eval.episodes=2", f"log.output_dir={tmp_path}",
            "log.progress=false", "log.checkpoint_every=1", "log.expansions=true"]
    assert main(args) == 0
    run = tmp_path / "textworld-3spo-s0"
    straight = (run / "expansions.jsonl").read_text()
    # as if the run had died after writing iteration 2's trace but before its checkpoint
    import shutil

    shutil.rmtree(run / "checkpoints" / "iter_000002")
    (run / "expansions.jsonl").write_text(straight + '{"iteration": 2, "cut')
    assert main(["train", str(run), "--resume"]) == 0
    assert (run / "expansions.jsonl").read_text() == straight


def _fake_run(path: Path) -> Path:
    path.mkdir()
    lines = [{"iteration": i, "env_steps_total": 10 * i, "eval": {"success_rate": 0.1 * i}} for i in range(3)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def test_plot_variants_leaves_the_matplotlib_backend_alone(tmp_path):
    # the library used to call matplotlib.use("Agg"), which switched a notebook's inline backend off for good
    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        figure = plot_variants({"A": [_fake_run(tmp_path / "a")]}, tmp_path / "fig.png", "title")
        assert matplotlib.get_backend() == "svg"
        assert figure.stat().st_size > 0
    finally:
        matplotlib.use(before)

"""StateStore: counting rules, frozen snapshots, lookups without side effects, persistence and its errors."""

import sqlite3

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spo3.core import ScoreParams, num_rollouts, state_score
from spo3.state import StateStore, StateStoreError


def test_counts_each_distinct_state_once_and_advances_t():
    store = StateStore()
    assert store.t == 1 and len(store) == 0
    store.record_trajectory(["s0", "s1", "s0", "s2"], won=True)  # s0 revisited: one visit
    store.record_trajectory(["s0", "s3"], won=False)
    assert store.t == 3
    n_total, n_success = store.counts(["s0", "s1", "s2", "s3", "unseen"])
    np.testing.assert_array_equal(n_total, [2, 1, 1, 1, 0])
    np.testing.assert_array_equal(n_success, [1, 1, 1, 0, 0])


def test_scores_and_rollouts_use_core_formulas():
    p = ScoreParams(alpha=2.0, xi=3)
    store = StateStore(p)
    for won in (True, False, False, False, False):
        store.record_trajectory(["a", "b"], won)
    store.record_trajectory(["c"], False)
    keys = ["a", "c", "z"]
    n_total, n_success = store.counts(keys)
    expected = state_score(n_total, n_success, store.t, p)
    np.testing.assert_array_equal(store.scores(keys), expected)
    np.testing.assert_array_equal(store.rollouts(keys), num_rollouts(expected, p.g_max))
    assert store.rollouts(["z"])[0] == p.g_max  # unseen


def test_lookup_never_creates_entries():
    store = StateStore()
    store.record_trajectory(["a"], True)
    before = store.to_dict()
    store.scores(["x", "y"]), store.rollouts(["x"]), store.counts(["q"])
    assert "x" not in store and len(store) == 1 and store.to_dict() == before


def test_snapshot_is_frozen():
    store = StateStore()
    store.record_trajectory(["a", "b"], False)
    snap = store.snapshot()
    store.record_trajectory(["a", "c"], True)
    assert snap.t == 2 and store.t == 3
    np.testing.assert_array_equal(snap.counts(["a", "b", "c"])[0], [1, 1, 0])
    assert "c" not in snap and "c" in store
    np.testing.assert_array_equal(snap.scores(["c"]), [1.0])


def test_empty_snapshot_lookups():
    snap = StateStore().snapshot()
    np.testing.assert_array_equal(snap.scores(["a", "b"]), [1.0, 1.0])
    assert len(snap.scores([])) == 0


def test_anchor_and_exports(tmp_path):
    store = StateStore()
    store.record_trajectory(["k1", "k2"], True, anchors=["first text", "second"])
    store.record_trajectory(["k1"], False, anchors=["other text"])
    assert store.anchor("k1") == "first text"
    d = store.to_dict()
    assert d["t"] == 3 and d["schema_version"] == 1
    assert d["states"][0] == {"key": "k1", "n_total": 2, "n_success": 1, "score": d["states"][0]["score"],
                              "anchor": "first text"}
    csv_text = store.to_csv(tmp_path / "s.csv").read_text()
    assert csv_text.splitlines()[0] == "key,n_total,n_success,score,anchor"
    summary = store.summary()
    assert summary["unique_states"] == 2 and summary["t"] == 3


trajectories = st.lists(
    st.tuples(st.lists(st.sampled_from([f"s{i}" for i in range(12)]), min_size=1, max_size=6), st.booleans()),
    max_size=25,
)


@given(trajectories)
def test_round_trip(tmp_path_factory, trajs):
    store = StateStore(ScoreParams(alpha=7.0, xi=4))
    for keys, won in trajs:
        store.record_trajectory(keys, won, anchors=[k.upper() for k in keys])
    path = store.save(tmp_path_factory.mktemp("rt"))
    loaded = StateStore.load(path)
    assert loaded.t == store.t and loaded.params == store.params
    assert loaded.to_dict() == store.to_dict()
    keys = [f"s{i}" for i in range(14)]
    np.testing.assert_array_equal(loaded.scores(keys), store.scores(keys))


@given(trajectories, trajectories, st.sampled_from([0.0, 2.0, 50.0, 1e6]), st.integers(1, 4))
def test_single_key_lookups_equal_the_batched_ones(before, after, alpha, xi):
    store = StateStore(ScoreParams(alpha=alpha, xi=xi, g_max=5))
    for keys, won in before:
        store.record_trajectory(keys, won)
    snap = store.snapshot()
    first = snap.score_of("s0")  # fills the single-key tables before the live store moves on
    for keys, won in after:  # keys first seen now must stay unseen in the snapshot
        store.record_trajectory(keys, won)
    keys = [f"s{i}" for i in range(14)]
    n_total, n_success = snap.counts(keys)
    assert [snap.score_of(k) for k in keys] == snap.scores(keys).tolist()
    assert [snap.rollouts_of(k) for k in keys] == snap.rollouts(keys).tolist()
    assert [snap.counts_of(k) for k in keys] == list(zip(n_total.tolist(), n_success.tolist()))
    assert first == snap.scores(["s0"])[0]


def test_save_is_atomic(tmp_path, monkeypatch):
    store = StateStore()
    store.record_trajectory(["a"], True)
    path = store.save(tmp_path / "store.sqlite")
    store.record_trajectory(["b"], False)

    def crash(*_):
        raise OSError("disk full")

    monkeypatch.setattr("spo3.state.store.os.replace", crash)
    with pytest.raises(OSError):
        store.save(path)
    assert StateStore.load(path).t == 2  # the old file is intact


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.sqlite"):
        StateStore.load(tmp_path / "missing.sqlite")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StateStoreError, match="junk.sqlite"):
        StateStore.load(junk)
    foreign = tmp_path / "foreign.sqlite"
    con = sqlite3.connect(foreign)
    con.execute("create table x (a)")
    con.commit()
    con.close()
    with pytest.raises(StateStoreError, match="foreign"):
        StateStore.load(foreign)


def test_edited_or_truncated_file_is_detected(tmp_path):
    store = StateStore()
    for i in range(50):
        store.record_trajectory([f"s{i}", f"s{i + 1}"], i % 3 == 0)
    path = store.save(tmp_path / "store.sqlite")
    edited = tmp_path / "edited.sqlite"
    edited.write_bytes(path.read_bytes())
    con = sqlite3.connect(edited)
    con.execute("update states set n_success = n_success + 1 where row = 3")
    con.commit()
    con.close()
    with pytest.raises(StateStoreError, match="checksum"):
        StateStore.load(edited)
    cut = tmp_path / "cut.sqlite"
    cut.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(StateStoreError, match="cut.sqlite"):
        StateStore.load(cut)

"""Plain-text tables: golden output of alignment and padding."""

from spo3.metrics.tables import Column, text_table


def test_text_table_pads_left_and_right_aligned_columns_and_leaves_the_last_free():
    rows = [{"name": "a", "x": 1.5, "note": "first"}, {"name": "longer", "x": 12.25, "note": ""}]
    table = text_table(rows, (
        Column("name", lambda r: r["name"], 6),
        Column("x", lambda r: f"{r['x']:.2f}", 6, right=True),
        Column("note", lambda r: r["note"]),
    ))
    assert table.splitlines() == [
        "name        x note",
        "a        1.50 first",
        "longer  12.25",
    ]

"""The workspace's summary index keeps one entry per session file, also when study runs in
different folders share a file name (every study has a c000-seed0.h5)."""

from __future__ import annotations

from workbench.store.index import SummaryIndex
from workbench.store.reader import SessionSummary


def summary(path, name, mean):
    return SessionSummary(str(path), name, "finished", "digits", "protonet", 3, 5, "accuracy", mean, 0.01,
                          "2026-12-01T00:00:00", "2026-12-01T00:01:00", 10, 10)


def test_files_of_one_name_in_different_folders_keep_their_own_summaries(tmp_path):
    a = tmp_path / "studies" / "one" / "runs" / "c000-seed0.h5"
    b = tmp_path / "studies" / "two" / "runs" / "c000-seed0.h5"
    index = SummaryIndex(tmp_path)
    index.put(str(a), (1, 100), summary(a, "first", 0.5))
    index.put(str(b), (2, 200), summary(b, "second", 0.7))
    index.save()
    again = SummaryIndex(tmp_path)               # read back from the index file
    assert again.get(str(a), (1, 100)).name == "first" and again.get(str(b), (2, 200)).mean == 0.7
    assert again.get(str(a), (1, 101)) is None   # a changed file is read anew
    again.keep_only([str(b)])
    assert again.get(str(a), (1, 100)) is None and again.get(str(b), (2, 200)).name == "second"

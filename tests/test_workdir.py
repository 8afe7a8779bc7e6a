"""Work directories (run, comparison, tune): which paths a command may take, its manifest, and
the partial directories killed writes leave behind."""

import os
import time

import pytest

from growml.errors import RunError
from growml.runs.workdir import (
    claim,
    hold,
    new_partial,
    partial_of,
    partials,
    read_manifest,
    refuse_current,
    remove_partials,
)


def test_a_path_is_claimed_when_absent_empty_or_holding_a_manifest(tmp_path):
    assert claim(tmp_path / "absent", "comparison", ["compare.json"]) is False
    (tmp_path / "empty").mkdir()
    assert claim(tmp_path / "empty", "comparison", ["compare.json"]) is False
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "study.db").write_bytes(b"")
    assert claim(tmp_path / "mine", "tune", ["tune.json", "study.db"]) is True


def test_a_path_holding_anything_else_is_refused_and_left_alone(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "mine.txt").write_text("keep me")
    with pytest.raises(RunError) as caught:
        claim(notes, "comparison", ["compare.json"])
    assert str(caught.value) == (
        f"{str(notes)!r} exists and is not a growml comparison directory; choose another --out."
    )
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RunError, match="is not a growml run directory"):
        claim(tmp_path / "afile", "run", ["model.json"])
    assert (notes / "mine.txt").read_text() == "keep me"


def test_the_current_directory_and_those_above_it_are_never_replaced(tmp_path, monkeypatch):
    inner = tmp_path / "outer" / "inner"
    inner.mkdir(parents=True)
    monkeypatch.chdir(inner)
    for path in (inner, tmp_path / "outer"):
        with pytest.raises(RunError, match="contains the current directory; choose another"):
            refuse_current(path)
    refuse_current(tmp_path / "outer" / "beside")


def test_a_damaged_manifest_is_refused_with_the_remedy(tmp_path):
    manifest = tmp_path / "compare.json"
    manifest.write_text('{"status": "running"}')
    assert read_manifest(manifest, "start afresh") == {"status": "running"}
    for content in ("{broken", "[1, 2]"):
        manifest.write_text(content)
        with pytest.raises(RunError) as caught:
            read_manifest(manifest, "pass --overwrite to start afresh")
        assert str(caught.value) == (
            f"{str(manifest)!r} is damaged; pass --overwrite to start afresh."
        )


def test_partial_directories_are_found_by_their_target_and_removed_alone(tmp_path):
    target = tmp_path / "trial-0003"
    first, second = new_partial(target), new_partial(target)
    assert first != second and first.is_dir() and not target.exists()
    assert sorted(partials(target)) == sorted([first, second])
    assert partial_of(first) == "trial-0003" and partial_of(target) is None
    other = new_partial(tmp_path / "fixed-5-s1")
    (other / "history.jsonl").write_text("")
    finished = tmp_path / "fixed-8-s1"
    finished.mkdir()
    (tmp_path / ".hidden").mkdir()
    for partial in (first, second, other):
        _age(partial, 60)
    remove_partials(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == [".hidden", "fixed-8-s1"]
    remove_partials(tmp_path / "absent")  # nothing to clear: nothing happens


def _age(path, seconds):
    moment = time.time() - seconds
    os.utime(path, (moment, moment))


def test_a_partial_directory_being_written_or_just_made_is_not_removed(tmp_path):
    written, new, left = (new_partial(tmp_path / name) for name in ("a", "b", "c"))
    _age(written, 3600)
    _age(left, 3600)
    lock = hold(written)
    try:
        remove_partials(tmp_path)
        assert sorted(tmp_path.iterdir()) == sorted([written, new])
        with pytest.raises(RunError, match="is being written by another growml process"):
            hold(written)
    finally:
        os.close(lock)
    remove_partials(tmp_path)
    assert list(tmp_path.iterdir()) == [new]  # the write ended: what it left is removed

"""Two processes of one job writing into one new output folder: one's probe cleanup may remove it under the other."""

import tempfile

import pytest

from pipeline.common.errors import UserError
from pipeline.run import outputs


def test_a_folder_removed_by_another_probe_is_made_again(tmp_path, monkeypatch):
    """The other process's cleanup removes the new folder between our mkdir and our probe: we make it again."""
    real = tempfile.NamedTemporaryFile
    calls = []

    def vanishing(*args, dir, **kwargs):
        calls.append(dir)
        if len(calls) == 1:
            dir.rmdir()  # what the other process's cleanup does
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(outputs.tempfile, "NamedTemporaryFile", vanishing)
    folder = outputs.check_writable(str(tmp_path / "two" / "out"))
    assert folder == tmp_path / "two" / "out" and len(calls) == 2
    assert not (tmp_path / "two").exists()  # the probe still leaves no empty folder behind


def test_a_folder_that_keeps_vanishing_is_still_an_error(tmp_path, monkeypatch):
    real = tempfile.NamedTemporaryFile

    def always_vanishing(*args, dir, **kwargs):
        dir.rmdir()
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(outputs.tempfile, "NamedTemporaryFile", always_vanishing)
    with pytest.raises(UserError, match="cannot be written"):
        outputs.check_writable(str(tmp_path / "out"))


def test_a_numbered_file_is_written_when_the_folder_vanishes_first(tmp_path, monkeypatch):
    """The same race while a finished image takes its number: the folder is made again and the number held."""
    folder, real = tmp_path / "out", outputs.next_number
    calls = []

    def vanishing(where):
        calls.append(where)
        if len(calls) == 1:
            where.rmdir()
        return real(where)

    monkeypatch.setattr(outputs, "next_number", vanishing)
    with outputs.reserved_number(folder) as number:
        assert number == 1 and (folder / ".00001.reserved").exists()
    assert len(calls) == 2 and not (folder / ".00001.reserved").exists()

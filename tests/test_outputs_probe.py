"""The output folder's write probe when two processes of one job check the same new folder at once."""

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

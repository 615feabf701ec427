"""Atomic writes: a failing exporter leaves no new file and keeps an existing one intact."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from medtalk import hookimpl
from medtalk.core.components import Exporter
from medtalk.core.errors import OutputError
from medtalk.core.fileio import atomic_output, write_sequence
from medtalk.core.sequence import RigSequence


class ExporterFailure(RuntimeError):
    pass


class HalfWayExporter(Exporter):
    """Writes half the frames, then fails."""

    name = "halfway"
    extensions = (".half",)

    def write(self, sequence, rig, path):
        with open(path, "w") as stream:
            for row in sequence.values[: sequence.num_frames // 2]:
                stream.write(",".join(map(str, row)) + "\n")
            stream.flush()
            raise ExporterFailure("disk on fire")


class HalfWayPlugin:
    @staticmethod
    @hookimpl
    def register_exporters(register):
        register(HalfWayExporter)


@pytest.fixture
def sequence():
    return RigSequence(np.linspace(0, 1, 52 * 10).reshape(10, 52), fps=60, rig="arkit-52")


def test_a_failing_exporter_leaves_no_new_file(sequence, tmp_path, register_plugin):
    register_plugin(HalfWayPlugin)
    with pytest.raises(ExporterFailure):
        write_sequence(sequence, tmp_path / "take.half")
    assert list(tmp_path.iterdir()) == []


def test_a_failing_exporter_keeps_the_existing_file_intact(sequence, tmp_path, register_plugin):
    register_plugin(HalfWayPlugin)
    target = tmp_path / "take.half"
    target.write_text("the user's precious take\n")
    with pytest.raises(ExporterFailure):
        write_sequence(sequence, target, overwrite=True)
    assert target.read_text() == "the user's precious take\n"
    assert list(tmp_path.iterdir()) == [target]


def test_an_existing_file_is_replaced_only_when_asked(sequence, tmp_path):
    target = tmp_path / "take.csv"
    target.write_text("keep me\n")
    with pytest.raises(OutputError) as error:
        write_sequence(sequence, target)
    assert str(error.value) == f"{target}: already exists: choose another name, or pass --force to replace it"
    assert target.read_text() == "keep me\n"
    write_sequence(sequence, target, overwrite=True)
    assert target.read_text().startswith("eyeBlinkLeft,")


def test_a_replaced_file_keeps_its_permissions(sequence, tmp_path):
    target = tmp_path / "take.csv"
    target.write_text("old\n")
    target.chmod(0o640)
    write_sequence(sequence, target, overwrite=True)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_a_new_file_gets_the_usual_permissions_not_the_temp_files(sequence, tmp_path):
    umask = os.umask(0o022)
    try:
        target = write_sequence(sequence, tmp_path / "take.json")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_writing_into_a_missing_folder_or_onto_a_folder_is_refused(tmp_path):
    with pytest.raises(OutputError) as error, atomic_output(tmp_path / "nope" / "x.csv"):
        pass
    assert (
        str(error.value)
        == f"{tmp_path / 'nope' / 'x.csv'}: the folder {tmp_path / 'nope'} does not exist: create it first"
    )
    with pytest.raises(OutputError) as error, atomic_output(tmp_path):
        pass
    assert str(error.value) == f"{tmp_path}: is a folder: give a file name to write"


def test_an_interrupt_also_removes_the_temporary_file(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_output(tmp_path / "x.txt") as temp:
        temp.write_text("partial")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_be_written_gives_one_line(sequence, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(OutputError) as error:
        write_sequence(sequence, tmp_path / "take.csv")
    assert str(error.value) == (
        f"{tmp_path / 'take.csv'}: cannot write it (Permission denied): "
        "free some space or choose another folder"
    )


def test_a_full_disk_midway_gives_one_line_and_leaves_nothing(sequence, tmp_path, register_plugin):
    class DiskFullExporter(HalfWayExporter):
        """Runs out of space."""

        name = "diskfull"
        extensions = (".full",)

        def write(self, sequence, rig, path):
            path.write_text("partial")
            raise OSError(28, "No space left on device")

    class Plugin:
        @staticmethod
        @hookimpl
        def register_exporters(register):
            register(DiskFullExporter)

    register_plugin(Plugin)
    with pytest.raises(OutputError) as error:
        write_sequence(sequence, tmp_path / "take.full")
    assert str(error.value) == (
        f"{tmp_path / 'take.full'}: cannot write it (No space left on device): "
        "free some space or choose another folder"
    )
    assert list(tmp_path.iterdir()) == []

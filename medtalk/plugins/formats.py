"""Built-in rig-sequence formats: the authors' txt, CSV with a header, and JSON curves."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from medtalk import hookimpl
from medtalk.core.components import ComponentConfig, Exporter, Importer
from medtalk.core.errors import FileFormatError, UnknownComponentError

if TYPE_CHECKING:
    import numpy as np

    from medtalk.core.rig import RigSpec
    from medtalk.core.sequence import RigSequence

DECIMALS = 6
JSON_FORMAT_ID = "medtalk.rig-sequence"
JSON_VERSION = 1


class TableImportConfig(ComponentConfig):
    rig: str | None = Field(
        default=None, description="Rig of the columns; by default the registered rig with that many columns"
    )
    fps: float = Field(default=60.0, gt=0, description="Frames per second (the file does not say)")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FileFormatError(
            f"{path}: not a text file: give a UTF-8 text file of comma-separated values"
        ) from None


def _numbered_rows(path: Path, text: str, first_line: int) -> list[tuple[int, str]]:
    """(line number, line) of every non-blank line from ``first_line`` (1-based) on."""
    lines = text.splitlines()
    rows = [(n, line) for n, line in enumerate(lines[first_line - 1 :], start=first_line) if line.strip()]
    if not rows:
        raise FileFormatError(
            f"{path}: the file has no frames: expected one row of comma-separated values per frame"
        )
    return rows


def _parse_table(path: Path, rows: list[tuple[int, str]], width: int, rig_name: str) -> np.ndarray:
    """Parse rows of ``width`` numbers; any bad row is reported with its line number and the fix."""
    import numpy as np

    for number, line in rows:
        count = line.count(",") + 1
        if count != width:
            raise FileFormatError(
                f"{path}, line {number}: expected {width} values (rig {rig_name}), found {count}: "
                "every row needs one value per control"
            )
    tokens = ",".join(line for _, line in rows).split(",")
    try:
        flat = np.array(tokens, dtype=np.float64)
    except ValueError:
        flat = np.array([_token_value(path, rows, width, i, t) for i, t in enumerate(tokens)])
    bad = np.flatnonzero(~np.isfinite(flat))
    if bad.size:
        _token_value(path, rows, width, int(bad[0]), tokens[int(bad[0])])
    return flat.reshape(len(rows), width)


def _token_value(path: Path, rows: list[tuple[int, str]], width: int, index: int, token: str) -> float:
    return checked_number(token, f"{path}, line {rows[index // width][0]}, value {index % width + 1}")


def checked_number(token: str, where: str) -> float:
    """``token`` as a finite float; anything else is a one-line FileFormatError starting with ``where``."""
    try:
        value = float(token)
    except ValueError:
        raise FileFormatError(
            f"{where}: {token.strip()!r} is not a number: write plain decimal numbers"
        ) from None
    if not math.isfinite(value):
        raise FileFormatError(
            f"{where}: {token.strip()!r} is not a finite number: replace NaN/inf with real values"
        )
    return value


def _rig_for(path: Path, rig_name: str | None, width: int, line: int) -> RigSpec:
    from medtalk.core.plugins import get_registry

    rigs = get_registry("rig")
    if rig_name is not None:
        return rigs.get(rig_name)
    matching = [reg.entry for reg in rigs if reg.entry.num_controls == width]
    if len(matching) == 1:
        return matching[0]
    widths = ", ".join(f"{reg.name}: {reg.entry.num_controls}" for reg in rigs)
    problem = "which matches no registered rig" if not matching else "which several rigs have"
    raise FileFormatError(f"{path}, line {line}: {width} values, {problem} ({widths}): pass --rig NAME")


def _format_rows(values: np.ndarray) -> str:
    row_format = ",".join([f"%.{DECIMALS}f"] * values.shape[1])
    return "".join(row_format % tuple(row) + "\n" for row in values.tolist())


class AuthorsTxtExporter(Exporter):
    """The MEDTalk authors' txt: one comma-separated row of control values per frame, no header."""

    name = "txt"
    extensions = (".txt",)

    def write(self, sequence: RigSequence, rig: RigSpec, path: Path) -> None:
        path.write_text(_format_rows(sequence.values), encoding="utf-8")


class AuthorsTxtImporter(Importer):
    """The MEDTalk authors' txt: one comma-separated row of control values per frame, no header."""

    name = "txt"
    extensions = (".txt",)
    Config = TableImportConfig

    def read(self, path: Path) -> RigSequence:
        from medtalk.core.sequence import RigSequence

        rows = _numbered_rows(path, _read_text(path), first_line=1)
        first_line, first = rows[0]
        rig = _rig_for(path, self.config.rig, first.count(",") + 1, first_line)
        values = _parse_table(path, rows, rig.num_controls, rig.name)
        return RigSequence(values, fps=self.config.fps, rig=rig.name)


class CsvExporter(Exporter):
    """CSV with a header row of control names, then one row of values per frame."""

    name = "csv"
    extensions = (".csv",)

    def write(self, sequence: RigSequence, rig: RigSpec, path: Path) -> None:
        path.write_text(",".join(rig.controls) + "\n" + _format_rows(sequence.values), encoding="utf-8")


class CsvImporter(Importer):
    """CSV with a header row of control names (any order), then one row of values per frame."""

    name = "csv"
    extensions = (".csv",)
    Config = TableImportConfig

    @classmethod
    def sniff(cls, head: str) -> bool:
        lines = head.lstrip("\ufeff").splitlines()
        return not (lines and lines[0].startswith("Timecode"))

    def read(self, path: Path) -> RigSequence:
        from medtalk.core.sequence import RigSequence

        text = _read_text(path)
        header_line = next((n for n, line in enumerate(text.splitlines(), 1) if line.strip()), None)
        if header_line is None:
            raise FileFormatError(
                f"{path}: the file is empty: expected a header of control names, then one row per frame"
            )
        header = [name.strip().strip('"') for name in text.splitlines()[header_line - 1].split(",")]
        rig = self._rig_for_header(path, header, header_line)
        rows = _numbered_rows(path, text, first_line=header_line + 1)
        values = _parse_table(path, rows, len(header), rig.name)
        return RigSequence(values[:, _column_order(header, rig)], fps=self.config.fps, rig=rig.name)

    def _rig_for_header(self, path: Path, header: list[str], line: int) -> RigSpec:
        from medtalk.core.plugins import get_registry

        rigs = get_registry("rig")
        if self.config.rig is not None:
            rig = rigs.get(self.config.rig)
        else:
            matching = [reg.entry for reg in rigs if sorted(reg.entry.controls) == sorted(header)]
            if len(matching) != 1:
                problem = "match no registered rig" if not matching else "match several rigs"
                raise FileFormatError(
                    f"{path}, line {line}: the header's {len(header)} control names {problem}: "
                    "use a rig's control names (docs/rigs.md) or pass --rig NAME"
                )
            rig = matching[0]
        unknown = [name for name in header if name not in rig.controls]
        if unknown:
            raise FileFormatError(
                f"{path}, line {line}: '{unknown[0]}' is not a control of rig {rig.name}: "
                "use the rig's control names (docs/rigs.md)"
            )
        if sorted(header) != sorted(rig.controls):
            missing = sorted(set(rig.controls) - set(header)) or ["a repeated column"]
            raise FileFormatError(
                f"{path}, line {line}: the header lacks {missing[0]} of rig {rig.name}: "
                "give every control a column"
            )
        return rig


def _column_order(header: list[str], rig: RigSpec) -> list[int]:
    """For each rig control in order, the header column holding it.

    Repeated names (the tongue-tip pair) map to their columns in order of appearance.
    """
    pending: dict[str, list[int]] = {}
    for column, name in enumerate(header):
        pending.setdefault(name, []).append(column)
    return [pending[name].pop(0) for name in rig.controls]


class JsonExporter(Exporter):
    """JSON: rig, fps and one curve of values per control, in rig order."""

    name = "json"
    extensions = (".json",)

    def write(self, sequence: RigSequence, rig: RigSpec, path: Path) -> None:
        document = {
            "format": JSON_FORMAT_ID,
            "version": JSON_VERSION,
            "rig": rig.name,
            "fps": sequence.fps,
            "num_frames": sequence.num_frames,
            "curves": [
                {"control": control, "values": column}
                for control, column in zip(rig.controls, _rounded_columns(sequence.values), strict=True)
            ],
        }
        path.write_text(json.dumps(document, separators=(",", ":")) + "\n", encoding="utf-8")


def _rounded_columns(values: np.ndarray) -> list[list[float]]:
    # numpy's rounding of the float64 values matches Python's round() here and is twice as fast.
    import numpy as np

    return np.round(values.astype(np.float64), DECIMALS).T.tolist()


class JsonImporter(Importer):
    """JSON: rig, fps and one curve of values per control, in rig order (as the json exporter writes)."""

    name = "json"
    extensions = (".json",)

    def read(self, path: Path) -> RigSequence:
        import numpy as np

        from medtalk.core.plugins import get_registry
        from medtalk.core.sequence import RigSequence

        try:
            document = json.loads(_read_text(path))
        except json.JSONDecodeError as error:
            raise FileFormatError(
                f"{path}, line {error.lineno}: not valid JSON ({error.msg}): "
                "write it with 'medtalk export --to json'"
            ) from None
        if not isinstance(document, dict) or document.get("format") != JSON_FORMAT_ID:
            raise FileFormatError(
                f'{path}: not a medtalk rig-sequence JSON (no "format": "{JSON_FORMAT_ID}"): '
                "write it with 'medtalk export --to json'"
            )
        for key, kind in (("rig", str), ("fps", (int, float)), ("curves", list)):
            if not isinstance(document.get(key), kind) or isinstance(document.get(key), bool):
                raise FileFormatError(
                    f"{path}: key '{key}' is missing or of the wrong type: see docs/formats.md"
                )
        try:
            rig = get_registry("rig").get(document["rig"])
        except UnknownComponentError as error:
            raise FileFormatError(f"{path}: {error}") from None
        curves: list[Any] = document["curves"]
        if len(curves) != rig.num_controls:
            raise FileFormatError(
                f"{path}: {len(curves)} curves, but rig {rig.name} has {rig.num_controls} controls: "
                "give one curve per control, in rig order"
            )
        lengths = set()
        for index, (curve, control) in enumerate(zip(curves, rig.controls, strict=True)):
            where = f"{path}: curve {index}"
            if not isinstance(curve, dict) or curve.get("control") != control:
                raise FileFormatError(f"{where} should be control '{control}': keep the curves in rig order")
            values = curve.get("values")
            if not isinstance(values, list):
                raise FileFormatError(f'{where} ({control}) has no list of values: add "values": [...]')
            for frame, value in enumerate(values):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise FileFormatError(
                        f"{where} ({control}), frame {frame}: {value!r} is not a finite number: "
                        "replace it with a real value"
                    )
            lengths.add(len(values))
        if len(lengths) > 1:
            raise FileFormatError(
                f"{path}: curves have different lengths {sorted(lengths)}: give every curve every frame"
            )
        if not lengths or 0 in lengths:
            raise FileFormatError(f"{path}: the curves hold no frames: give at least one frame")
        values = np.array([curve["values"] for curve in curves], dtype=np.float64).T
        if document["fps"] <= 0:
            raise FileFormatError(f"{path}: fps is {document['fps']}: give a positive frame rate")
        return RigSequence(values, fps=float(document["fps"]), rig=rig.name)


@hookimpl
def register_exporters(register):
    register(AuthorsTxtExporter)
    register(CsvExporter)
    register(JsonExporter)


@hookimpl
def register_importers(register):
    register(AuthorsTxtImporter)
    register(CsvImporter)
    register(JsonImporter)

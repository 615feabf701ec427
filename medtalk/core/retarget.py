"""Retargeting between rigs: each target control = clamp(sum of weight x source control + offset).

A mapping is a YAML or JSON file (docs/retargeting.md):

    source_rig: metahuman-174
    target_rig: arkit-52
    targets:
      jawOpen:
        sum: {CTRL_C_jaw-translateY: 1.0}
        offset: 0.0            # optional
      ...

Targets not listed stay 0. A control name that the rig repeats (the MetaHuman tongue-tip pair) means
its first column as a source and all its columns as a target; ``NAME#2`` picks the second column.
Each target column and each source within one sum is listed once; a key repeated in the file is an
error, not a silent override. Built-in mappings ship in ``medtalk/data/mappings/SOURCE__to__TARGET.yaml``.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import os
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medtalk.core.errors import ConfigError, FileFormatError, UnknownComponentError
from medtalk.core.plugins import get_registry

if TYPE_CHECKING:
    import numpy as np

    from medtalk.core.rig import RigSpec
    from medtalk.core.sequence import RigSequence


@dataclass(frozen=True, eq=False)
class RigMapping:
    """A linear map from one rig's controls to another's, clamped to the target's ranges."""

    source: str
    target: str
    weights: np.ndarray  # (target controls, source controls)
    offsets: np.ndarray  # (target controls,)
    origin: str = ""

    def apply(self, sequence: RigSequence) -> RigSequence:
        import numpy as np

        from medtalk.core.sequence import RigSequence

        if sequence.rig != self.source:
            raise ConfigError(
                f"the mapping {self.origin} maps rig {self.source}, "
                f"but the sequence is rig {sequence.rig}: "
                "use a mapping from that rig"
            )
        target = get_registry("rig").get(self.target)
        low = np.array([lo for lo, _ in target.ranges], dtype=np.float32)
        high = np.array([hi for _, hi in target.ranges], dtype=np.float32)
        values = sequence.values @ self.weights.T.astype(np.float32) + self.offsets.astype(np.float32)
        return RigSequence(np.clip(values, low, high), fps=sequence.fps, rig=self.target)


def retarget(sequence: RigSequence, target_rig: str, mapping: RigMapping | None = None) -> RigSequence:
    """``sequence`` on ``target_rig``, through ``mapping`` or the built-in mapping between the two rigs."""
    if sequence.rig == target_rig and mapping is None:
        return sequence
    mapping = mapping if mapping is not None else builtin_mapping(sequence.rig, target_rig)
    if mapping.target != target_rig:
        raise ConfigError(
            f"the mapping {mapping.origin} maps to rig {mapping.target}, not {target_rig}: "
            f"use a mapping to {target_rig}"
        )
    return mapping.apply(sequence)


def builtin_mapping_names() -> list[tuple[str, str]]:
    folder = files("medtalk").joinpath("data", "mappings")
    pairs = []
    for entry in folder.iterdir():
        if entry.name.endswith(".yaml") and "__to__" in entry.name:
            source, target = entry.name[: -len(".yaml")].split("__to__")
            pairs.append((source, target))
    return sorted(pairs)


def builtin_mapping(source_rig: str, target_rig: str) -> RigMapping:
    """The mapping medtalk ships between two rigs."""
    resource = files("medtalk").joinpath("data", "mappings", f"{source_rig}__to__{target_rig}.yaml")
    if not resource.is_file():
        shipped = ", ".join(f"{s} -> {t}" for s, t in builtin_mapping_names()) or "none"
        raise ConfigError(
            f"no built-in mapping from rig {source_rig} to rig {target_rig} (medtalk ships {shipped}): "
            "write one (docs/retargeting.md) and pass --mapping FILE"
        )
    name = f"{source_rig}__to__{target_rig}.yaml"
    return parse_mapping(_parse_document(name, resource.read_text(encoding="utf-8"), ".yaml"), name)


def load_mapping(path: str | os.PathLike[str]) -> RigMapping:
    """Read a user mapping file (YAML or JSON); a bad entry raises one line naming the file and entry."""
    source = Path(path)
    if not source.is_file():
        raise FileFormatError(f"{source}: no such mapping file: check the path")
    try:
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FileFormatError(f"{source}: not a text file: write the mapping as YAML or JSON") from None
    return parse_mapping(_parse_document(str(source), text, source.suffix.lower()), str(source))


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int | None = None) -> None:
        super().__init__(key)
        self.key, self.line = key, line


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _parse_document(name: str, text: str, suffix: str) -> Any:
    if suffix == ".json":
        try:
            return json.loads(text, object_pairs_hook=_unique_pairs)
        except json.JSONDecodeError as error:
            raise FileFormatError(
                f"{name}, line {error.lineno}: not valid JSON ({error.msg}): fix the syntax"
            ) from None
        except _DuplicateKey as duplicate:
            raise FileFormatError(
                f"{name}: '{duplicate.key}' appears twice in one object: list each key once"
            ) from None
    import yaml

    try:
        return yaml.load(text, Loader=_yaml_loader())  # a SafeLoader subclass
    except _DuplicateKey as duplicate:
        raise FileFormatError(
            f"{name}, line {duplicate.line}: '{duplicate.key}' appears twice in one mapping: "
            "list each key once"
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "syntax error"
        raise FileFormatError(f"{name}{where}: not valid YAML ({problem}): fix the syntax") from None


@functools.cache
def _yaml_loader() -> type:
    """PyYAML's SafeLoader, refusing repeated keys and reading ``1e-3`` as a number (as YAML 1.2 does)."""
    import re

    import yaml

    class MappingLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            self.flatten_mapping(node)
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, (str, int, float)) or key is None:
                    if key in seen:
                        raise _DuplicateKey(key, key_node.start_mark.line + 1)
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    MappingLoader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
    return MappingLoader


def parse_mapping(document: Any, name: str) -> RigMapping:
    """The mapping a parsed YAML/JSON ``document`` describes; ``name`` (the file) starts every error."""
    import numpy as np

    if not isinstance(document, dict):
        raise FileFormatError(
            f"{name}: a mapping needs the keys source_rig, target_rig and targets: see docs/retargeting.md"
        )
    for key in ("source_rig", "target_rig", "targets"):
        if key not in document:
            raise FileFormatError(f"{name}: missing '{key}': see docs/retargeting.md")
    unknown_keys = sorted(set(document) - {"source_rig", "target_rig", "targets", "description"})
    if unknown_keys:
        raise FileFormatError(
            f"{name}: unknown key '{unknown_keys[0]}': "
            "the keys are source_rig, target_rig, targets, description"
        )
    rigs = get_registry("rig")
    found = []
    for key in ("source_rig", "target_rig"):
        try:
            found.append(rigs.get(str(document[key])))
        except UnknownComponentError as error:
            raise FileFormatError(f"{name}, {key}: {error}") from None
    source_rig, target_rig = found
    targets = document["targets"]
    if not isinstance(targets, dict):
        raise FileFormatError(
            f"{name}: 'targets' must map target control names to entries: see docs/retargeting.md"
        )
    if not targets:
        raise FileFormatError(f"{name}: 'targets' is empty: list at least one target control")
    weights = np.zeros((target_rig.num_controls, source_rig.num_controls), dtype=np.float64)
    offsets = np.zeros(target_rig.num_controls, dtype=np.float64)
    set_by: dict[int, str] = {}
    for target_name, entry in targets.items():
        where = f"{name}, target '{target_name}'"
        rows = _columns(target_rig, str(target_name), where, as_target=True)
        for row in rows:
            if row in set_by:
                raise FileFormatError(
                    f"{where}: the same column as target '{set_by[row]}': list each target column once"
                )
            set_by[row] = str(target_name)
        if not isinstance(entry, dict) or not set(entry) <= {"sum", "offset"}:
            raise FileFormatError(
                f"{where}: an entry is {{sum: {{SOURCE: WEIGHT, ...}}, offset: NUMBER}}: "
                "see docs/retargeting.md"
            )
        offset = _number(entry.get("offset", 0.0), f"{where}: offset")
        sources = entry.get("sum", {})
        if not isinstance(sources, dict):
            raise FileFormatError(f"{where}: 'sum' must map source control names to weights")
        used: dict[int, str] = {}
        for source_name, weight in sources.items():
            source_where = f"{where}, source '{source_name}'"
            (column,) = _columns(source_rig, str(source_name), source_where, as_target=False)
            if column in used:
                raise FileFormatError(
                    f"{source_where}: the same column as source '{used[column]}': list each source once"
                )
            used[column] = str(source_name)
            value = _number(weight, f"{source_where}: weight")
            for row in rows:
                weights[row, column] = value
        for row in rows:
            offsets[row] = offset
    return RigMapping(source_rig.name, target_rig.name, weights, offsets, origin=name)


def _columns(rig: RigSpec, reference: str, where: str, *, as_target: bool) -> tuple[int, ...]:
    control, _, occurrence = reference.partition("#")
    columns = [i for i, name in enumerate(rig.controls) if name == control]
    if not columns:
        close = difflib.get_close_matches(control, rig.controls, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ": see docs/rigs.md for its controls"
        raise FileFormatError(f"{where}: not a control of rig {rig.name}{hint}")
    if occurrence:
        if not occurrence.isdigit() or not 1 <= int(occurrence) <= len(columns):
            raise FileFormatError(
                f"{where}: rig {rig.name} has {len(columns)} column(s) named {control}: "
                f"use #1..#{len(columns)}"
            )
        return (columns[int(occurrence) - 1],)
    return tuple(columns) if as_target else (columns[0],)


def _number(value: Any, where: str) -> float:
    """``value`` as a float, or one line naming ``where`` and what was written instead of a number."""
    if value is None or isinstance(value, bool):
        shown = "null" if value is None else str(value).lower()
    elif isinstance(value, (int, float)):
        if math.isfinite(value):
            return float(value)
        raise FileFormatError(f"{where} {value} is not a finite number: write a plain number such as 0.5")
    elif isinstance(value, str):
        shown = repr(value)
    else:
        shown = "a mapping" if isinstance(value, dict) else f"a {type(value).__name__}"
    raise FileFormatError(f"{where} {shown} is not a number: write a plain number such as 0.5")

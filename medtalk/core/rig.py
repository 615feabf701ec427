"""Rigs: the ordered controls a sequence animates, their value ranges and named index sets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from medtalk.core.errors import ConfigError, PluginError


@dataclass(frozen=True)
class RigSpec:
    """A named rig: control names in order, a (min, max) range per control, and named index sets.

    Names may repeat (the authors' MetaHuman layout keeps the tongue-tip pair twice); a column is
    identified by its index, never by its name alone.
    """

    name: str
    controls: tuple[str, ...]
    ranges: tuple[tuple[float, float], ...]
    sets: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "controls", tuple(self.controls))
        object.__setattr__(self, "ranges", tuple((float(lo), float(hi)) for lo, hi in self.ranges))
        object.__setattr__(
            self, "sets", MappingProxyType({k: tuple(int(i) for i in v) for k, v in self.sets.items()})
        )
        if not self.name:
            raise PluginError("a RigSpec needs a non-empty name")
        if not self.controls:
            raise PluginError(f"rig '{self.name}' has no controls: give at least one control name")
        if len(self.ranges) != len(self.controls):
            raise PluginError(
                f"rig '{self.name}' has {len(self.controls)} controls but {len(self.ranges)} ranges: "
                "give one (min, max) per control"
            )
        for control, (lo, hi) in zip(self.controls, self.ranges, strict=True):
            if not lo < hi:
                raise PluginError(
                    f"rig '{self.name}', control '{control}': range ({lo}, {hi}) needs min < max"
                )
        for set_name, indices in self.sets.items():
            bad = [i for i in indices if not 0 <= i < len(self.controls)]
            if bad:
                raise PluginError(
                    f"rig '{self.name}', set '{set_name}': "
                    f"indices {bad} are outside 0..{len(self.controls) - 1}"
                )

    @property
    def num_controls(self) -> int:
        return len(self.controls)

    def index_set(self, set_name: str) -> tuple[int, ...]:
        """The control indices of a named set (``lip``, ``emotion``, ``upper``, ``intensity`` ...)."""
        try:
            return self.sets[set_name]
        except KeyError:
            known = ", ".join(sorted(self.sets)) or "none"
            raise ConfigError(
                f"rig '{self.name}' has no index set '{set_name}': its sets are {known}"
            ) from None

    def indices_of(self, names: Sequence[str]) -> tuple[int, ...]:
        """Indices of the given control names (every column of a repeated name)."""
        positions: dict[str, list[int]] = {}
        for i, control in enumerate(self.controls):
            positions.setdefault(control, []).append(i)
        unknown = [n for n in names if n not in positions]
        if unknown:
            raise ConfigError(f"rig '{self.name}' has no control {unknown[0]!r}: check the spelling")
        return tuple(i for n in names for i in positions[n])

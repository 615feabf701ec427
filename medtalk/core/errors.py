"""One hierarchy for every error medtalk raises on purpose.

Each message is a single line that names the problem and the fix; the CLI prints it as it is and exits
with ``exit_code``. Anything that is not a ``MedtalkError`` is an internal error (exit 1).
"""

from __future__ import annotations


class MedtalkError(Exception):
    """Base of every deliberate medtalk error: one line, naming the problem and the fix."""

    exit_code = 2


class ConfigError(MedtalkError):
    """A component config or a config file is invalid."""


class UnknownComponentError(ConfigError):
    """No component of that kind has that name."""


class DuplicateComponentError(MedtalkError):
    """Two plugins registered the same name for the same kind."""


class PluginError(MedtalkError):
    """A plugin broke the contract of a hook (wrong type, missing name, loose Config)."""


class InputError(MedtalkError):
    """A file or value the user gave cannot be used."""


class FileFormatError(InputError):
    """A rig sequence or mapping file is malformed."""


class AudioError(InputError):
    """An audio file cannot be used."""


class OutputError(MedtalkError):
    """An output file cannot be written where the user asked."""


class MedtalkWarning(UserWarning):
    """Something worked but deserves the user's attention (the CLI prints it as one line)."""

"""Component configs: one-line validation messages, and default configs as commented YAML."""

from __future__ import annotations

import difflib
import json
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined


def format_validation_error(subject: str, config: type[BaseModel], error: ValidationError) -> str:
    """Turn a pydantic error into one line: ``invalid config for exporter 'csv': unknown field 'x' ...``."""
    valid = list(config.model_fields)
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(root)"
        if item["type"] == "extra_forbidden":
            close = difflib.get_close_matches(field, valid, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"unknown field '{field}'{hint}")
        elif item["type"] == "missing":
            problems.append(f"missing field '{field}'")
        else:
            problems.append(f"field '{field}': {item['msg'][0].lower()}{item['msg'][1:]}")
    fields = ", ".join(valid) if valid else "none"
    return f"invalid config for {subject}: {'; '.join(problems)}; its fields are: {fields}"


def default_config(config: type[BaseModel]) -> dict[str, Any]:
    """Field name -> default value (``None`` where the field is required)."""
    values: dict[str, Any] = {}
    for name, field in config.model_fields.items():
        if field.default is not PydanticUndefined:
            default = field.default
        elif field.default_factory is not None:
            default = field.default_factory()
        else:
            default = None
        values[name] = default.model_dump(mode="json") if isinstance(default, BaseModel) else default
    return values


def default_config_yaml(type_name: str, config: type[BaseModel]) -> str:
    """The component's default config as YAML, each field preceded by its description."""
    import yaml

    defaults = default_config(config)
    lines = [f"type: {type_name}"]
    for name, field in config.model_fields.items():
        required = field.is_required()
        plain = json.loads(json.dumps(defaults[name], default=str))
        rendered = yaml.safe_dump({name: plain}, default_flow_style=True, width=1000)
        rendered = rendered.strip()[1:-1]  # drop the braces of the flow mapping
        lines.append(f"# {field.description}{' (required)' if required else ''}")
        lines.append(rendered)
    return "\n".join(lines) + "\n"

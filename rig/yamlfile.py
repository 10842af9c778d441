"""Every YAML input the rig reads (farm file, gate policy, lab config) loads and validates
the same way, so every mistake reads the same: `file:LINE: key.path: what is wrong`.

Loading refuses what YAML would silently accept: a key given twice (YAML keeps the last),
keys that are not text, a file that is not UTF-8. Validation is a pydantic model per file
kind; its first error is reported at the line of the key it concerns.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from rig.errors import InputError
from rig.inputs import MAX_TEXT, read_input

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlDocument:
    """A loaded document and the line (1-based) of every key and list item, by path."""

    where: str
    data: Any
    lines: Mapping[Loc, int]

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """The line of `loc`, or of the closest enclosing key that has one."""
        path = tuple(loc)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)

    def error(self, loc: Sequence[str | int], message: str) -> InputError:
        line = self.line_of(loc)
        at = f":{line}" if line is not None else ""
        key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
        return InputError(f"{self.where}{at}: {key + ': ' if key else ''}{message}")


def load_yaml(path: Path, what: str) -> YamlDocument:
    """Read and parse `path` (a `what`, e.g. "farm file"); every problem is one InputError line."""
    raw = read_input(path, what, limit=MAX_TEXT)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: {what} is not UTF-8 text") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, where: str) -> YamlDocument:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        raise _yaml_error(error, where) from None
    lines: dict[Loc, int] = {}
    try:
        data = _build(node, (), lines, where)
    except yaml.YAMLError as error:
        raise _yaml_error(error, where) from None
    return YamlDocument(where, data, lines)


def validate(model: type[M], document: YamlDocument) -> M:
    """The document as `model`; its first validation error as one line at the key's line."""
    try:
        return model.model_validate(document.data)
    except ValidationError as error:
        first = error.errors()[0]
        loc = tuple(part for part in first["loc"] if isinstance(part, str | int))
        raise document.error(loc, plain_message(first)) from None


# pydantic's wording for the mistakes people make in hand-written YAML, said plainly.
_PLAIN = {
    "extra_forbidden": "unknown key",
    "missing": "missing (required)",
    "model_type": "expected a mapping",
    "dict_type": "expected a mapping",
    "list_type": "expected a list",
    "string_type": "expected text",
    "bool_type": "expected true or false",
    "int_type": "expected a whole number",
    "float_type": "expected a number",
}


def plain_message(error: Mapping[str, Any]) -> str:
    """One pydantic error as a farm-file author would want it said."""
    kind = str(error["type"])
    given = error.get("input")
    shown = f", got {given!r}" if not isinstance(given, dict | list) and kind != "missing" else ""
    if kind in _PLAIN:
        return _PLAIN[kind] + ("" if kind in ("extra_forbidden", "missing") else shown)
    if kind == "value_error":  # the model's own validators already name the value
        return str(error["msg"]).removeprefix("Value error, ")
    message = str(error["msg"])
    return f"{message[:1].lower()}{message[1:]}{shown}"


def _build(node: yaml.Node | None, path: Loc, lines: dict[Loc, int], where: str) -> Any:
    """Plain Python values from a composed node, noting lines and refusing duplicate keys."""
    if node is None:
        return None
    lines.setdefault(path, node.start_mark.line + 1)  # a key's own line wins over its value's
    if isinstance(node, yaml.MappingNode):
        built: dict[Hashable, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, where) if isinstance(key_node, yaml.ScalarNode) else key_node.id
            if not isinstance(key, str) or not isinstance(key_node, yaml.ScalarNode):
                line = key_node.start_mark.line + 1
                raise InputError(f"{where}:{line}: {_dotted(path)}key {key!r} must be text")
            if key in built:
                line = key_node.start_mark.line + 1
                first = lines[(*path, key)]
                raise InputError(f"{where}:{line}: {_dotted(path)}{key}: given twice (first on line {first})")
            lines[(*path, key)] = key_node.start_mark.line + 1
            built[key] = _build(value_node, (*path, key), lines, where)
        return built
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, index), lines, where) for index, item in enumerate(node.value)]
    return _scalar(node, where)


def _scalar(node: yaml.Node, where: str) -> Any:
    """A scalar's value with YAML's own typing rules (true, 0x10, 1e3, null, ...)."""
    try:
        return yaml.SafeLoader("").construct_object(node, deep=True)
    except yaml.YAMLError as error:
        raise _yaml_error(error, where) from None


def _dotted(path: Loc) -> str:
    return "".join(f"{part}." for part in path)


def _yaml_error(error: yaml.YAMLError, where: str) -> InputError:
    mark = getattr(error, "problem_mark", None)
    line = f":{mark.line + 1}" if mark is not None else ""
    problem = getattr(error, "problem", None) or "invalid YAML"
    return InputError(f"{where}{line}: {problem}")

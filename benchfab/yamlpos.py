"""YAML loading that remembers where every value came from.

Spec errors must point at ``file:line``. PyYAML's composer keeps a start mark
on every node, so we compose the node tree, build the plain Python value from
it ourselves, and record the line of each path (tuple of keys and indexes) on
the way. Duplicate keys, which PyYAML silently lets the last one win, are an
error here: in a sweep spec they are almost always a copy-paste mistake.
"""

from __future__ import annotations

from typing import Any

import yaml

Path = tuple[Any, ...]


class YamlPositionError(ValueError):
    """A YAML document is malformed; carries the 1-based line."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def load_with_lines(text: str) -> tuple[Any, dict[Path, int]]:
    """Parse one YAML document; return (value, {path: 1-based line})."""
    try:
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:  # the reader rejects control characters up front
        raise YamlPositionError(f"YAML error: {exc}".splitlines()[0], 1) from exc
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else None
            problem = exc.problem or exc.context or "malformed YAML"
            raise YamlPositionError(f"YAML syntax error: {problem}", line) from exc
        except yaml.YAMLError as exc:
            mark = getattr(exc, "position", None)
            line = text.count("\n", 0, mark) + 1 if isinstance(mark, int) else None
            raise YamlPositionError(f"YAML error: {exc}".splitlines()[0], line) from exc
        if node is None:
            return None, {}
        lines: dict[Path, int] = {}
        value = _build(loader, node, (), lines, depth=0)
        return value, lines
    finally:
        loader.dispose()


_MAX_DEPTH = 64  # deeper than any real spec; stops pathological input before RecursionError


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: Path, lines: dict[Path, int], depth: int) -> Any:
    line = node.start_mark.line + 1
    lines[path] = line
    if depth > _MAX_DEPTH:
        raise YamlPositionError(f"nesting deeper than {_MAX_DEPTH} levels", line)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves YAML merge keys (<<: *anchor)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(loader, key_node)
            try:
                duplicate = key in result
            except TypeError:
                raise YamlPositionError(f"unhashable mapping key {key!r}", key_node.start_mark.line + 1) from None
            if duplicate:
                raise YamlPositionError(f"duplicate key {key!r}", key_node.start_mark.line + 1)
            result[key] = _build(loader, value_node, path + (key,), lines, depth + 1)
            lines[path + (key,)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, child, path + (i,), lines, depth + 1) for i, child in enumerate(node.value)]
    return _scalar(loader, node)


def _scalar(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise YamlPositionError("a mapping key must be a plain value", node.start_mark.line + 1)
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise YamlPositionError(f"cannot read value: {exc}", node.start_mark.line + 1) from exc
    except (ValueError, OverflowError) as exc:  # e.g. timestamps out of range
        raise YamlPositionError(f"cannot read value: {exc}", node.start_mark.line + 1) from exc

"""YAML loading that remembers where every value came from.

Spec errors must point at ``file:line``. PyYAML's composer keeps a start mark
on every node, so we compose the node tree, build the plain Python value from
it ourselves, and record the line of each path (tuple of keys and indexes) on
the way. Duplicate keys, which PyYAML silently lets the last one win, are an
error here: in a sweep spec they are almost always a copy-paste mistake.

PyYAML's own messages read like its parser ("expected <block end>, but found
'<block mapping start>'"); ``explain_yaml_error`` says the same in plain words,
with the line and a fix.

The YAML benchfab writes (manifests, specs) goes through ``plain_yaml``: what a person
writes by hand, without the anchors and aliases (``&id001`` / ``*id001``) PyYAML emits
for an object that appears twice.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

Path = tuple[Any, ...]

_GENERIC_FIX = "check this line's indentation (spaces only), its ':' after keys, and its quotes and brackets"


class _PlainDumper(yaml.SafeDumper):  # type: ignore[misc]  # PyYAML has no type information here
    def ignore_aliases(self, data: Any) -> bool:
        return True  # a shared object is written out again where it recurs


def plain_yaml(data: Any, **options: Any) -> str:
    """``yaml.safe_dump(data, **options)`` without anchors or aliases."""
    return str(yaml.dump(data, Dumper=_PlainDumper, **options))


class YamlPositionError(ValueError):
    """A YAML document is malformed; carries the 1-based line, a fix and, when known,
    the path of the key at fault."""

    def __init__(self, message: str, line: int | None, hint: str | None = None, path: Path | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.hint = hint
        self.path = path


def load_with_lines(text: str, *, problems: list[YamlPositionError] | None = None) -> tuple[Any, dict[Path, int]]:
    """Parse one YAML document; return (value, {path: 1-based line}).

    A syntax error stops the parse and raises YamlPositionError. A duplicate key
    is raised too, unless ``problems`` is a list: then it is appended there, the
    first value is kept and the parse goes on, so every duplicate is reported.
    """
    try:
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:  # the reader rejects control characters up front
        raise explain_yaml_error(exc, text) from exc
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as exc:
            raise explain_yaml_error(exc, text) from exc
        if node is None:
            return None, {}
        lines: dict[Path, int] = {}
        value = _build(loader, node, (), lines, 0, problems, _Budget())
        return value, lines
    finally:
        loader.dispose()


# ---------------------------------------------------------------------------
# PyYAML's problems in plain words


def explain_yaml_error(exc: yaml.YAMLError, text: str) -> YamlPositionError:
    """PyYAML's error as one plain-words YamlPositionError: what, line, fix."""
    if isinstance(exc, yaml.reader.ReaderError):
        position = exc.position if isinstance(exc.position, int) else 0
        line: int | None = text.count("\n", 0, position) + 1
        code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        return YamlPositionError(
            f"not a text file: character U+{code:04X} at line {line} is a control character",
            line,
            "save the spec as UTF-8 YAML text, without control characters",
        )
    if not isinstance(exc, yaml.MarkedYAMLError):
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return YamlPositionError(f"YAML syntax error: {first}", None, _GENERIC_FIX)
    problem = exc.problem or ""
    context = exc.context or ""
    problem_line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
    context_line = exc.context_mark.line + 1 if exc.context_mark is not None else None
    line = problem_line or context_line
    what, fix = _explain(problem, context, problem_line, context_line, exc, text)
    if context_line and (problem == "could not find expected ':'" or "quoted scalar" in context):
        line = context_line  # where the key or the quote starts, not where PyYAML gave up
    return YamlPositionError(f"YAML syntax error: {what}", line, fix)


def _line_text(text: str, line: int | None) -> str:
    if line is None:
        return ""
    lines = text.splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _explain(
    problem: str, context: str, line: int | None, context_line: int | None, exc: yaml.MarkedYAMLError, text: str
) -> tuple[str, str]:
    # The checks run in this order, first match wins: what the problem names
    # (a token, a key), then what PyYAML was parsing, then the rest.
    quoted = re.findall(r"'([^']*)'", problem)
    token = quoted[-1] if quoted else ""
    return (_explain_token(problem, token)
            or _explain_key(problem, context_line, text)
            or _explain_context(problem, context, context_line, exc, token)
            or _explain_rest(problem, context, token))


def _explain_token(problem: str, token: str) -> tuple[str, str] | None:
    if "'\\t'" in problem:
        return "a tab character; YAML indents with spaces only", "replace the tab with spaces"
    if "that cannot start any token" in problem:
        return (f"a value cannot start with {token}", f"put the value in quotes: \"{token}...\"")

    if problem.startswith("expected <block end>"):
        return _block_end(token)
    if problem.startswith("expected the node content") and token in (",", "]", "}", ":", "?", "-"):
        return (f"a value is missing before '{token}'", f"write the value, or remove the stray '{token}'")
    return None


def _block_end(token: str) -> tuple[str, str]:
    """'expected <block end>': what PyYAML found instead of the block's next key."""
    if token in ("<block mapping start>", "<block sequence start>", "<scalar>", "?"):  # '?': a key
        return ("a key at the wrong indentation or a missing ':'",
                "indent this line exactly like the other keys of its block (spaces only), "
                "and check the line above ends its key with ':'")
    if token in ("-", "<block entry>"):
        return ("a list entry '- ...' where a key was expected",
                "indent the '- ' entries under the key they belong to (e.g. under tests:)")
    if token in ("]", "}"):
        return (f"a '{token}' that closes nothing",
                f"remove it, or open the list/mapping with '{'[' if token == ']' else '{'}' first")
    if token == ",":
        return ("a ',' outside [ ] or { }", "remove it, or put the items inside brackets: key: [a, b]")
    if token == ":":
        return ("a ':' with no key before it", "write the key before the ':', or remove the ':'")
    if token in ("[", "{"):
        return (f"a '{token}' where this block expects a key",
                f"put the {'list' if token == '[' else 'mapping'} after a key (key: {token}...), or quote the value")
    if token in ("<tag>", "<anchor>", "<alias>"):
        mark = {"<tag>": "!", "<anchor>": "&", "<alias>": "*"}[token]
        return (f"a '{mark}' where this block expects a key", f"remove the '{mark}', or quote the value")
    return ("unexpected content at this indentation", _GENERIC_FIX)


def _explain_key(problem: str, context_line: int | None, text: str) -> tuple[str, str] | None:
    if problem == "mapping values are not allowed here":
        return ("a ':' where no key can start",
                "check the indentation of this line, a missing ':' on the line above, "
                "or quote a value that holds ': '")
    if problem == "could not find expected ':'":
        key = _line_text(text, context_line).strip()
        key = key if len(key) <= 30 else key[:27] + "..."
        return (f"{key!r} is a key without ':'" if key else "a key without ':'",
                "write it as 'key: value', or indent it under the key above")
    if problem in ("sequence entries are not allowed here", "mapping keys are not allowed here"):
        return ("a '- ' entry where a value was expected",
                "put the list on its own lines under the key, indented, or write it as [a, b]")
    return None


def _explain_context(
    problem: str, context: str, context_line: int | None, exc: yaml.MarkedYAMLError, token: str
) -> tuple[str, str] | None:
    if "quoted scalar" in context:
        quote = '"'
        if exc.context_mark is not None and exc.context_mark.buffer:
            char = exc.context_mark.buffer[exc.context_mark.pointer:exc.context_mark.pointer + 1]
            quote = char if char in ("'", '"') else quote
        if "unknown escape character" in problem:
            return (f"unknown escape \\{token} in a double-quoted string",
                    "use single quotes, or write \\\\ for a backslash")
        return (f"this {quote} quote is never closed", f"add the closing {quote} at the end of the value")

    if context in ("while parsing a flow sequence", "while parsing a flow mapping"):
        open_, close = ("[", "]") if "sequence" in context else ("{", "}")
        opened = f" opened on line {context_line}" if context_line else ""
        return (f"the '{open_}'{opened} is not closed before this line",
                f"close it with '{close}' on the same line, or separate its items with ','")
    if "anchor" in context or "alias" in context:
        mark = "&" if "anchor" in context else "*"
        return (f"'{mark}' must be followed by a name (a YAML {'anchor' if mark == '&' else 'alias'})",
                f"quote the value if the '{mark}' is part of the text")
    if "block scalar" in context:
        return ("'|' or '>' starts a block of text: nothing but a comment may follow it on its line",
                "quote the value if it holds '|' or '>'")
    if "directive" in context:
        return ("a line starting with '%' is read as a YAML directive", "quote the value or remove the '%'")
    if "tag" in context:
        return ("a '!' starts a YAML tag here", "quote the value if it holds '!'")
    if problem.startswith("expected '<document start>'"):
        return ("a line starting with '%' is read as a YAML directive", "quote the value or remove the line")
    if context == "while parsing a flow node" or "found '<stream end>'" in problem:
        return ("the file ends inside a '[...]' list or '{...}' mapping",
                "close every '[' with ']' and every '{' with '}'")
    return None


def _explain_rest(problem: str, context: str, token: str) -> tuple[str, str]:
    if "expected a single document" in context:
        return ("a second YAML document ('---')", "keep one document per spec file: remove the '---' line and what follows")
    if problem.startswith("found undefined alias"):
        return (f"*{token} refers to no anchor &{token}", f"define &{token} before using *{token}, or remove the '*'")
    if problem.startswith("found duplicate anchor"):
        return ("an anchor '&' name is defined twice", "give each anchor its own name")
    return (problem or context or "malformed YAML", _GENERIC_FIX)


# ---------------------------------------------------------------------------

_MAX_DEPTH = 64  # deeper than any real spec; stops pathological input before RecursionError
# Values built from one document, aliases expanded. A large real spec holds a few
# thousand; aliases can make a few hundred bytes expand to billions ("billion
# laughs"), which the depth cap alone does not stop, since the bomb is wide, not deep.
MAX_VALUES = 100_000


class _Budget:
    """How many more values the document may expand to."""

    def __init__(self, limit: int = MAX_VALUES) -> None:
        self.left = limit

    def spend(self, node: yaml.Node) -> None:
        self.left -= 1
        if self.left < 0:
            raise YamlPositionError(
                f"the document expands to more than {MAX_VALUES:,} values (YAML aliases '*name' repeat "
                "what their anchor '&name' marks, and nested aliases multiply)",
                node.start_mark.line + 1,
                "write the values out, or use fewer and shallower aliases",
            )


def _build(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    path: Path,
    lines: dict[Path, int],
    depth: int,
    problems: list[YamlPositionError] | None,
    budget: _Budget,
) -> Any:
    budget.spend(node)
    line = node.start_mark.line + 1
    lines[path] = line
    if depth > _MAX_DEPTH:
        raise YamlPositionError(f"nesting deeper than {_MAX_DEPTH} levels", line, "flatten the spec")
    if isinstance(node, yaml.MappingNode):
        result = _merged(loader, node, path, lines, depth, problems, budget)
        written: set[Any] = set()  # keys this mapping writes itself: only these can be duplicates
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                continue
            key = _scalar(loader, key_node)
            key_line = key_node.start_mark.line + 1
            try:
                duplicate = key in written
            except TypeError:
                raise YamlPositionError(f"a mapping key cannot be {key!r}", key_line,
                                        "use a plain word as the key") from None
            written.add(key)
            if duplicate:
                first = lines.get(path + (key,))
                error = YamlPositionError(
                    f"duplicate key {key!r}" + (f" (first on line {first})" if first else ""),
                    key_line,
                    "keep only one of them",
                    path + (key,),
                )
                if problems is None:
                    raise error
                problems.append(error)
                continue
            result[key] = _build(loader, value_node, path + (key,), lines, depth + 1, problems, budget)
            lines[path + (key,)] = key_line
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, child, path + (i,), lines, depth + 1, problems, budget)
                for i, child in enumerate(node.value)]
    return _scalar(loader, node)


_MERGE = "tag:yaml.org,2002:merge"


def _merged(loader: yaml.SafeLoader, node: yaml.MappingNode, path: Path, lines: dict[Path, int], depth: int,
            problems: list[YamlPositionError] | None, budget: _Budget) -> dict[Any, Any]:
    """What the mapping's merge keys (``<<: *defaults``, ``<<: [*a, *b]``) bring, as YAML 1.1
    defines it: of several merged mappings the first has a key's value; the mapping's own keys
    (added by the caller) override them all. Built here rather than by PyYAML's flatten_mapping,
    which let the last of a list win in some documents."""
    merged: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        if key_node.tag != _MERGE:
            continue
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                raise YamlPositionError("a merge key '<<' must point at a mapping", key_node.start_mark.line + 1,
                                        "use <<: *name where &name marks a mapping (or a list of them)")
            source_lines: dict[Path, int] = {}
            built = _build(loader, source, path, source_lines, depth + 1, problems, budget)
            for key, value in built.items():
                if key in merged:
                    continue
                merged[key] = value
                # where the winning value was written (errors point there)
                lines.update({p: n for p, n in source_lines.items() if p[:len(path) + 1] == path + (key,)})
    return merged


def _scalar(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    line = node.start_mark.line + 1
    if not isinstance(node, yaml.ScalarNode):
        raise YamlPositionError("a mapping key must be a plain value, not a list or mapping", line,
                                "write the key as a plain word followed by ':'")
    try:
        return loader.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        if "could not determine a constructor" in str(exc):
            raise YamlPositionError(f"unknown YAML tag {tag} on {node.value!r}", line,
                                    "remove the '!' tag, or quote the value") from None
        raise YamlPositionError(f"cannot read {node.value!r} as {tag}", line,
                                "remove the '!!' tag, or quote the value") from None
    except yaml.YAMLError as exc:
        raise YamlPositionError(f"cannot read the value {node.value!r}: {exc}", line, "quote the value") from exc
    except (ValueError, OverflowError) as exc:  # e.g. a date out of range, or '!!int abc'
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise YamlPositionError(f"cannot read {node.value!r} as {tag} ({exc})", line,
                                "quote it to keep it as text") from exc

"""Load YAML into plain Python objects plus a map from each value's path to its line.

YAML 1.2 (ruamel.yaml), not PyYAML's 1.1: the suite format's own example has
``{role: assistant, content: How long has this been going on?}``, whose ``?``
PyYAML rejects inside a flow mapping; 1.2 also keeps ``yes``/``no`` as strings.

Any bytes at all give data or one :class:`SuiteError` with ``file:line``: the file's size,
its nesting depth and the values its aliases expand to are bounded (:mod:`rmcheck.limits`),
and keys must be strings (a suite is JSON-shaped: it is validated by a JSON Schema).
"""
from __future__ import annotations

import codecs
import re
import warnings
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML, events, nodes, tokens
from ruamel.yaml.error import MarkedYAMLError, ReusedAnchorWarning, YAMLError

from ..errors import SuiteError
from ..limits import SUITE_BYTES, YAML_DEPTH, YAML_NODES

#: A path into a loaded document: mapping keys and sequence indices.
DocPath = tuple[Any, ...]

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_BRACKETS = re.compile(r"[\[\]{}]")


def load_with_lines(path: Path) -> tuple[Any, dict[DocPath, int]]:
    """Parse ``path``; return its data and the 1-based line of every node, keyed by path."""
    text = read_suite_text(path)
    yaml = YAML(typ="safe", pure=True)
    lines: dict[DocPath, int] = {}
    try:
        _check_flow_depth(yaml, text, path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ReusedAnchorWarning)
            node = yaml.compose(text)
        _restate(caught, path)
    except RecursionError:
        raise SuiteError(f"nesting deeper than {YAML_DEPTH.value} levels", where=f"{path}:{_too_deep(yaml, text)}",
                         fix="A suite needs a few levels; check the brackets") from None
    except YAMLError as exc:
        raise _yaml_error(exc, text, path) from None
    if node is None:
        return None, lines
    return _Builder(yaml.constructor, path, lines).build(node, (), 0), lines


class SuiteWarning(UserWarning):
    """Something in a suite file that loads but is likely a mistake (a reused anchor)."""


def _restate(caught: list[warnings.WarningMessage], path: Path) -> None:
    """ruamel's multi-line warning about a reused anchor (naming "<unicode string>") as one warning located at
    the suite's file and line, so it prints as ``FILE:LINE: SuiteWarning: ...``; other warnings as they were."""
    for warning in caught:
        if not issubclass(warning.category, ReusedAnchorWarning):
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
            continue
        text = str(warning.message)
        name = re.search(r"duplicate anchor '([^']*)'", text)
        first, second = (re.findall(r"line (\d+), column", text) + ["0", "0"])[:2]
        message = (f"the anchor &{name.group(1) if name else '?'} is defined again (first at line {first}); aliases "
                   "below refer to this one. Give each anchor its own name")
        warnings.warn_explicit(SuiteWarning(message), SuiteWarning, str(path), int(second))


def read_suite_text(path: Path) -> str:
    """The text of a suite file: at most ``max_suite_bytes``, UTF-8 (a BOM is allowed)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(SUITE_BYTES.value + 1)
    except OSError as exc:
        raise SuiteError(f"cannot read suite: {exc.strerror or exc}", where=str(path)) from None
    SUITE_BYTES.check(len(data), "suite file size", where=str(path), error=SuiteError)
    if data.startswith(_UTF16_BOMS):
        raise SuiteError("the file is UTF-16, not UTF-8", where=f"{path}:1", fix="Save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SuiteError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} cannot be decoded)", where=f"{path}:{line}",
                         fix="Save the file as UTF-8 (suites are text, not binary)") from None


def _yaml_error(exc: YAMLError, text: str, path: Path) -> SuiteError:
    """One ``file:line`` error for anything the YAML reader, scanner, parser or composer rejects."""
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context
        line = mark.line + 1 if mark else 1
    else:  # the reader's errors carry a character position, not a mark
        position = getattr(exc, "position", None)
        line = text.count("\n", 0, position) + 1 if isinstance(position, int) else 1
        character = getattr(exc, "character", None)
        problem = (f"character U+{character:04X} is not allowed in YAML" if isinstance(character, int)
                   else str(exc).splitlines()[0])
    return SuiteError(f"invalid YAML: {problem}", where=f"{path}:{line}",
                      fix="Check the indentation and quoting on that line")


def _check_flow_depth(yaml: YAML, text: str, path: Path) -> None:
    """Refuse flow nesting (``[[[...``) past ``max_yaml_depth`` before composing: the scanner's work grows
    with the square of the flow depth. Counting brackets is cheap and can only over-count (brackets in
    strings), so only a count over the limit is confirmed with the scanner's tokens."""
    limit, depth, deepest = YAML_DEPTH.value, 0, 0
    for bracket in _BRACKETS.findall(text):
        depth = depth + 1 if bracket in "[{" else max(0, depth - 1)
        deepest = max(deepest, depth)
    if deepest <= limit:
        return
    depth = 0
    for token in yaml.scan(text):
        if isinstance(token, (tokens.FlowSequenceStartToken, tokens.FlowMappingStartToken)):
            depth += 1
            if depth > limit:
                raise SuiteError(f"nesting deeper than {limit} levels", where=f"{path}:{token.start_mark.line + 1}",
                                 fix=f"A suite needs a few levels: check the brackets (the limit is {YAML_DEPTH.name}, "
                                     f"raised with {YAML_DEPTH.variable}=N)")
        elif isinstance(token, (tokens.FlowSequenceEndToken, tokens.FlowMappingEndToken)):
            depth -= 1


def _too_deep(yaml: YAML, text: str) -> int:
    """The line where nesting first passes ``max_yaml_depth`` (the parser is not recursive, the composer is)."""
    depth = 0
    for event in yaml.parse(text):
        if isinstance(event, (events.MappingStartEvent, events.SequenceStartEvent)):
            depth += 1
            if depth > YAML_DEPTH.value:
                return event.start_mark.line + 1
        elif isinstance(event, (events.MappingEndEvent, events.SequenceEndEvent)):
            depth -= 1
    return 1


class _Builder:
    """Builds plain data from composed nodes, counting every value (aliases expand) and each level."""

    def __init__(self, constructor: Any, path: Path, lines: dict[DocPath, int]) -> None:
        self.constructor, self.path, self.lines = constructor, path, lines
        self.built, self.open = 0, set()  # values built so far; ids of the collections being built
        self.limit = YAML_NODES.value

    def where(self, node: nodes.Node) -> str:
        return f"{self.path}:{node.start_mark.line + 1}"

    def build(self, node: nodes.Node, at: DocPath, depth: int) -> Any:
        self.lines.setdefault(at, node.start_mark.line + 1)
        self.built += 1
        if self.built > self.limit:
            raise YAML_NODES.exceeded(str(self.built), "the YAML with its aliases expanded", where=self.where(node),
                                      error=SuiteError)
        if isinstance(node, nodes.ScalarNode):
            return self.scalar(node)
        YAML_DEPTH.check(depth + 1, "nesting", where=self.where(node), error=SuiteError)
        if id(node) in self.open:
            raise SuiteError("an alias refers to the collection that contains it", where=self.where(node),
                             fix="Remove the recursive alias (*name inside &name)")
        self.open.add(id(node))
        try:
            if isinstance(node, nodes.MappingNode):
                return self.mapping(node, at, depth)
            return [self.build(item, (*at, i), depth + 1) for i, item in enumerate(node.value)]
        finally:
            self.open.discard(id(node))

    def mapping(self, node: nodes.MappingNode, at: DocPath, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node) if isinstance(key_node, nodes.ScalarNode) else key_node
            if not isinstance(key, str):
                shown = ("a list or mapping" if isinstance(key, nodes.Node) else "empty (null)" if key is None
                         else f"{type(key).__name__} {key!r:.40}")
                raise SuiteError(f"a key must be a string, not {shown}", where=self.where(key_node),
                                 fix="Write keys as plain words, or quote them: '1': ...")
            if key in out:
                raise SuiteError(f"duplicate key {key!r}", where=self.where(key_node), fix="Remove one of the two")
            self.lines[(*at, key)] = key_node.start_mark.line + 1
            out[key] = self.build(value_node, (*at, key), depth + 1)
        return out

    def scalar(self, node: nodes.ScalarNode) -> Any:
        """The scalar's value; a value its tag cannot read (``!!float abc``) is an error on its line."""
        if node.tag.endswith(":int") and len(node.value) > 100:
            raise SuiteError(f"an integer of {len(node.value)} digits", where=self.where(node),
                             fix="Quote it to make it a string, or use a smaller number")
        try:
            return self.constructor.construct_object(node)
        except (ValueError, TypeError, KeyError, IndexError, OverflowError, YAMLError) as exc:
            reason = exc.problem if isinstance(exc, MarkedYAMLError) and exc.problem else type(exc).__name__
            raise SuiteError(f"{node.value!r:.60} cannot be read as {node.tag.rsplit(':', 1)[-1]} ({reason})",
                             where=self.where(node), fix="Remove the tag, or quote the value to make it a string"
                             ) from None


def line_of(lines: dict[DocPath, int], at: DocPath) -> int:
    """The line of ``at``, or of its nearest ancestor that has one."""
    while at not in lines and at:
        at = at[:-1]
    return lines.get(at, 1)

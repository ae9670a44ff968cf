"""Load YAML into plain Python objects plus a map from each value's path to its line.

YAML 1.2 (ruamel.yaml), not PyYAML's 1.1: the suite format's own example has
``{role: assistant, content: How long has this been going on?}``, whose ``?``
PyYAML rejects inside a flow mapping; 1.2 also keeps ``yes``/``no`` as strings.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML, nodes
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from ..errors import SuiteError

#: A path into a loaded document: mapping keys and sequence indices.
DocPath = tuple[Any, ...]


def load_with_lines(path: Path) -> tuple[Any, dict[DocPath, int]]:
    """Parse ``path``; return its data and the 1-based line of every node, keyed by path."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError(f"cannot read suite: {exc.strerror}", where=str(path)) from None
    yaml = YAML(typ="safe", pure=True)
    lines: dict[DocPath, int] = {}
    try:
        node = yaml.compose(text)
        data = _Builder(yaml.constructor, path, lines).build(node, ()) if node is not None else None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise SuiteError(f"invalid YAML: {exc.problem or exc.context}", where=f"{path}:{line}",
                         fix="Check the indentation and quoting on that line") from None
    except YAMLError as exc:
        raise SuiteError(f"invalid YAML: {exc}", where=str(path)) from None
    return data, lines


class _Builder:
    def __init__(self, constructor: Any, path: Path, lines: dict[DocPath, int]) -> None:
        self.constructor, self.path, self.lines = constructor, path, lines

    def build(self, node: nodes.Node, at: DocPath) -> Any:
        self.lines.setdefault(at, node.start_mark.line + 1)
        if isinstance(node, nodes.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.constructor.construct_object(key_node)
                if key in out:
                    raise SuiteError(f"duplicate key {key!r}", where=f"{self.path}:{key_node.start_mark.line + 1}",
                                     fix="Remove one of the two")
                self.lines[(*at, key)] = key_node.start_mark.line + 1
                out[key] = self.build(value_node, (*at, key))
            return out
        if isinstance(node, nodes.SequenceNode):
            return [self.build(item, (*at, i)) for i, item in enumerate(node.value)]
        return self.constructor.construct_object(node)


def line_of(lines: dict[DocPath, int], at: DocPath) -> int:
    """The line of ``at``, or of its nearest ancestor that has one."""
    while at not in lines and at:
        at = at[:-1]
    return lines.get(at, 1)

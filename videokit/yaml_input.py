"""One YAML loader for every input file (routing policy, brand kits, campaign specs, training front matter).

Input files come from other teams and are untrusted: the text is bounded in size, the document in nesting
depth and in the number of nodes it expands to (aliases count as many times as they are used, so a
400-byte "billion laughs" is refused while composing, before anything walks it), recursive aliases and
duplicate keys are refused. Every error names the file and the line.
"""

from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_NODES = 50_000

KeyPath = tuple[str | int, ...]


class YamlInputError(ValueError):
    """A YAML input file that cannot be accepted; `line` is 1-based (0 when it is about the whole file)."""

    def __init__(self, source: str, line: int, reason: str, column: int = 0):
        self.source, self.line, self.reason, self.column = source, line, reason, column
        super().__init__(f"{source} line {line}: {reason}" if line else f"{source}: {reason}")


@dataclass(frozen=True)
class YamlDocument:
    """The plain data of a document, and the 1-based line of every key and list item in it."""

    source: str
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, path: KeyPath) -> int:
        """The line of `path`, or of its nearest ancestor that has one (1 for the top level)."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a composer that refuses deep nesting while it recurses."""

    max_depth = MAX_DEPTH

    def __init__(self, stream, source: str):
        super().__init__(stream)
        self.source = source
        self.depth = 0

    def compose_node(self, parent, index):
        self.depth += 1
        try:
            if self.depth > self.max_depth:
                mark = self.peek_event().start_mark
                raise YamlInputError(self.source, mark.line + 1, f"nested deeper than {self.max_depth} levels")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _check_expansion(root: yaml.Node, source: str, max_nodes: int, max_depth: int) -> None:
    """Count the nodes the document expands to, a shared (aliased) node once per use, and its depth once
    aliases are followed; refuse cycles."""
    seen: dict[int, tuple[int, int]] = {}  # node id -> (expanded nodes, expanded height)
    open_nodes: set[int] = set()

    def measure(node: yaml.Node, depth: int) -> tuple[int, int]:
        key = id(node)
        if key in open_nodes:
            raise YamlInputError(source, node.start_mark.line + 1, "an alias refers to a node that contains it")
        if key not in seen:
            if depth > max_depth:
                raise YamlInputError(source, node.start_mark.line + 1,
                                     f"nested deeper than {max_depth} levels once aliases are followed")
            open_nodes.add(key)
            if isinstance(node, yaml.SequenceNode):
                children: list[yaml.Node] = list(node.value)
            elif isinstance(node, yaml.MappingNode):
                children = [child for pair in node.value for child in pair]
            else:
                children = []
            total, height = 1, 1
            for child in children:
                count, child_height = measure(child, depth + 1)
                total, height = total + count, max(height, child_height + 1)
                if total > max_nodes:
                    raise YamlInputError(source, node.start_mark.line + 1,
                                         f"expands to more than {max_nodes} values (through aliases or size)")
            open_nodes.discard(key)
            seen[key] = (total, height)
        total, height = seen[key]
        if depth + height - 1 > max_depth:
            raise YamlInputError(source, node.start_mark.line + 1,
                                 f"nested deeper than {max_depth} levels once aliases are followed")
        return total, height

    measure(root, 1)


def _key_lines(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], source: str) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                _key_lines(value_node, (*path, "?"), lines, source)
                continue
            if key_node.value in seen and key_node.value != "<<":
                raise YamlInputError(source, key_node.start_mark.line + 1, f"duplicate key {key_node.value!r}")
            seen.add(key_node.value)
            lines.setdefault((*path, key_node.value), key_node.start_mark.line + 1)
            _key_lines(value_node, (*path, key_node.value), lines, source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _key_lines(item, (*path, index), lines, source)


def _parse(text: str | bytes, source: str, max_bytes: int, max_depth: int, max_nodes: int, offset: int,
           construct: bool) -> tuple[yaml.Node | None, Any, dict[KeyPath, int]]:
    size = len(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    if size > max_bytes:
        raise YamlInputError(source, 0, f"is {size} bytes, more than the {max_bytes}-byte limit for a YAML file")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise YamlInputError(source, 0, f"is not UTF-8 text (byte {error.start})") from None
    lines: dict[KeyPath, int] = {(): 1}
    try:
        loader = _BoundedLoader(text, source)
        loader.max_depth = max_depth
        try:
            node = loader.get_single_node()
            data = None
            if node is not None:
                _check_expansion(node, source, max_nodes, max_depth)
                _key_lines(node, (), lines, source)
                data = loader.construct_document(node) if construct else None
        finally:
            loader.dispose()
    except YamlInputError as error:
        raise YamlInputError(source, error.line + offset if error.line else 0, error.reason) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        line = mark.line + 1 + offset if mark is not None else 0
        column = mark.column + 1 if mark is not None else 0
        raise YamlInputError(source, line, f"not valid YAML: {problem}", column) from None
    except (ValueError, OverflowError, TypeError) as error:  # e.g. an impossible !!timestamp
        raise YamlInputError(source, 0, f"not valid YAML: {error}") from None
    return node, data, {path: line + offset for path, line in lines.items()}


def load_yaml(text: str | bytes, *, source: str, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH,
              max_nodes: int = MAX_NODES, first_line: int = 1) -> YamlDocument:
    """Parse one YAML document within the limits. `first_line` is the file line of the text's first line
    (front matter embedded in a larger file). Raises YamlInputError naming `source` and the line."""
    _, data, lines = _parse(text, source, max_bytes, max_depth, max_nodes, first_line - 1, construct=True)
    return YamlDocument(source, data, lines)


def compose_yaml(text: str | bytes, *, source: str, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH,
                 max_nodes: int = MAX_NODES) -> yaml.Node | None:
    """The node tree of one YAML document, checked against the same limits, for readers that keep every
    scalar as written (no type resolution)."""
    node, _, _ = _parse(text, source, max_bytes, max_depth, max_nodes, 0, construct=False)
    return node

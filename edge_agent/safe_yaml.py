"""YAML for files a person (or an attacker with write access to a share) wrote: bounded before it is built.

PyYAML's safe loader is safe from code execution, not from size: a 1 KB alias bomb expands to billions
of nodes once something walks it (the config's validation and its line map did, for minutes at 3 GB), a
deeply nested file overflows the composer's recursion, and a duplicate key silently replaces the first
(a second `cameras:` dropped every camera of the first). Here, before anything is built:
- size, and text (UTF-8 without NUL bytes) rather than a binary file;
- nesting depth and the number of aliases, counted on the parser's event stream (no recursion);
- the size of the document with every alias expanded, counted once per node (memoised), and no alias
  that contains itself;
- duplicate keys in a mapping (merge keys `<<` may still be overridden, as YAML intends).
Each limit fails with a `YamlLimitError` that names it.
"""

from __future__ import annotations

from typing import Any

import yaml

from contracts.yaml_errors import syntax_message as syntax_message  # re-exported: the agent's loaders use it here

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_ALIASES = 100
MAX_NODES = 100_000  # with aliases expanded; a large fleet config is a few thousand
_MERGE = "tag:yaml.org,2002:merge"


class YamlLimitError(ValueError):
    """The document breaks one of the limits above; the message says which and what to do."""


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise YamlLimitError(f"duplicate key {key!r} at line {line} (first at line {seen[key]}): the second "
                                     "would silently replace the first; merge them into one")
            seen[key] = line
        return super().construct_mapping(node, deep)


def _check_events(text: str) -> None:
    depth = aliases = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise YamlLimitError(f"nested deeper than {MAX_DEPTH} levels (line {line}); a config is a few "
                                     "levels deep")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise YamlLimitError(f"more than {MAX_ALIASES} aliases (*name); write the values out or use "
                                     "`defaults:` for what cameras share")


def _expanded(node: yaml.Node, memo: dict[int, int | None]) -> int:
    """Nodes in `node` with every alias expanded, each distinct node counted once (memoised)."""
    key = id(node)
    if key in memo:
        done = memo[key]
        if done is None:
            raise YamlLimitError(f"the alias at line {node.start_mark.line + 1} contains itself")
        return done
    memo[key] = None
    n = 1
    if isinstance(node, yaml.MappingNode):
        n += sum(_expanded(k, memo) + _expanded(v, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        n += sum(_expanded(v, memo) for v in node.value)
    if n > MAX_NODES:
        raise YamlLimitError(f"over {MAX_NODES} values once its aliases are expanded (an alias bomb?)")
    memo[key] = n
    return n


def _lines(node: yaml.Node, path: tuple = ()) -> dict[tuple, int]:
    """Key path -> 1-based line, from the YAML node tree (for error messages); bounded by `_expanded`."""
    out = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out.update(_lines(value, (*path, key.value)))
            out[(*path, key.value)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.update(_lines(item, (*path, i)))
    return out


def decode(data: bytes) -> str:
    """A file's bytes as text, or YamlLimitError for a file too large or not text."""
    if len(data) > MAX_BYTES:
        raise YamlLimitError(f"{len(data)} bytes, over the {MAX_BYTES}-byte limit for a config file")
    if b"\x00" in data:
        raise YamlLimitError("holds NUL bytes: a binary file, not YAML text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlLimitError(f"is not UTF-8 text (byte {exc.start}): a binary file, not YAML") from exc


def load(text: str) -> tuple[Any, dict[tuple, int]]:
    """(the document, key path -> line); YamlLimitError for a limit, yaml.YAMLError for bad syntax."""
    decode(text.encode("utf-8", "surrogatepass"))  # the same size and NUL checks for text given directly
    _check_events(text)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        _expanded(node, {})
        return loader.construct_document(node), _lines(node)
    finally:
        loader.dispose()

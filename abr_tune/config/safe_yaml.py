"""YAML reading with safe_load's types and a bound on aliases.

An alias shares a node, so a few lines of nested aliases (the "billion laughs" document) describe
a tree of billions of nodes. safe_load itself builds it cheaply, with shared references, but every
later walk over it (overrides, checks, a deep copy) expands it. The loader counts what the
document expands to, node by node with each anchored node counted once, and refuses more than
MAX_NODES before anything walks it.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_NODES = 100_000  # a full train config is ~150 nodes, a large search space a few thousand


class TooLarge(yaml.YAMLError):
    """The document expands (through aliases) to more than MAX_NODES nodes, or refers to itself."""


class BoundedLoader(yaml.SafeLoader):
    """safe_load's loader that refuses documents whose aliases expand beyond MAX_NODES nodes."""

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None:
            expanded_size(node)
        return node


def expanded_size(root: yaml.Node) -> int:
    """The node count of `root` with every alias expanded; raises TooLarge past MAX_NODES or on a cycle."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise TooLarge("an alias refers to the node that contains it")
        active.add(key)
        children = node.value if isinstance(node, yaml.SequenceNode) else \
            [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else []
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_NODES:
                raise TooLarge(f"its aliases expand it to more than {MAX_NODES:,} values")
        active.discard(key)
        sizes[key] = total
        return total

    return size(root)


def load(text: str) -> Any:
    """yaml.safe_load of `text` with the alias bound."""
    return yaml.load(text, Loader=BoundedLoader)  # a SafeLoader: safe_load's types, nothing else

"""YAML read with yaml.safe_load semantics, but refused before it can exhaust memory or time.

Three bounds: the text's length, the nesting depth, and the number of nodes with every alias expanded (an
alias bomb, "billion laughs", is a few hundred bytes that expand to billions of nodes when copied).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipeline.common.errors import UserError

MAX_CHARS = 256 * 1024  # a config is a few hundred bytes; this is hundreds of times more
MAX_NODES = 10_000  # values, keys and lists, each alias counted as the copy it becomes
MAX_DEPTH = 32  # levels of nested mappings and lists


def _expanded_size(node: yaml.Node, source: str, sizes: dict[int, int], open_nodes: set[int], depth: int) -> int:
    """Nodes under `node` with aliases expanded; shared nodes are counted once per use but measured once."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_nodes:
        raise UserError(f"{source} has an alias that contains itself, which can never be expanded.")
    if depth > MAX_DEPTH:
        raise UserError(f"{source} nests mappings and lists more than {MAX_DEPTH} levels deep.")
    open_nodes.add(id(node))
    size = 1
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    else:
        children = []
    for child in children:
        size += _expanded_size(child, source, sizes, open_nodes, depth + 1)
        if size > MAX_NODES:
            raise UserError(
                f"{source} expands to more than {MAX_NODES} values (aliases counted as the copies they make); "
                f"a config may have at most {MAX_NODES}."
            )
    open_nodes.discard(id(node))
    sizes[id(node)] = size
    return size


def load(text: str | bytes, source: str) -> Any:
    """yaml.safe_load(text) within the bounds above; `source` names the file or override in a refusal.

    Bytes are decoded as yaml.safe_load decodes them (UTF-8, or UTF-16 by its byte-order mark).

    yaml.YAMLError still propagates, for the caller's own message.
    """
    if len(text) > MAX_CHARS:
        raise UserError(f"{source} is {len(text)} characters long; a config may have at most {MAX_CHARS} characters.")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, source, {}, set(), 0)
        return loader.construct_document(node)
    except RecursionError:
        raise UserError(f"{source} nests mappings and lists more than {MAX_DEPTH} levels deep.") from None
    except ValueError as err:  # e.g. an integer with more digits than Python converts
        reason = str(err).splitlines()[0].split(";")[0].rstrip(".")
        raise UserError(f"{source} has a value that cannot be read ({reason}).") from None
    finally:
        loader.dispose()


def load_file(path: Path, source: str) -> Any:
    """load() of a file's text, its size checked before it is read."""
    size = path.stat().st_size
    if size > 4 * MAX_CHARS:  # bytes; a character takes at most 4 in UTF-8
        raise UserError(f"{source} is {size} bytes long; a config may have at most {MAX_CHARS} characters.")
    return load(path.read_bytes(), source)

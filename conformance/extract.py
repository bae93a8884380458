"""Write conformance/media-gateway.yaml: what the conformance run needs of Agora's
Media Gateway OpenAPI file (AgoraIO/docs-portal, content/openapi/media-gateway/
media-gateway.en.yaml): the operations revoker sends, the components they
reference, the security schemes. Prose (descriptions, x-* doc sections, code
samples) is left out; paths, parameters, schemas, enums and examples are kept as
they are.

    python conformance/extract.py SOURCE.yaml COMMIT > conformance/media-gateway.yaml
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

SOURCE_PATH = "content/openapi/media-gateway/media-gateway.en.yaml"
# The operations revoker's commands send (revoke, verify, prune, rotate, show, streams,
# --disconnect), by path and method.
OPERATIONS = {
    "/{region}/v1/projects/{appId}/rtls/ingress/streamkeys": ["post"],
    "/{region}/v1/projects/{appId}/rtls/ingress/streamkeys/{streamkey}": ["get", "delete"],
    "/{region}/v1/projects/{appId}/rtls/ingress/online-streams": ["get"],
    "/{region}/v1/projects/{appId}/rtls/ingress/online-streams/{sid}": ["get", "delete"],
}
PROSE = {"description", "summary", "title"}


def strip(node: Any) -> Any:
    """The node without prose or x-* extensions (a property named like one is kept)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if str(key).startswith("x-") or (key in PROSE and not isinstance(value, dict)):
                continue
            out[key] = strip(value)
        return out
    if isinstance(node, list):
        return [strip(item) for item in node]
    return node


def refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(refs(item) for item in node)) if node else set()
    return set()


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    paths = {
        path: {method: strip(spec["paths"][path][method]) for method in methods}
        for path, methods in OPERATIONS.items()
    }
    components: dict[str, dict[str, Any]] = {
        "securitySchemes": strip(spec["components"]["securitySchemes"])
    }
    todo = refs(paths)
    done: set[str] = set()
    while todo:
        ref = todo.pop()
        done.add(ref)
        _, _, kind, name = ref.split("/")
        node = strip(spec["components"][kind][name])
        components.setdefault(kind, {})[name] = node
        todo |= refs(node) - done
    return {
        "openapi": spec["openapi"],
        "info": {"title": spec["info"]["title"], "version": spec["info"].get("version") or ""},
        "servers": [{"url": s["url"]} for s in spec["servers"]],
        "security": spec["security"],
        "paths": paths,
        "components": {kind: dict(sorted(v.items())) for kind, v in sorted(components.items())},
    }


def main() -> None:
    source, commit = sys.argv[1], sys.argv[2]
    with open(source, encoding="utf-8") as handle:
        spec = yaml.safe_load(handle)
    print(f"# Extracted from AgoraIO/docs-portal {SOURCE_PATH}")
    print(f"# at commit {commit} by conformance/extract.py: the operations revoker")
    print("# sends, their components and the security schemes; prose left out.")
    print(yaml.safe_dump(extract(spec), sort_keys=False, allow_unicode=True, width=100), end="")


if __name__ == "__main__":
    main()

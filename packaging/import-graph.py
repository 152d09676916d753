#!/usr/bin/env python3
"""The import graph of src/: which module uses which, from `use crate::…`, `crate::…` paths and
`super::…` paths. Fails on a cycle between modules, on an arrow against the layers below (a
module may use only modules in layers below its own), and on an arrow between two entries of
one layer (which is how an upward import hid while `openmetrics` sat beside `remote_write`). `python3 packaging/import-graph.py`
prints the graph; CI runs it."""
import pathlib, re, sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"

# Bottom first. A module may use modules of lower layers (and of its own folder's parents'
# lower layers), never its own layer's peers.
LAYERS = [
    ["clock", "yaml", "error_cause", "shutdown"],
    ["share"],
    ["state", "history", "http/tls", "http/basic_auth", "http/serve"],
    ["http/web_config"],
    ["metrics"],
    ["config", "openmetrics"],
    ["logging"],
    ["simulator"],
    ["poll", "remote_write", "http/chart"],
    ["http/landing"],
    ["http/routes", "http"],
    ["demo"],
    ["exporter"],
    ["backfill", "check", "drill"],
]
layer_of = {m: i for i, layer in enumerate(LAYERS) for m in layer}

def module_of(path: pathlib.Path) -> str:
    """The module a file belongs to, as a path inside the crate: config/file, http/tls, poll."""
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts.pop()
    if parts == ["lib"] or parts == ["main"] or parts[0] == "bin":
        return ""
    return "/".join(parts)

def resolve(module: str, path: str) -> str:
    """`super::x::y` or `crate::x::y` from `module`, as a module path (as deep as files go)."""
    segments = path.split("::")
    if segments[0] == "crate":
        base, rest = [], segments[1:]
    elif segments[0] == "super":
        base = module.split("/")[:-1]
        rest = segments[1:]
        while rest and rest[0] == "super":
            base = base[:-1]
            rest = rest[1:]
    else:
        return ""
    out = list(base)
    for seg in rest:
        candidate = "/".join(out + [seg])
        if (SRC / (candidate + ".rs")).exists() or (SRC / candidate / "mod.rs").exists():
            out.append(seg)
        else:
            break
    return "/".join(out)

edges = {}
for path in sorted(SRC.rglob("*.rs")):
    module = module_of(path)
    if not module:
        continue
    text = path.read_text()
    # Tests may reach anywhere in their own module's tree; leave them out.
    text = re.split(r"#\[cfg\(test\)\]", text)[0]
    text = re.sub(r"//[^\n]*", "", text)
    for m in re.finditer(r"\b((?:crate|super)(?:::super)*::[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*)", text):
        target = resolve(module, m.group(1))
        if target and target != module and not module.startswith(target + "/") and not target.startswith(module + "/"):
            edges.setdefault(module, set()).add(target)

def layer(module: str):
    """The layer of a module: its own entry, else its nearest listed parent's."""
    parts = module.split("/")
    for n in range(len(parts), 0, -1):
        key = "/".join(parts[:n])
        if key in layer_of:
            return key, layer_of[key]
    return None, None

problems = []
# Upward and sideways arrows between the entries of the layers.
for source, targets in sorted(edges.items()):
    for target in sorted(targets):
        (s, ls), (t, lt) = layer(source), layer(target)
        if s is None or t is None:
            problems.append(f"{source} -> {target}: a module not in the layers of packaging/import-graph.py")
        elif s == t:
            continue
        elif lt > ls:
            problems.append(f"{source} -> {target}: upward ({s} is layer {ls}, {t} layer {lt})")
        elif lt == ls:
            problems.append(f"{source} -> {target}: sideways ({s} and {t} are both layer {ls})")

# Cycles between modules (files and folders), at every depth.
def cycles():
    found = []
    state = {}
    stack = []
    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2
    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found

for cycle in cycles():
    problems.append("cycle: " + " -> ".join(cycle))

if "-v" in sys.argv:
    for source, targets in sorted(edges.items()):
        print(f"{source} -> {', '.join(sorted(targets))}")
if problems:
    print("import graph of src/:\n  " + "\n  ".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"import graph of src/: {sum(len(t) for t in edges.values())} arrows between {len(set(edges) | {t for ts in edges.values() for t in ts})} modules, no cycle, none upward or sideways")

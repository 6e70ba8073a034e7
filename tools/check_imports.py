"""Check that fastcnn's imports go one way: python tools/check_imports.py [SRC]

Reads every module of src/fastcnn (with ast: nothing is imported or run) and
every import in it, at module level or inside a function alike, and fails
(exit 1, naming each offence) when:
  * a module imports a room above its own (ROOMS, top first: a room may import
    its own room and the rooms below it);
  * the modules' imports form a cycle (found by a depth-first search);
  * a module imports the package root for a name it defines (`import fastcnn`,
    `from fastcnn import load`, `from .. import __version__`); importing a
    submodule through the root (`from .. import _core`) is fine.
Prints the rooms and the number of imports checked when all is well.
"""
from __future__ import annotations

import ast
import os
import sys

PACKAGE = "fastcnn"

# Top first. A module's room is the first part of its path under fastcnn/ (the
# package root itself and __main__ are "root"; _core is the native module).
ROOMS = [
    ["root"],
    ["compat"],
    ["cli"],
    ["runs", "bench"],
    ["plot"],
    ["nn"],
    ["data", "io"],
    ["backend"],
    ["common"],
    ["_core"],
]
RANK = {room: rank for rank, rooms in enumerate(ROOMS) for room in rooms}


def modules(src):
    """{module name: path} of every .py file under src/fastcnn."""
    found = {}
    top = os.path.join(src, PACKAGE)
    for folder, _, files in os.walk(top):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                rel = os.path.relpath(path, src)[:-3].replace(os.sep, ".")
                name = rel[:-len(".__init__")] if rel.endswith(".__init__") else rel
                found[name] = path
    return found


def room(name):
    parts = name.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return "root"
    return parts[1]


def _resolve(module, is_package, level, target):
    """The absolute name of a relative import `from .<level> target`."""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[:-(level - 1)]
    return ".".join(base + ([target] if target else []))


def imports(name, path, known):
    """[(imported module, line, what)] of one module: the most specific known
    module each import statement loads (a submodule when `from X import sub`)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    is_package = path.endswith("__init__.py")
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    found.append((alias.name, node.lineno, f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom):
            base = (_resolve(name, is_package, node.level, node.module) if node.level
                    else node.module or "")
            if base != PACKAGE and not base.startswith(PACKAGE + "."):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                target = sub if sub in known or sub.endswith("._core") else base
                found.append((target, node.lineno, f"from {base} import {alias.name}"))
    return found


def check(src):
    known = modules(src)
    graph, problems, count = {}, [], 0
    for name, path in sorted(known.items()):
        edges = graph.setdefault(name, set())
        for target, line, what in imports(name, path, known):
            count += 1
            where = f"{os.path.relpath(path, src)}:{line}: {what}"
            if target == PACKAGE and name != PACKAGE:
                problems.append(f"{where}: imports the package root")
                continue
            if room(target) not in RANK or room(name) not in RANK:
                problems.append(f"{where}: {target if room(target) not in RANK else name} "
                                "is in no room (add it to ROOMS)")
                if target in known and target != name:
                    edges.add(target)
                continue
            if RANK[room(target)] < RANK[room(name)]:
                problems.append(f"{where}: room {room(name)!r} imports room "
                                f"{room(target)!r}, which is above it")
            if target in known and target != name:
                edges.add(target)
    problems += [f"import cycle: {' -> '.join(c)}" for c in cycles(graph)]
    return problems, count, len(known)


def cycles(graph):
    """Some cycles of the directed graph (one per back edge found), as name lists."""
    found, state, stack = [], {}, []

    def visit(v):
        state[v] = "open"
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if state.get(w) == "open":
                found.append(stack[stack.index(w):] + [w])
            elif w not in state:
                visit(w)
        stack.pop()
        state[v] = "done"

    for v in sorted(graph):
        if v not in state:
            visit(v)
    return found


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    src = argv[0] if argv else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                            "src")
    problems, count, n = check(src)
    if problems:
        print("\n".join(problems))
        print(f"{len(problems)} import problem(s) in {n} modules")
        return 1
    print(f"imports go one way: {count} imports in {n} modules, no cycle, no import of the "
          f"package root; rooms, top first: {' > '.join('/'.join(r) for r in ROOMS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

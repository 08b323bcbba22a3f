#!/usr/bin/env python3
"""Lists circles among the files of a crate: file A names a path into file B, and B (directly or
through others) names one into A. Usage: module-cycles.py CRATE_SRC_DIR [more dirs]

A file is a module; `crate::a::b` and `super::b` paths are resolved to the deepest module file that
exists. Test modules (`tests/` folders and `*_test.rs`, `tests.rs`) are left out: they may import
what they test. Exit status 1 when there is a circle."""
import os, re, sys

def modules(src):
    files = {}
    for root, dirs, names in os.walk(src):
        for name in names:
            if not name.endswith('.rs'):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if 'tests' in rel or rel[-1].endswith('_test') or rel[-1] == 'tests':
                continue
            if rel[-1] in ('mod', 'lib', 'main'):
                rel = rel[:-1]
            if rel and rel[0] == 'bin':
                continue
            files[tuple(rel)] = path
    return files

def resolve(files, parts):
    for n in range(len(parts), 0, -1):
        if tuple(parts[:n]) in files:
            return tuple(parts[:n])
    return None

PATH = re.compile(r'\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)')
GROUP = re.compile(r'\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*?)\}', re.S)

def strip_tests(text):
    # Drop `#[cfg(test)] mod tests { ... }` bodies (brace-matched).
    out, i = [], 0
    marker = re.compile(r'#\[cfg\(test\)\]\s*(pub\s+)?mod\s+\w+\s*\{')
    while True:
        m = marker.search(text, i)
        if not m:
            out.append(text[i:]); break
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {'{': 1, '}': -1}.get(text[j], 0); j += 1
        i = j
    return ''.join(out)

def edges(files, module, path):
    text = strip_tests(open(path).read())
    text = re.sub(r'//.*', '', text)
    here = list(module)
    def base(kind):
        if kind == 'crate':
            return []
        return here[:-1] if kind == 'super' else here
    found = set()
    def add(kind, rest):
        parts = base(kind) + [p for p in rest.split('::') if p]
        target = resolve(files, parts)
        if target is not None and target != module:
            found.add(target)
    for m in GROUP.finditer(text):
        for item in re.split(r',', m.group(3)):
            item = item.strip().split(' as ')[0]
            if item and item != 'self':
                add(m.group(1), m.group(2) + '::' + re.sub(r'[{}\s]', '', item).split('::{')[0])
            elif item == 'self':
                add(m.group(1), m.group(2))
    for m in PATH.finditer(text):
        add(m.group(1), m.group(2))
    # A bare path into a child module (`writer::submit` in `repl/mod.rs`).
    children = {m[-1] for m in files if len(m) == len(here) + 1 and list(m[:-1]) == here}
    for name in children:
        for m in re.finditer(r'(?<![:\w])' + name + r'((?:::[A-Za-z_][A-Za-z0-9_]*)+)', text):
            add('self', '::' + name + m.group(1))
        for m in re.finditer(r'(?<![:\w])' + name + r'::\{([^;]*?)\}', text, re.S):
            add('self', '::' + name)
    return found

def sccs(graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = counter[0]; counter[0] += 1
        stack.append(v); on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            out.append(comp)
    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out

status = 0
for src in sys.argv[1:]:
    files = modules(src)
    graph = {m: edges(files, m, p) for m, p in files.items()}
    for comp in sccs(graph):
        if len(comp) > 1:
            status = 1
            names = sorted('/'.join(m) or 'lib' for m in comp)
            print(f"{src}: circle among {len(comp)} files: {', '.join(names)}")
            for m in sorted(comp):
                inside = sorted('/'.join(t) for t in graph[m] if t in comp)
                print(f"    {'/'.join(m) or 'lib'} -> {', '.join(inside)}")
if status == 0:
    print("no circles")
sys.exit(status)

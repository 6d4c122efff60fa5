#!/usr/bin/env python3
"""Lists the `use crate::`/`super::` edges between the files of one crate's src/ and
reports every import cycle (strongly connected component of more than one file).

Usage: .ci/import_cycles.py CRATE_SRC_DIR [--edges]
Exit code 1 when a cycle exists.

Edges come from `use` items (brace trees expanded) and from inline `crate::a::b` /
`super::x` paths; a path through the crate root (lib.rs re-exports, `crate::Name`) is
followed to the module that defines the name. Test modules (`#[cfg(test)]` to the end of
the file) and `pub mod`/`mod` declarations are not edges.
"""
import os, re, sys

root = sys.argv[1].rstrip('/')
show_edges = '--edges' in sys.argv

def module_of(path):
    rel = os.path.relpath(path, root)[:-3].split(os.sep)
    if rel[-1] in ('lib', 'main', 'mod'):
        rel = rel[:-1]
    return tuple(rel)

files = {}
for d, _, fs in os.walk(root):
    for f in fs:
        if f.endswith('.rs'):
            p = os.path.join(d, f)
            if os.sep + 'bin' + os.sep in p:
                continue
            files[module_of(p)] = p

def strip(text):
    text = re.sub(r'//[^\n]*', '', text)
    text = re.sub(r'/\*.*?\*/', '', text, flags=re.S)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    cut = re.search(r'#\[cfg\(test\)\]', text)
    return text[:cut.start()] if cut else text

def expand(tree):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e]"""
    tree = tree.strip()
    i = tree.find('{')
    if i < 0:
        return [re.sub(r'\s+as\s+\w+$', '', tree).strip()]
    prefix, body = tree[:i], tree[i + 1:tree.rfind('}')]
    parts, depth, cur = [], 0, ''
    for ch in body:
        if ch == ',' and depth == 0:
            parts.append(cur); cur = ''
            continue
        depth += ch == '{'
        depth -= ch == '}'
        cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        if p.strip():
            out += [prefix + q for q in expand(p)]
    return out

reexports = {}  # name at crate root -> full path
lib = files.get(())
if lib:
    for m in re.finditer(r'pub\s+use\s+([^;]+);', strip(open(lib).read())):
        for path in expand(m.group(1)):
            segs = [s for s in path.split('::') if s]
            if segs and segs[0] == 'crate':
                segs = segs[1:]
            if segs and segs[-1] != 'self':
                reexports[segs[-1]] = segs

def resolve(mod, segs):
    """The file module a path points into (the longest prefix that is a file)."""
    if segs[0] == 'crate':
        segs = segs[1:]
        if segs and tuple(segs[:1]) not in files and segs[0] in reexports:
            segs = reexports[segs[0]] + segs[1:]
        base = ()
    elif segs[0] == 'super':
        base = mod
        while segs and segs[0] == 'super':
            base = base[:-1]; segs = segs[1:]
    elif segs[0] == 'self':
        base = mod; segs = segs[1:]
    else:
        return None
    full = base + tuple(s for s in segs if s != 'self')
    for n in range(len(full), -1, -1):
        if full[:n] in files:
            return full[:n]
    return None

edges = {m: set() for m in files}
for mod, path in files.items():
    text = strip(open(path).read())
    paths = []
    for m in re.finditer(r'\buse\s+([^;]+);', text):
        paths += expand(m.group(1))
    text_wo_use = re.sub(r'\buse\s+[^;]+;', '', text)
    paths += re.findall(r'\b((?:crate|super)(?:::\w+)+)', text_wo_use)
    for p in paths:
        segs = [s.strip() for s in p.split('::') if s.strip()]
        if not segs or segs[0] not in ('crate', 'super', 'self'):
            continue
        target = resolve(mod, segs)
        if target is not None and target != mod:
            edges[mod].add(target)

name = lambda m: '/'.join(m) or 'lib'
if show_edges:
    for m in sorted(edges):
        for t in sorted(edges[m]):
            print(f'{name(m)} -> {name(t)}')

# Tarjan's strongly connected components.
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = counter[0]; counter[0] += 1
    stack.append(v); on.add(v)
    for w in edges[v]:
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v:
                break
        sccs.append(comp)
sys.setrecursionlimit(10000)
for v in sorted(files):
    if v not in index:
        visit(v)
cycles = [sorted(name(m) for m in c) for c in sccs if len(c) > 1]
n_edges = sum(len(e) for e in edges.values())
print(f'{root}: {len(files)} files, {n_edges} edges, {len(cycles)} cycle(s)')
for c in cycles:
    print('  cycle: ' + ' <-> '.join(c))
sys.exit(1 if cycles else 0)

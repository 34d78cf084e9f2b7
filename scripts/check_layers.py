#!/usr/bin/env python3
"""Fails when the first-level modules of src/core (or of src/ffi) import each other in a
circle, or when src/core imports src/ffi or src/capi.

An import is any non-comment line outside a `#[cfg(test)] mod tests` block that names
`crate::core::X` / `crate::ffi::X`, or `super::X` as seen from a first-level file or a
`X/mod.rs` (`super::super::X` one folder down, and so on). Names re-exported by src/core/mod.rs
(`pub use a::b as c;`, kept for old paths) are resolved to the module they come from.
Run by scripts/test.sh; see ARCHITECTURE.md."""
import os, re, sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'src')


def code_lines(path):
    """The file's lines without comments and without its test module."""
    out, lines = [], open(path, encoding='utf-8').read().split('\n')
    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith('#[cfg(test)]') or s.startswith('#[cfg(all(test'):
            nxt = lines[i + 1].strip() if i + 1 < len(lines) else ''
            if nxt.startswith('mod tests') or nxt.startswith('pub mod tests'):
                break
        if s.startswith('//'):
            continue
        out.append(line.split('//')[0] if '"' not in line else line)
    return out


def first_level(pkg):
    base = os.path.join(ROOT, pkg)
    mods = {}
    for name in sorted(os.listdir(base)):
        p = os.path.join(base, name)
        if name.endswith('.rs') and name != 'mod.rs':
            mods[name[:-3]] = [(p, 1)]
        elif os.path.isdir(p):
            files = []
            for dirpath, _, fs in os.walk(p):
                for f in fs:
                    if f.endswith('.rs') and f != 'tests.rs':  # unit tests may use anything
                        fp = os.path.join(dirpath, f)
                        rel = os.path.relpath(fp, p)
                        depth = rel.count(os.sep) + (1 if f == 'mod.rs' else 2)
                        files.append((fp, depth))
            mods[name] = files
    return mods


def aliases(pkg):
    """alias -> module, from `pub use a::b [as c];` lines of src/<pkg>/mod.rs."""
    out = {}
    for line in code_lines(os.path.join(ROOT, pkg, 'mod.rs')):
        m = re.match(r'\s*pub use (\w+)::(\w+)(?: as (\w+))?;', line)
        if m:
            out[m.group(3) or m.group(2)] = m.group(1)
    return out


def edges(pkg):
    mods, alias = first_level(pkg), aliases(pkg)
    graph = {m: set() for m in mods}
    bad = []
    for mod, files in mods.items():
        for path, depth in files:
            for line in code_lines(path):
                names = re.findall(r'crate::%s::(\w+)' % pkg, line)
                sup = r'(?<![\w:])' + r'super::' * depth
                names += re.findall(sup + r'(\w+)', line)
                for grp in re.findall(sup + r'\{([^}]*)\}', line):  # use super::{a, b::c}
                    names += re.findall(r'(?:^|,)\s*(\w+)', grp)
                for n in names:
                    n = alias.get(n, n)
                    if n in mods and n != mod:
                        graph[mod].add(n)
                if pkg == 'core' and re.search(r'crate::(ffi|capi)\b', line):
                    bad.append('%s imports crate::ffi/capi: %s' % (os.path.relpath(path, ROOT), line.strip()))
    return graph, bad


def cycle(graph):
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                c = visit(m)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            c = visit(n)
            if c:
                return c
    return None


def main():
    failed = False
    for pkg in ('core', 'ffi'):
        graph, bad = edges(pkg)
        for b in bad:
            print('!! ' + b)
            failed = True
        c = cycle(graph)
        if c:
            print('!! import circle among the first-level modules of src/%s: %s' % (pkg, ' -> '.join(c)))
            failed = True
        if '-v' in sys.argv:
            for m in sorted(graph):
                print('src/%s/%s -> %s' % (pkg, m, ', '.join(sorted(graph[m])) or '-'))
    if failed:
        sys.exit(1)
    print('layers: no import circle in src/core or src/ffi; src/core imports neither ffi nor capi')


if __name__ == '__main__':
    main()

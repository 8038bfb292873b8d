#!/usr/bin/env python3
"""Checks that the top-level modules of a Rust crate reference each other without a cycle.

usage: scripts/check-module-graph.py [SRC_DIR] [--with-tests] [--self-test]

SRC_DIR (default `src`) is the crate's source dir: `lib.rs` is the crate root, each `x.rs` or
`x/` beside it is the top-level module `x`, and `main.rs` (plus `bin/*.rs`) are binaries that reach
the library as `<package name>::x` (the name is read from `SRC_DIR/../Cargo.toml`). A module that
is not there is simply not in the graph, so modules may move out to other crates.

An edge `a -> b` is any path into `b` written in `a`'s files, in `use` lines or in bodies:
`crate::b::..`, `use crate::{b, ..}` (nested groups too), `super::`.. that climbs out of `a` to the
crate root and then names `b`, and `crate::Name` where `lib.rs` re-exports `Name` from `b`.
Comments (doc comments and intra-doc links included), string and char literals are blanked first;
visibility restrictions (`pub(in crate::b)`, `pub(super)`) are not references, nor are paths
through a name lib.rs gives another crate (`pub use ringtail_protocol as protocol;`).

`#[cfg(test)]` items (inline `mod tests { .. }` and `mod tests;` files) are left out of the check
and listed separately: they are compiled only into the unit-test binary and no other code can name
them, so what they use does not make the broker's modules depend on one another; a unit test may
use another module as a fixture. `--with-tests` checks them too.

Prints the graph (modules in dependency order, each with what it uses and where, first site only)
and exits 1 naming a cycle, e.g. `shard -> network -> request_handler -> shard`, with the line
that makes each edge. `--self-test` runs the checker on small crates written to a temp dir with
known answers (a cycle through each kind of path, comments, strings, cfg(test)) and exits 1 if it
gets one wrong.

cargo-modules (crates.io), the tool issue 7 names, was tried first on 2026-12-01: 0.28.0 needs
rustc 1.98 (this machine has 1.95); `cargo install --locked cargo-modules@0.27.0` was still
compiling rust-analyzer's ra_ap_* crates when a 15-minute limit stopped it on this 2-core machine
shared with other builds, against a budget of 4 minutes for a CI step. So there is no
cargo-modules verdict to compare with; this script is checked instead by --self-test and by its
verdict on the tree before the split of shard.rs (commit 782b5c0), where it names the known
circle `shard -> network -> request_handler -> shard` with shard.rs:381 (`network::bind`),
network.rs:24 and request_handler/admin.rs:21. `cargo modules dependencies --lib --acyclic`
would be the cross-check on a machine where it installs.
"""

import os
import re
import sys
import tempfile

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
KEYWORDS = {"self", "super", "crate", "Self"}


# --- lexing: blank comments and literals, keep offsets and newlines ---------------------------


def blank(text):
    """Returns `text` with comments and string/char literal contents replaced by spaces.

    Newlines are kept, so offsets and line numbers stay those of the original. Block comments
    nest, as in Rust. Raw strings (r"..", r#".."#, br, cr) and byte/char literals are handled; a
    lifetime (`'a`) is left alone.
    """
    out = list(text)
    n = len(text)
    i = 0

    def wipe(start, end):
        for k in range(start, min(end, n)):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if c == "/" and text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            wipe(i, end)
            i = end
        elif c == "/" and text.startswith("/*", i):
            depth, k = 1, i + 2
            while k < n and depth:
                if text.startswith("/*", k):
                    depth, k = depth + 1, k + 2
                elif text.startswith("*/", k):
                    depth, k = depth - 1, k + 2
                else:
                    k += 1
            wipe(i, k)
            i = k
        elif c in "rbc" and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'(?:br|cr|r)(#*)"', text[i:])
            if m:
                hashes = m.group(1)
                close = '"' + hashes
                end = text.find(close, i + m.end())
                end = n if end < 0 else end + len(close)
                wipe(i + 1, end)
                i = end
            elif text.startswith(('b"', 'c"'), i):
                i = skip_string(text, i + 1, wipe)
            elif text.startswith("b'", i):
                i = skip_char(text, i + 1, wipe)
            else:
                i += 1
        elif c == '"':
            i = skip_string(text, i, wipe)
        elif c == "'":
            i = skip_char(text, i, wipe)
        else:
            i += 1
    return "".join(out)


def skip_string(text, i, wipe):
    """`text[i]` is the opening quote of a (non-raw) string: blank it to its closing quote."""
    k = i + 1
    while k < len(text) and text[k] != '"':
        k += 2 if text[k] == "\\" else 1
    wipe(i + 1, k)
    return k + 1


def skip_char(text, i, wipe):
    """`text[i]` is a quote: a char literal is blanked, a lifetime or label is skipped."""
    m = re.match(r"'(\\u\{[0-9A-Fa-f]*\}|\\.|[^\\'\n])'", text[i:])
    if m:
        wipe(i + 1, i + m.end() - 1)
        return i + m.end()
    return i + 1


def matching_brace(text, open_at):
    """Offset just past the `}` matching the `{` at `open_at` (in blanked text)."""
    depth = 0
    for k in range(open_at, len(text)):
        if text[k] == "{":
            depth += 1
        elif text[k] == "}":
            depth -= 1
            if depth == 0:
                return k + 1
    return len(text)


def item_end(text, start):
    """End of the item starting at `start`: its `;` or its matching `}` at nesting depth 0.

    Braces inside the item's header (generics, attribute arguments) do not occur before its
    first `{`/`;` in practice, except attributes `#[..]`, whose brackets are skipped.
    """
    k = start
    square = 0
    while k < len(text):
        ch = text[k]
        if ch == "[":
            square += 1
        elif ch == "]":
            square -= 1
        elif square == 0 and ch == ";":
            return k + 1
        elif square == 0 and ch == "{":
            return matching_brace(text, k)
        k += 1
    return len(text)


def line_of(text, offset):
    return text.count("\n", 0, offset) + 1


# --- use trees ---------------------------------------------------------------------------------


def group_heads(text, open_at):
    """First path segments of each element of the `{..}` use group opening at `open_at`.

    `crate::{a::X, b, c::{..}}` gives a, b, c. Returns (heads, end offset).
    """
    end = matching_brace(text, open_at)
    inner = text[open_at + 1 : end - 1]
    heads, depth, element = [], 0, []
    for ch in inner + ",":
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            m = re.match(r"\s*(" + IDENT + ")", "".join(element))
            if m:
                heads.append(m.group(1))
            element = []
        else:
            element.append(ch)
    return heads, end


def heads_after(text, pos):
    """Names right after a `::` ending at `pos`: one ident, or a `{..}` group's heads."""
    rest = text[pos:]
    m = re.match(r"\s*\{", rest)
    if m:
        heads, _ = group_heads(text, pos + m.end() - 1)
        return heads
    m = re.match(r"\s*(" + IDENT + ")", rest)
    return [m.group(1)] if m else []


# --- one crate ---------------------------------------------------------------------------------


class Crate:
    def __init__(self, src):
        self.src = src
        self.lib = os.path.join(src, "lib.rs")
        self.package = package_name(src)
        self.modules = top_level_modules(src)
        self.files = rust_files(src)
        self.reexports = {}
        self.edges = {}  # (kind, source, target) -> first "file:line"
        self.warnings = []
        self.test_module_paths = set()
        self.external_aliases = set()

    def module_path(self, path):
        """Module path of a file: src/a/b.rs and src/a/b/mod.rs are ["a", "b"]; lib.rs is []."""
        rel = os.path.relpath(path, self.src)
        parts = rel[: -len(".rs")].split(os.sep)
        if parts[-1] == "mod":
            parts = parts[:-1]
        if parts in (["lib"], ["main"]):
            return []
        return parts

    def node_of(self, path):
        rel = os.path.relpath(path, self.src)
        if rel == "main.rs":
            return "main"
        if rel.startswith("bin" + os.sep):
            return "bin/" + self.module_path(path)[-1]
        parts = self.module_path(path)
        return parts[0] if parts else None

    def analyse(self):
        texts = {}
        for path in self.files:
            with open(path, encoding="utf-8") as f:
                texts[path] = blank(f.read())
        # Files of `#[cfg(test)] mod x;` declarations are test-only, like inline test modules.
        for path, text in texts.items():
            base = self.module_path(path)
            for _, end, item in test_spans(text):
                m = re.match(r"\s*(?:pub(?:\s*\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*;", text[item:end])
                if m:
                    self.test_module_paths.add(tuple(base + [m.group(1)]))
        if self.lib in texts:
            self.reexports = parse_reexports(texts[self.lib], self.modules)
            self.external_aliases = parse_external_aliases(texts[self.lib], self.modules)
        for path, text in texts.items():
            node = self.node_of(path)
            if node is None:
                continue  # lib.rs: declares the modules; its re-exports are resolved above
            self.scan(path, node, text)
        return self

    def file_is_test(self, path):
        parts = tuple(self.module_path(path))
        return any(parts[: len(p)] == p for p in self.test_module_paths)

    def scan(self, path, node, text):
        rel = os.path.relpath(path, self.src)
        base = self.module_path(path)
        whole_file_test = self.file_is_test(path)
        tests = test_spans(text)
        inline = inline_modules(text)
        # Visibility restrictions name modules without depending on them.
        text = re.sub(r"\bpub\s*\(\s*(?:in\s+[^)]*|super|crate|self)\s*\)", lambda m: " " * len(m.group(0)), text)

        def add(target, offset):
            if target == node or target is None:
                return
            in_test = whole_file_test or any(s <= offset < e for s, e, _ in tests)
            key = ("test" if in_test else "main", node, target)
            self.edges.setdefault(key, f"{rel}:{line_of(text, offset)}")

        def resolve(name, offset, how):
            if name in self.modules:
                return name
            if name in self.reexports:
                return self.reexports[name]
            if name not in KEYWORDS and name not in self.external_aliases:
                self.warnings.append(f"{rel}:{line_of(text, offset)}: {how}{name} is not a top-level module or a re-export of lib.rs")
            return None

        if node == "main" or node.startswith("bin/"):
            crate_name = self.package
            pattern = r"(?<![A-Za-z0-9_$:])" + re.escape(crate_name) + r"\s*::"
            for m in re.finditer(pattern, text):
                for head in heads_after(text, m.end()):
                    add(resolve(head, m.start(), crate_name + "::"), m.start())
            return
        for m in re.finditer(r"(?<![A-Za-z0-9_:])\$?crate\s*::", text):
            for head in heads_after(text, m.end()):
                add(resolve(head, m.start(), "crate::"), m.start())
        for m in re.finditer(r"(?<![A-Za-z0-9_:])((?:super\s*::\s*)+)", text):
            climbs = m.group(1).count("super")
            here = base + [name for s, e, name in inline if s <= m.start() < e]
            if climbs > len(here):
                self.warnings.append(f"{rel}:{line_of(text, m.start())}: super:: climbs above the crate root")
            elif climbs == len(here):
                for head in heads_after(text, m.end()):
                    if head == "*":
                        continue
                    add(resolve(head, m.start(), "super::"), m.start())
            if climbs == len(here) and re.match(r"\s*\*", text[m.end():]):
                self.warnings.append(f"{rel}:{line_of(text, m.start())}: glob import of the crate root (not resolved)")

    def graph(self, with_tests):
        nodes = set(self.modules) | {n for (_, a, b) in self.edges for n in (a, b)}
        deps = {n: {} for n in nodes}
        for (kind, a, b), site in self.edges.items():
            if kind == "main" or with_tests:
                deps[a].setdefault(b, site)
        return deps


def test_spans(text):
    """(start, end, item start) of each item under `#[cfg(test)]` (or `cfg(all(test, ..))`).

    `start` is the attribute's, `item start` just past it; offsets are in blanked text.
    """
    spans = []
    for m in re.finditer(r"#\s*\[\s*cfg\s*\(\s*(?:all\s*\(\s*)?test\s*[,)]", text):
        attr_end = text.find("]", m.end())
        if attr_end < 0:
            continue
        spans.append((m.start(), item_end(text, attr_end + 1), attr_end + 1))
    return spans


def inline_modules(text):
    """(start, end, name) of each `mod name { .. }` in blanked text."""
    spans = []
    for m in re.finditer(r"\bmod\s+(" + IDENT + r")\s*\{", text):
        spans.append((m.start(), matching_brace(text, m.end() - 1), m.group(1)))
    return spans


def parse_reexports(lib_text, modules):
    """Names lib.rs re-exports (`pub use [crate::]x::..::Name [as Alias]`), mapped to module x."""
    names = {}
    for m in re.finditer(r"\bpub\s+use\s+(?:crate\s*::\s*)?(" + IDENT + r")\s*::([^;]*);", lib_text):
        module, rest = m.group(1), m.group(2)
        if module not in modules:
            continue
        for leaf in re.findall(r"(" + IDENT + r")\s*(?=[,}]|$)", rest.strip()):
            names[leaf] = module
        for alias in re.findall(r"\bas\s+(" + IDENT + ")", rest):
            names[alias] = module
    return names


def parse_external_aliases(lib_text, modules):
    """Names lib.rs gives to other crates (`pub use other_crate as name;`, `extern crate x as y;`,
    `pub use other_crate;`): paths through them leave the crate, so they are not edges."""
    names = set()
    pattern = r"\b(?:use|extern\s+crate)\s+(?:::)?(" + IDENT + r")\s*(?:as\s+(" + IDENT + r"))?\s*;"
    for m in re.finditer(pattern, lib_text):
        if m.group(1) not in modules and m.group(1) not in KEYWORDS:
            names.add(m.group(2) or m.group(1))
    return names


def package_name(src):
    cargo = os.path.join(os.path.dirname(os.path.abspath(src)), "Cargo.toml")
    name = None
    try:
        with open(cargo, encoding="utf-8") as f:
            section = None
            for line in f:
                s = line.strip()
                if s.startswith("["):
                    section = s
                m = re.match(r'name\s*=\s*"([^"]+)"', s)
                if m and section == "[lib]":
                    return m.group(1).replace("-", "_")
                if m and section == "[package]" and name is None:
                    name = m.group(1)
    except OSError:
        pass
    return (name or "crate_name_unknown").replace("-", "_")


def top_level_modules(src):
    mods = set()
    for entry in os.listdir(src):
        full = os.path.join(src, entry)
        if entry.endswith(".rs") and entry not in ("lib.rs", "main.rs"):
            mods.add(entry[: -len(".rs")])
        elif os.path.isdir(full) and entry != "bin" and os.path.exists(os.path.join(full, "mod.rs")):
            mods.add(entry)
    for entry in os.listdir(src):  # src/x.rs with children in src/x/
        if os.path.isdir(os.path.join(src, entry)) and os.path.exists(os.path.join(src, entry + ".rs")):
            mods.add(entry)
    return mods


def rust_files(src):
    files = []
    for root, dirs, names in os.walk(src):
        dirs.sort()
        for name in sorted(names):
            if name.endswith(".rs"):
                files.append(os.path.join(root, name))
    return files


# --- cycles ------------------------------------------------------------------------------------


def find_cycle(deps):
    """A cycle as a list of nodes [a, b, .., a], or None. Depth-first, deterministic order."""
    state = {}
    stack = []

    def visit(n):
        state[n] = "open"
        stack.append(n)
        for m in sorted(deps.get(n, {})):
            if state.get(m) == "open":
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = "done"
        return None

    for n in sorted(deps):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def layers(deps):
    """Nodes grouped by depth: layer 0 uses no other module, layer k uses layers < k."""
    depth = {}

    def d(n, seen=()):
        if n in depth:
            return depth[n]
        if n in seen:
            return 0
        depth[n] = 1 + max((d(m, seen + (n,)) for m in deps.get(n, {})), default=-1)
        return depth[n]

    for n in deps:
        d(n)
    return sorted(deps, key=lambda n: (depth[n], n)), depth


def report(crate, with_tests, out):
    deps = crate.graph(with_tests)
    order, depth = layers(deps)
    print(f"module graph of {crate.src} ({'with' if with_tests else 'without'} #[cfg(test)] code), "
          "modules in dependency order:", file=out)
    for n in order:
        uses = ", ".join(f"{m} ({site})" for m, site in sorted(deps[n].items())) or "-"
        print(f"  [{depth[n]}] {n} -> {uses}", file=out)
    test_only = sorted((a, b, site) for (kind, a, b), site in crate.edges.items()
                       if kind == "test" and b not in crate.graph(False).get(a, {}))
    if test_only:
        label = "checked" if with_tests else "not checked"
        print(f"edges only from #[cfg(test)] code ({label}):", file=out)
        for a, b, site in test_only:
            print(f"  {a} -> {b} ({site})", file=out)
    for w in crate.warnings:
        print(f"warning: {w}", file=out)
    cycle = find_cycle(deps)
    if cycle:
        print("CYCLE: " + " -> ".join(cycle), file=out)
        for a, b in zip(cycle, cycle[1:]):
            print(f"  {a} -> {b}: {deps[a][b]}", file=out)
        return 1
    print("no cycle", file=out)
    return 0


# --- self test ---------------------------------------------------------------------------------


SELF_TESTS = [
    # (name, {file: text}, with_tests, expected cycle or None)
    ("use crate path", {
        "lib.rs": "pub mod a; pub mod b;",
        "a.rs": "use crate::b::X;",
        "b.rs": "use crate::a::Y;",
    }, False, ["a", "b", "a"]),
    ("use group and body path", {
        "lib.rs": "pub mod a; pub mod b; pub mod c;",
        "a.rs": "use crate::{\n  c::Z,\n  b::{self, X},\n};",
        "b.rs": "fn f() { let _ = crate::c::g(); }",
        "c.rs": "fn g() { crate::a::h() }",
    }, False, ["a", "b", "c", "a"]),
    ("super escapes from a nested file", {
        "lib.rs": "mod a; mod b;",
        "a/mod.rs": "mod inner;",
        "a/inner.rs": "fn f() { super::super::b::g(); super::sibling(); }",
        "b.rs": "use super::a::X;",
    }, False, ["a", "b", "a"]),
    ("super inside an inline module stays inside", {
        "lib.rs": "mod a; mod b;",
        "a.rs": "mod inner { use super::X; }",
        "b.rs": "use crate::a::X;",
    }, False, None),
    ("comments, strings and chars are not references", {
        "lib.rs": "mod a; mod b;",
        "a.rs": "/// see [`crate::b::X`]\n// crate::b\n/* crate::b /* nested */ crate::b */\n"
                "const S: &str = \"crate::b::X\"; const R: &str = r#\"crate::b\"#;\n"
                "const C: char = '{'; fn f<'a>(x: &'a str) {}",
        "b.rs": "use crate::a::S;",
    }, False, None),
    ("cfg(test) edges are reported, not checked", {
        "lib.rs": "mod a; mod b;",
        "a.rs": "#[cfg(test)]\nmod tests { use crate::b::X; }",
        "b.rs": "use crate::a::S;",
    }, False, None),
    ("cfg(test) edges checked with --with-tests", {
        "lib.rs": "mod a; mod b;",
        "a.rs": "#[cfg(test)]\nmod tests { use crate::b::X; }",
        "b.rs": "use crate::a::S;",
    }, True, ["a", "b", "a"]),
    ("code after a cfg(test) item is checked", {
        "lib.rs": "mod a; mod b;",
        "a.rs": "#[cfg(test)]\nfn t() { }\nfn f() { crate::b::g() }",
        "b.rs": "use crate::a::S;",
    }, False, ["a", "b", "a"]),
    ("cfg(test) file module", {
        "lib.rs": "mod a; mod b;",
        "a/mod.rs": "#[cfg(test)]\nmod tests;",
        "a/tests.rs": "use crate::b::X;",
        "b.rs": "use crate::a::S;",
    }, False, None),
    ("re-export through lib.rs", {
        "lib.rs": "mod a; mod b; pub use b::Thing;",
        "a.rs": "use crate::Thing;",
        "b.rs": "use crate::a::S;",
    }, False, ["a", "b", "a"]),
    ("another crate re-exported under a module's old name", {
        "lib.rs": "pub mod a; pub use pkg_protocol as protocol;",
        "a.rs": "use crate::protocol::Batch;",
    }, False, None),
    ("visibility restriction is not a reference", {
        "lib.rs": "mod a; mod b;",
        "a.rs": "pub(in crate::b) fn f() {}",
        "b.rs": "use crate::a::f;",
    }, False, None),
    ("binary uses the library by package name", {
        "lib.rs": "pub mod a;",
        "main.rs": "fn main() { pkg::a::run(); }",
        "a.rs": "",
    }, False, None),
    ("acyclic chain", {
        "lib.rs": "pub mod a; pub mod b; pub mod c;",
        "a.rs": "use crate::b::X; fn f() { crate::c::g() }",
        "b.rs": "use crate::c::Y;",
        "c.rs": "",
    }, False, None),
]


def self_test():
    failures = 0
    for name, files, with_tests, expected in SELF_TESTS:
        with tempfile.TemporaryDirectory() as root:
            with open(os.path.join(root, "Cargo.toml"), "w") as f:
                f.write('[package]\nname = "pkg"\n')
            src = os.path.join(root, "src")
            for rel, text in files.items():
                path = os.path.join(src, rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as f:
                    f.write(text)
            crate = Crate(src).analyse()
            got = find_cycle(crate.graph(with_tests))
            ok = got == expected
            if name == "binary uses the library by package name":
                ok = ok and ("main", "a") in {(a, b) for (_, a, b) in crate.edges}
            if name == "another crate re-exported under a module's old name":
                ok = ok and not crate.warnings and not crate.edges
            if name == "cfg(test) edges are reported, not checked":
                ok = ok and ("test", "a", "b") in crate.edges
            print(f"{'ok  ' if ok else 'FAIL'} {name}: got {got}, expected {expected}")
            failures += not ok
    print(f"self-test: {len(SELF_TESTS) - failures} passed, {failures} failed")
    return 1 if failures else 0


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    flags = {a for a in argv if a.startswith("--")}
    unknown = flags - {"--with-tests", "--self-test"}
    if unknown or len(args) > 1:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    if "--self-test" in flags:
        return self_test()
    src = args[0] if args else "src"
    if not os.path.isdir(src):
        print(f"check-module-graph: {src} is not a directory", file=sys.stderr)
        return 2
    return report(Crate(src).analyse(), "--with-tests" in flags, sys.stdout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Compiles every Swift snippet of the README and the DocC catalogs as a
consumer of the package would: Rust's doctests, for Swift.

Each document becomes an executable target of a package of its own (in
.build-snippets/), which depends on swift-libev by path and links its EV,
EventCore, Epoll, Resolver, TLS, EventLoopServices and EventLoopTesting products (with ServiceLifecycle and Logging), as an app does. A document's snippets
go into its main.swift in order, as a reader would type them into one
program: the first at top level, each later one in a `do { }` nested in
the one before, so that it sees what the earlier ones declared and may
declare the same names again; type declarations move to the top level.
A snippet's imports are its own and those of the snippets before it in
the document - nothing else, so a snippet that uses `SIGINT` without
`import Glibc` (and nothing before it imports it) fails, as it would for a
reader. Names a snippet only alludes to (`descriptor`, `address`,
`reload()`) come from a file of placeholders that the snippets cannot see
the imports of.

Fails on any error, and on any warning but those that snippets cannot help
(a variable never used or never mutated: a snippet shows a call, not a
program). Manifest fragments (`.product(...)`) are skipped.

    check_snippets.py [--keep] [ROOT]
"""
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.abspath(next((a for a in sys.argv[1:] if not a.startswith("--")), os.path.join(os.path.dirname(__file__), "..", "..")))
OUT = os.path.join(ROOT, ".build-snippets")

# What each document imports before its first snippet: nothing. Its
# module is what a reader of its catalog has imported, though: the first
# snippet of a catalog article that imports nothing gets the catalog's module.
CATALOG_MODULE = {"EV.docc": "EV", "EventCore.docc": "EventCore", "Epoll.docc": "Epoll", "Resolver.docc": "Resolver", "TLS.docc": "TLS", "EventLoopServices.docc": "EventLoopServices", "EventLoopTesting.docc": "EventLoopTesting"}

PLACEHOLDERS = '''\
// Names the documentation's snippets allude to without declaring them.
import EV
import Epoll
import EventCore
import Glibc

nonisolated(unsafe) public var done = false
public let descriptor = FileDescriptor(rawValue: 0)
public let socket = FileDescriptor(rawValue: 0)
public let address = try! SocketAddress(parsing: "127.0.0.1:9")
public let pid: pid_t = 1
public let other: pid_t = 2
nonisolated(unsafe) public let context: OpaquePointer? = nil
public func redisLibevAttach(_ loop: OpaquePointer, _ context: OpaquePointer?) {}
public func reload() {}
public func rotateLogs() {}
public func backgroundWork() -> Bool { false }
public func flushOutput() {}
public func pollOtherLibrary() {}
public func reopenFiles() {}
public func closeDatabase() {}
public func drainMyQueue() {}
'''

DECLARATION = re.compile(r"^(public |private |fileprivate |internal |package )?(final class|class|struct|enum|actor|protocol|extension)\b")


def documents():
    yield os.path.join(ROOT, "README.md"), None
    sources = os.path.join(ROOT, "Sources")
    for module in sorted(os.listdir(sources)):
        for entry in sorted(os.listdir(os.path.join(sources, module))):
            if entry.endswith(".docc"):
                catalog = os.path.join(sources, module, entry)
                for name in sorted(os.listdir(catalog)):
                    if name.endswith(".md"):
                        yield os.path.join(catalog, name), CATALOG_MODULE.get(entry)


def snippets(path):
    """(line number, text) of each ```swift block."""
    lines = open(path, encoding="utf-8").read().split("\n")
    found, inside, start, block = [], False, 0, []
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if not inside and stripped == "```swift":
            inside, start, block = True, number + 1, []
        elif inside and stripped == "```":
            inside = False
            found.append((start, block))
        elif inside:
            block.append(line)
    return found


def is_manifest_fragment(block):
    code = [line.strip() for line in block if line.strip() and not line.strip().startswith("//")]
    return bool(code) and code[0].startswith((".product(", ".package(", ".target(", ".executableTarget("))


def split(block):
    """The snippet's imports, its type declarations and the rest."""
    imports, declarations, body = [], [], []
    index = 0
    while index < len(block):
        line = block[index]
        if re.match(r"^import \w+", line):
            imports.append(line.strip())
            index += 1
            continue
        if DECLARATION.match(line):
            depth, chunk = 0, []
            while index < len(block):
                chunk.append(block[index])
                depth += block[index].count("{") - block[index].count("}")
                index += 1
                if depth <= 0 and "{" in "".join(chunk):
                    break
            declarations.append(chunk)
            continue
        body.append(line)
        index += 1
    return imports, declarations, body


def main_swift(path, default_module, blocks):
    """main.swift for one document, and a map of its lines to the document's."""
    imports, seen = [], set()
    declarations, nested = [], []
    for start, block in blocks:
        snippet_imports, snippet_declarations, body = split(block)
        if not imports and not snippet_imports and default_module:
            snippet_imports = [f"import {default_module}"]
        for line in snippet_imports:
            if line not in seen:
                seen.add(line)
                imports.append(line)
        for chunk in snippet_declarations:
            declarations.append((start + block.index(chunk[0]), chunk))
        nested.append((start, block, body))
    out, origin = [], []

    def emit(text, where):
        out.append(text)
        origin.append(where)

    for line in imports:
        emit(line, None)
    emit("import SnippetPlaceholders", None)
    for first, chunk in declarations:
        for offset, line in enumerate(chunk):
            emit(line, first + offset)
    depth = 0
    for index, (start, block, body) in enumerate(nested):
        if index > 0:
            emit("    " * (depth - 1) + "do {", None)
        for line in body:
            emit(("    " * depth + line) if line.strip() else "", start + block.index(line) if line in block else None)
        depth += 1
    for level in range(depth - 1, 0, -1):
        emit("    " * (level - 1) + "}", None)
    return "\n".join(out) + "\n", origin


def main():
    keep = "--keep" in sys.argv
    shutil.rmtree(os.path.join(OUT, "Sources"), ignore_errors=True)
    os.makedirs(os.path.join(OUT, "Sources", "SnippetPlaceholders"), exist_ok=True)
    open(os.path.join(OUT, "Sources", "SnippetPlaceholders", "Placeholders.swift"), "w").write(PLACEHOLDERS)
    targets, origins, count = [], {}, 0
    for path, module in documents():
        blocks = [(start, block) for start, block in snippets(path) if not is_manifest_fragment(block)]
        if not blocks:
            continue
        count += len(blocks)
        name = re.sub(r"\W", "", os.path.relpath(path, ROOT).replace(".docc", "").replace(".md", "").title())
        directory = os.path.join(OUT, "Sources", name)
        os.makedirs(directory, exist_ok=True)
        text, origin = main_swift(path, module, blocks)
        open(os.path.join(directory, "main.swift"), "w").write(text)
        targets.append(name)
        origins[os.path.join(directory, "main.swift")] = (os.path.relpath(path, ROOT), origin)
    manifest = f'''// swift-tools-version: 6.2
// Generated by Tests/Docs/check_snippets.py: the documentation's snippets, compiled as a consumer's code.
import PackageDescription

let products: [Target.Dependency] = [
    .product(name: "EV", package: "swift-libev"),
    .product(name: "EventCore", package: "swift-libev"),
    .product(name: "Epoll", package: "swift-libev"),
    .product(name: "Resolver", package: "swift-libev"),
    .product(name: "TLS", package: "swift-libev"),
    .product(name: "EventLoopServices", package: "swift-libev"),
    .product(name: "EventLoopTesting", package: "swift-libev"),
    .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
    .product(name: "Logging", package: "swift-log"),
]
let package = Package(
    name: "DocSnippets",
    dependencies: [.package(name: "swift-libev", path: "{ROOT}", traits: ["EventLoopServices"]),
                   .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
                   .package(url: "https://github.com/apple/swift-log", from: "1.6.0")],
    targets: [
        .target(name: "SnippetPlaceholders", dependencies: products),
''' + "".join(f'        .executableTarget(name: "{name}", dependencies: products + ["SnippetPlaceholders"]),\n' for name in targets) + '''    ],
    swiftLanguageModes: [.v6]
)
'''
    open(os.path.join(OUT, "Package.swift"), "w").write(manifest)
    print(f"check_snippets: {count} snippets of {len(targets)} documents")
    result = subprocess.run(["swift", "build", "--package-path", OUT, "--scratch-path", os.path.join(OUT, ".build")],
                            capture_output=True, text=True)
    output = result.stdout + result.stderr
    problems = []
    for match in re.finditer(r"^(/[^:\n]+):(\d+):(\d+): (error|warning): (.*)$", output, re.M):
        file, line, column, kind, message = match.groups()
        if not file.startswith(OUT + "/Sources/"):
            continue
        if kind == "warning" and re.search(r"was never used|was never mutated|never read|initialization of (immutable value|variable)", message):
            continue
        document, origin = origins.get(file, (file, []))
        where = origin[int(line) - 1] if origin and int(line) - 1 < len(origin) else None
        problems.append(f"{document}:{where or '?'}: {kind}: {message}")
    for problem in dict.fromkeys(problems):
        print(problem)
    if result.returncode != 0 and not problems:
        print(output[-4000:])
    if not keep and result.returncode == 0 and not problems:
        shutil.rmtree(os.path.join(OUT, "Sources"), ignore_errors=True)
    if result.returncode != 0 or problems:
        print(f"check_snippets: {len(set(problems))} problems (the generated code is in {OUT}/Sources)")
        sys.exit(1)
    print("check_snippets: every snippet compiles")


if __name__ == "__main__":
    main()

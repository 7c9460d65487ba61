#!/usr/bin/env python3
"""The public API of EV, EventCore, Epoll, Resolver, TLS, EventLoopServices and EventLoopTesting, one declaration a line,
sorted - compared with API.txt at the repository's root, so that every
change to the surface is a reviewed diff.

    public_api.py            fail (and show the diff) when the API differs from API.txt
    public_api.py --update   write API.txt from the API as it is

It reads the symbol graphs of `swift package dump-symbol-graph` (public
symbols only, extensions of other modules' types included: EV@EventCore
and the like), and writes each symbol as its module, the path to it and
its declaration, as Swift spells it.
"""
import difflib
import glob
import json
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODULES = ("EV", "EventCore", "Epoll", "Resolver", "TLS", "EventLoopServices", "EventLoopTesting")
API_FILE = os.path.join(ROOT, "API.txt")


def symbol_graphs():
    result = subprocess.run(["swift", "package", "--traits", "EventLoopServices", "dump-symbol-graph", "--minimum-access-level", "public",
                             "--skip-synthesized-members"], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit("public_api: dump-symbol-graph failed:\n" + result.stdout[-3000:] + result.stderr[-3000:])
    match = re.search(r"Files written to (\S+)", result.stdout + result.stderr)
    directory = match.group(1) if match else glob.glob(os.path.join(ROOT, ".build", "*", "symbolgraph"))[0]
    return directory


def lines():
    directory = symbol_graphs()
    found = set()
    for module in MODULES:
        for path in glob.glob(os.path.join(directory, f"{module}.symbols.json")) + \
                glob.glob(os.path.join(directory, f"{module}@*.symbols.json")):
            graph = json.load(open(path))
            extended = os.path.basename(path).split(".")[0]
            for symbol in graph["symbols"]:
                if symbol.get("accessLevel") not in ("public", "open"):
                    continue
                declaration = "".join(fragment["spelling"] for fragment in symbol.get("declarationFragments", []))
                declaration = re.sub(r"\s+", " ", declaration).strip()
                where = ".".join(symbol["pathComponents"])
                found.add(f"{extended}: {where}: {declaration}")
    return sorted(found)


def main():
    current = lines()
    if "--update" in sys.argv:
        with open(API_FILE, "w") as file:
            file.write("# The public API of EV, EventCore, Epoll, Resolver, TLS, EventLoopServices and EventLoopTesting (Tests/API/public_api.py --update writes it).\n")
            file.write("\n".join(current) + "\n")
        print(f"public_api: {len(current)} declarations written to API.txt")
        return
    recorded = [line.rstrip("\n") for line in open(API_FILE) if not line.startswith("#")]
    if recorded == current:
        print(f"public_api: the public API is API.txt's ({len(current)} declarations)")
        return
    sys.stdout.writelines(difflib.unified_diff([line + "\n" for line in recorded], [line + "\n" for line in current],
                                               "API.txt", "the public API now"))
    sys.exit("public_api: the public API differs from API.txt; if the change is meant, run "
             "`python3 Tests/API/public_api.py --update` and commit API.txt with it")


if __name__ == "__main__":
    main()

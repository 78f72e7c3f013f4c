#!/usr/bin/env python3
"""The fidelity figures of ../shared/tools/markdown_fidelity.py, and the same with the one thing
the rendered HTML cannot tell counted as equal: the number of an ordered-list item that follows a
bullet line at the margin (`1. A:\\n* x\\n2. B:` and `1. A:\\n* x\\n1. B:` render to one `<ol>`
under Python-Markdown, which took the bullet line for lazy text of item 1; the benchmark
corpus holds about 300 turns of each, see `LazyListNumbering` in src/data/html.rs). Both figures
are printed so that what remains beyond that ambiguity stays visible. The second counts every
margin item number of a turn that holds such an item as `1.` on both sides, since the choice
carries on to the items after it (`1. C\n2. D` against `3. C\n4. D`).

Usage: fidelity_numbering.py MARKDOWN_FIDELITY_PY CLEAN TRUTH
Prints: assistant_normalized assistant_normalized_either_numbering assistant_turns
"""
import importlib.util
import re
import sys

# a list item right after a bullet line at the margin: its number is what the HTML lost
AFTER_LAZY_BULLET = re.compile(r"^[*+-][ \t].*\n\d+\. ", re.M)
ITEM_NUMBER = re.compile(r"^\d+\. ", re.M)


def either_numbering(s: str) -> str:
    return ITEM_NUMBER.sub("1. ", s) if AFTER_LAZY_BULLET.search(s) else s


def main(tool: str, clean: str, truth: str) -> None:
    spec = importlib.util.spec_from_file_location("markdown_fidelity", tool)
    fidelity = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fidelity)
    figures = {}
    for name, norm in [("as_is", fidelity.norm),
                       ("either", lambda s, n=fidelity.norm: n(either_numbering(s)))]:
        fidelity.norm = norm
        printed = []
        fidelity.print = lambda line: printed.append(line)
        fidelity.main(clean, truth)
        figures[name] = printed[0].split()
    print(figures["as_is"][1], figures["either"][1], figures["as_is"][2])


if __name__ == "__main__":
    main(*sys.argv[1:4])

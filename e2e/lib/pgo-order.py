#!/usr/bin/env python3
"""The order lld links the image's functions in (pgo/safedeploy.order), made by e2e/pgo-record.sh.

  pgo-order.py PROFILE_TEXT [MAP]

PROFILE_TEXT is the recorded profile's text form (`llvm-profdata merge --text`); MAP is lld's map
(`-Wl,-Map=`) of the image's binary built with that profile. Prints, one symbol a line:

1. the functions the recorded run entered, the most often run first;
2. with MAP, the functions of the binary the first list cannot place, in the map's order: those
   that ran under another name (LTO renames a local function "<name>.<n>"), those with no record
   in the profile (built without instrumentation: the standard library's precompiled code, of
   which the `#[cold]` ones still run whenever a vector or table grows; musl; ring's C and
   assembly), and those the compiler left with the ordinary code although their record says they
   did not run.

Every function that ran or may have run is then in one block, and the pages of code a running
operator touches hold little else: the kernel maps code in blocks of several pages around each
fault, so one function that runs among thousands that never do costs the whole block.
"""
import re
import sys

# lld's map: "VMA LMA Size Align", then an output section at 1 space, an input section at 9, a
# symbol at 17.
COLUMNS = r"^\s*[0-9a-f]+\s+[0-9a-f]+\s+[0-9a-f]+\s+\d+"
OUTPUT_SECTION = re.compile(COLUMNS + r" (\S+)$")
INPUT_SECTION = re.compile(COLUMNS + r" {9}(\S+):\((\.text[^)]*)\)$")
SYMBOL = re.compile(COLUMNS + r" {17}(\S+)$")
# A local function LTO renamed: "<name>.<n>".
LTO_SUFFIX = re.compile(r"\.\d+$")


def records(profile_text):
    """(linker symbol, highest counter) of every function in the profile."""
    for record in profile_text.split("\n\n"):
        lines = [line for line in record.split("\n") if line]
        # The file's own header ("# IR level Instrumentation Flag", ":ir") precedes the first one.
        while lines and (lines[0].startswith("#") or lines[0].startswith(":")):
            lines.pop(0)
        if not lines or "# Num Counters:" not in lines:
            continue
        at = lines.index("# Num Counters:")
        count = int(lines[at + 1])
        values = [int(value) for value in lines[at + 3 : at + 3 + count]]
        # A local function's name is prefixed with its object's name and ";", which the linker
        # does not see.
        yield lines[0].split(";", 1)[-1], max(values, default=0)


def ran(functions):
    entered = [(highest, name) for name, highest in functions if highest > 0]
    entered.sort(key=lambda function: (-function[0], function[1]))
    return unique(name for _, name in entered)


def unprofiled(map_text, recorded, ordered):
    names = []
    in_text = False
    named_by_section = True
    for line in map_text.split("\n"):
        output = OUTPUT_SECTION.match(line)
        if output:
            in_text = output.group(1) == ".text"
            continue
        if not in_text:
            continue
        section = INPUT_SECTION.match(line)
        if section:
            obj, name = section.groups()
            # Rust objects name each function's section after its mangled name; C and assembly
            # objects may hold several functions in one ".text", named by their symbols.
            named_by_section = obj.endswith(".rcgu.o") and name != ".text"
            if named_by_section:
                cold = name.startswith(".text.unlikely.")
                name = re.sub(r"^\.text\.(hot\.|unlikely\.|startup\.)?", "", name)
                base = LTO_SUFFIX.sub("", name)
                if not cold or base not in recorded or base in ordered:
                    names.append(name)
            continue
        symbol = SYMBOL.match(line)
        if symbol and not named_by_section:
            names.append(symbol.group(1))
    return unique(name for name in names if name not in ordered)


def unique(names):
    seen = set()
    return [name for name in names if not (name in seen or seen.add(name))]


def main(argv):
    if len(argv) not in (2, 3):
        sys.exit(__doc__)
    with open(argv[1]) as profile:
        functions = list(records(profile.read()))
    order = ran(functions)
    if len(argv) == 3:
        with open(argv[2]) as map_file:
            recorded = {name for name, _ in functions}
            order += unprofiled(map_file.read(), recorded, set(order))
    print("\n".join(order))


if __name__ == "__main__":
    main(sys.argv)

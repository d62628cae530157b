#!/usr/bin/env bash
# Checks the documentation (README.md and the mdBook in docs/); e2e/test-all.sh runs it:
#   1. installs mdbook (pinned, below) once into the cache and builds the book (book.toml),
#   2. fails on a broken internal link: every relative link and #anchor in README.md and docs/
#      must name an existing file and heading; links in docs/ must stay inside docs/ (the book
#      cannot serve anything else); the same is checked again in the rendered HTML, and every
#      page of docs/ must be in docs/SUMMARY.md,
#   3. fails on a command the CLI no longer has: for every `safedeploy …` / `kubectl safedeploy …`
#      in a shell code block or an inline code span, the subcommand must exist and each --flag
#      (and -x) must appear in that subcommand's --help,
#   4. fails on a rustdoc warning (a broken intra-doc link, or a public item's docs linking to a
#      private one): `cargo doc --no-deps` with RUSTDOCFLAGS="-D warnings". It documents only this
#      crate and reuses the dependencies' metadata that cargo clippy/check left in the target dir.
# Env: SAFEDEPLOY_BIN (default: the cargo target dir's debug/safedeploy), SAFEDEPLOY_CACHE (default
# ~/.cache/safedeploy; mdbook is installed under its tools/), DOCS_CHECK_VERBOSE=1 (list every
# command checked).
set -euo pipefail

MDBOOK_VERSION=0.5.4
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
die() { echo "docs-check: error: $*" >&2; exit 1; }

BIN="${SAFEDEPLOY_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/debug/safedeploy}"
[ -x "$BIN" ] || die "no safedeploy binary at $BIN (cargo build, or set SAFEDEPLOY_BIN)"
command -v python3 >/dev/null || die "python3 is required"

# --- 1. mdbook, installed once and cached ------------------------------------------------------
TOOLS="${SAFEDEPLOY_CACHE:-$HOME/.cache/safedeploy}/tools"
MDBOOK="$TOOLS/bin/mdbook"
if [ "$("$MDBOOK" --version 2>/dev/null)" != "mdbook v$MDBOOK_VERSION" ]; then
  echo "docs-check: installing mdbook $MDBOOK_VERSION into $TOOLS (once; a few minutes)"
  build_dir="$(mktemp -d -t safedeploy-mdbook.XXXXXX)"
  CARGO_TARGET_DIR="$build_dir" cargo install mdbook --locked --version "$MDBOOK_VERSION" \
    --no-default-features --features search --root "$TOOLS" --force --quiet ||
    { rm -rf "$build_dir"; die "installing mdbook failed"; }
  rm -rf "$build_dir"
fi

OUT="$(mktemp -d -t safedeploy-book.XXXXXX)"
trap 'rm -rf "$OUT"' EXIT
if ! "$MDBOOK" build --dest-dir "$OUT" "$REPO" 2>&1 | sed 's/^/mdbook: /'; then
  die "mdbook build failed"
fi
[ -f "$OUT/index.html" ] || die "mdbook wrote no index.html"

# --- 2. and 3. links and commands ------------------------------------------------------------------
python3 - "$REPO" "$OUT" "$BIN" <<'PY'
import html.parser, os, re, shlex, subprocess, sys

repo, out, binary = sys.argv[1:4]
docs = os.path.join(repo, "docs")
errors = []

def md_files():
    yield os.path.join(repo, "README.md")
    for root, _, names in os.walk(docs):
        for name in sorted(names):
            if name.endswith(".md"):
                yield os.path.join(root, name)

def rel(path):
    return os.path.relpath(path, repo)

FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")

def blocks(text):
    """Splits markdown into ('prose', lines) and ('code', info, lines) with 1-based line numbers."""
    prose, code, fence, info = [], None, None, ""
    for number, line in enumerate(text.split("\n"), 1):
        m = FENCE.match(line)
        if code is None and m:
            fence, info, code = m.group(1), m.group(2).lower(), []
        elif code is not None and line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
            yield ("code", info, code)
            code = None
        elif code is not None:
            code.append((number, line))
        else:
            prose.append((number, line))
    yield ("prose", "", prose)

INCLUDE = re.compile(r"\{\{#include\s+([^}\s]+)\s*\}\}")

def expand(path, depth=0):
    """The file's text with mdbook's {{#include file[:anchor]}} expanded (for headings)."""
    text = open(path, encoding="utf-8").read()
    if depth > 3:
        return text
    def one(m):
        target, _, anchor = m.group(1).partition(":")
        full = os.path.normpath(os.path.join(os.path.dirname(path), target))
        if not os.path.isfile(full):
            errors.append(f"{rel(path)}: {{{{#include {m.group(1)}}}}}: no such file")
            return ""
        body = expand(full, depth + 1)
        if anchor:
            part = re.search(r"ANCHOR:\s*%s\b.*?\n(.*?)\n[^\n]*ANCHOR_END:\s*%s\b" % (re.escape(anchor), re.escape(anchor)), body, re.S)
            if not part:
                errors.append(f"{rel(path)}: {{{{#include {m.group(1)}}}}}: no anchor {anchor}")
                return ""
            body = part.group(1)
        return body
    return INCLUDE.sub(one, text)

def heading_id(content):
    # mdbook-html's id_from_content (and, for these headings, GitHub's): the text content,
    # lowercased, whitespace to '-', only alphanumerics, '_' and '-' kept.
    content = re.sub(r"`([^`]*)`", r"\1", content)
    content = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", content)
    content = re.sub(r"<[^>]+>", "", content)
    content = content.replace("**", "").replace("*", "")
    out = []
    for ch in content.strip().lower():
        if ch.isalnum() or ch in "_-":
            out.append(ch)
        elif ch.isspace():
            out.append("-")
    return "".join(out)

anchor_cache = {}
def anchors(path):
    if path not in anchor_cache:
        ids, used = set(), {}
        for kind, *rest in blocks(expand(path)):
            if kind != "prose":
                continue
            for _, line in rest[-1]:
                m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
                if m:
                    base = heading_id(m.group(2))
                    n = used.get(base, 0)
                    ids.add(base if n == 0 else f"{base}-{n}")
                    used[base] = n + 1
                for explicit in re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", line):
                    ids.add(explicit)
        anchor_cache[path] = ids
    return anchor_cache[path]

LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFDEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
HREF = re.compile(r"<a\s[^>]*href=\"([^\"]+)\"")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")

def check_link(path, number, target):
    if SCHEME.match(target) or target.startswith("{{"):
        return
    where = f"{rel(path)}:{number}: link {target}"
    file_part, _, fragment = target.partition("#")
    dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
    if not os.path.exists(dest):
        errors.append(f"{where}: {rel(dest)} does not exist")
        return
    if path.startswith(docs + os.sep) and not (dest == docs or dest.startswith(docs + os.sep)):
        errors.append(f"{where}: leaves docs/ (the book cannot serve it; name the file in `code` instead)")
        return
    if fragment and dest.endswith(".md") and fragment not in anchors(dest):
        errors.append(f"{where}: no heading #{fragment} in {rel(dest)}")

# --- links in the markdown sources ---
for path in md_files():
    for kind, *rest in blocks(open(path, encoding="utf-8").read()):
        if kind != "prose":
            continue
        for number, line in rest[-1]:
            line = re.sub(r"`[^`]*`", "", line)
            for target in LINK.findall(line) + HREF.findall(line):
                check_link(path, number, target)
            m = REFDEF.match(line)
            if m:
                check_link(path, number, m.group(1))

# --- every page is in the book ---
summary = open(os.path.join(docs, "SUMMARY.md"), encoding="utf-8").read()
listed = {os.path.normpath(os.path.join(docs, t.partition("#")[0])) for t in LINK.findall(summary)}
for path in md_files():
    if path.startswith(docs + os.sep) and os.path.basename(path) != "SUMMARY.md" and path not in listed:
        errors.append(f"{rel(path)}: not in docs/SUMMARY.md, so the book leaves it out")

# --- links in the rendered book ---
class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.hrefs, self.main = set(), [], 0
    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "main":
            self.main += 1
        elif tag == "a" and self.main and attrs.get("href"):
            self.hrefs.append(attrs["href"])
    def handle_endtag(self, tag):
        if tag == "main":
            self.main -= 1

pages = {}
for root, _, names in os.walk(out):
    for name in names:
        if name.endswith(".html"):
            page = Page()
            page.feed(open(os.path.join(root, name), encoding="utf-8").read())
            pages[os.path.normpath(os.path.join(root, name))] = page
for path, page in sorted(pages.items()):
    if os.path.basename(path) in ("print.html", "404.html", "toc.html"):
        continue
    for href in page.hrefs:
        if SCHEME.match(href):
            continue
        file_part, _, fragment = href.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
        where = f"book/{os.path.relpath(path, out)}: href {href}"
        if not (dest == out or dest.startswith(out + os.sep)) or not os.path.exists(dest):
            errors.append(f"{where}: not in the rendered book")
        elif fragment and dest in pages and fragment not in pages[dest].ids:
            errors.append(f"{where}: no id {fragment}")

# --- commands shown in the docs against the CLI ---
help_cache = {}
def help_of(path):
    if path not in help_cache:
        run = subprocess.run([binary, *path, "--help"], capture_output=True, text=True)
        help_cache[path] = run.stdout if run.returncode == 0 else None
    return help_cache[path]

def subcommands(text):
    names, inside = set(), False
    for line in text.split("\n"):
        if re.match(r"^\S.*:$", line):
            inside = line.startswith("Commands:")
        elif inside:
            m = re.match(r"^\s+([a-z][\w-]*)", line)
            if m:
                names.add(m.group(1))
    names.discard("help")
    return names

def name(command):
    return " ".join(("safedeploy",) + command)

def check_command(path, number, args, shown):
    where = f"{rel(path)}:{number}: `{shown.strip()}`"
    if os.environ.get("DOCS_CHECK_VERBOSE"):
        print(f"docs-check: {rel(path)}:{number}: safedeploy {' '.join(args)}")
    command = ()
    text = help_of(command)
    if text is None:
        errors.append(f"{where}: `{binary} --help` failed")
        return
    for arg in args:
        arg = arg.strip("[]")
        if not arg or arg == "--":
            break
        if arg.startswith("--"):
            flag = arg.split("=", 1)[0]
            if flag not in ("--help",) and not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(flag), text):
                errors.append(f"{where}: `{name(command)}` has no {flag} (see its --help)")
        elif re.fullmatch(r"-[A-Za-z]", arg):
            if arg != "-h" and not re.search(r"(?<![\w-])%s," % re.escape(arg), text):
                errors.append(f"{where}: `{name(command)}` has no {arg} (see its --help)")
        elif re.fullmatch(r"[a-z][\w-]*", arg) and subcommands(text):
            if arg not in subcommands(text):
                errors.append(f"{where}: `{name(command)}` has no subcommand {arg}")
                return
            command = command + (arg,)
            text = help_of(command)
            if text is None:
                errors.append(f"{where}: `{name(command)} --help` failed")
                return

SEPARATORS = set("();|&")
WRAPPERS = {"$", "exec", "time", "nice", "sudo", "env", "command"}

def invocations(line):
    """Yields the argument lists of safedeploy invocations at a command position of a shell line."""
    try:
        lexer = shlex.shlex(line, posix=True, punctuation_chars="();|&")
        lexer.whitespace_split = True
        tokens = list(lexer)
    except ValueError:
        tokens = line.split()
    start = True
    for i, token in enumerate(tokens):
        if token and set(token) <= SEPARATORS:
            start = True
            continue
        if not start:
            continue
        if token in WRAPPERS or re.match(r"^[A-Za-z_]\w*=", token):
            continue
        start = False
        rest = tokens[i + 1:]
        if os.path.basename(token) in ("safedeploy", "kubectl-safedeploy"):
            args = rest
        elif token == "kubectl" and rest[:1] == ["safedeploy"]:
            args = rest[1:]
        else:
            continue
        cut = next((j for j, t in enumerate(args) if t and set(t) <= SEPARATORS), len(args))
        if cut:  # the bare name (the project, the field manager) is no command
            yield args[:cut]

SHELL = {"", "bash", "sh", "shell", "console", "zsh"}
INLINE = re.compile(r"(?<!`)`([^`]+)`(?!`)")
checked = 0
for path in md_files():
    for kind, info, lines in blocks(open(path, encoding="utf-8").read()):
        if kind == "code" and info in SHELL:
            joined, first = "", None
            for number, line in lines:
                first = first or number
                if line.rstrip().endswith("\\"):
                    joined += line.rstrip()[:-1] + " "
                    continue
                joined += line
                for args in invocations(joined):
                    check_command(path, first, args, joined)
                    checked += 1
                joined, first = "", None
        elif kind == "prose":
            text = "\n".join(line for _, line in lines)
            numbers = [number for number, _ in lines]
            for m in INLINE.finditer(text):
                span = " ".join(m.group(1).split())
                if re.match(r"^(kubectl )?safedeploy(\s|$)", span):
                    number = numbers[text.count("\n", 0, m.start())]
                    for args in invocations(span):
                        check_command(path, number, args, span)
                        checked += 1

if errors:
    print("\n".join(f"docs-check: {e}" for e in errors), file=sys.stderr)
    print(f"docs-check: {len(errors)} problem(s)", file=sys.stderr)
    sys.exit(1)
print(f"docs-check: book built; links fine; {checked} safedeploy commands match the CLI")
PY

# --- 4. the API docs: rustdoc's warnings are errors ------------------------------------------------
RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -D warnings" cargo doc --no-deps --quiet ||
  die "cargo doc warned (a broken intra-doc link, or public docs linking to a private item: above)"
echo "docs-check: cargo doc --no-deps: no rustdoc warning"

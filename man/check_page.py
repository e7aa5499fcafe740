#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Checks a man page against the tool it documents.

1. The page renders without a single warning: groff -man -ww -z, and
   man -l --warnings (man-db's own pipeline: preconv, tbl, ...).
2. Every option the tool's --help lists is in the page: the top level's in
   .SH OPTIONS, each subcommand's (found by running "TOOL SUB... --help"
   recursively) in the .SS section titled with the subcommand's words; every
   subcommand has such a section, and every .SS under a ...COMMANDS heading
   names a subcommand that exists.
3. Optionally (--footer-options SECTION) the option names listed in the
   help's footer (mount.composefs -o options) appear in that section, and
   (--usage-commands SECTION) the commands of a "[a|b|c]" usage line in that
   section's .TP items (composefs-info).

TOOL "-": a page without a tool of its own (composefs-dump(5)), only rendered;
--dump-example MKCOMPOSEFS then also feeds the .SH EXAMPLE's .EX block, as
text, to "MKCOMPOSEFS --from-file - --print-digest-only", which must accept it.

--expect-missing OPT re-runs check 2 on the page with OPT deleted and
succeeds only if exactly that option is reported: the check can fail.
--expect-render-warning renders the page with an invalid request added and
succeeds only if rendering fails.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def render_problems(page):
    problems = []
    env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80")
    r = run(["groff", "-man", "-ww", "-z", "-Tutf8", page], env=env)
    if r.returncode != 0 or r.stderr.strip():
        problems.append(f"groff -man -ww: exit {r.returncode}: {r.stderr.strip()}")
    r = run(["man", "--warnings=w", "-l", page], env=env)
    if r.returncode != 0 or r.stderr.strip():
        problems.append(f"man -l: exit {r.returncode}: {r.stderr.strip()}")
    elif len(r.stdout.splitlines()) < 10:
        problems.append("man -l rendered fewer than 10 lines")
    return problems


class Help:
    def __init__(self, text):
        self.options, self.subcommands, self.footer = [], [], []
        self.aliases = {}
        section = None
        for line in text.splitlines():
            head = line.strip().rstrip(":").lower()
            if line and not line.startswith(" ") and head in ("options", "positionals",
                                                              "subcommands"):
                section = head
                continue
            if line and not line.startswith(" "):
                section = "footer" if section else None
            if section == "footer":
                self.footer.append(line)
            if not re.match(r"^  \S", line):
                continue
            first = line.split()[0]
            if section == "options" and first.startswith("-"):
                self.options += [o for o in first.split(",") if o]
            elif section == "subcommands":
                # "images, list-images   List ...": a name and its aliases.
                names = re.match(r"^  ([\w-]+(?:, [\w-]+)*)", line).group(1).split(", ")
                self.subcommands.append(names[0])
                self.aliases[names[0]] = names[1:]
        self.text = text


def tool_help(tool, path):
    r = run([tool, *path, "--help"])
    if r.returncode != 0:
        sys.exit(f"{tool} {' '.join(path)} --help: exit {r.returncode}: {r.stderr}")
    return Help(r.stdout)


def all_commands(tool):
    """{(words...): Help} for the tool and every subcommand, recursively."""
    out, todo = {}, [()]
    while todo:
        path = todo.pop()
        h = tool_help(tool, list(path))
        out[path] = h
        todo += [path + (s,) for s in h.subcommands]
    return out


def normalize(src):
    """Page source as plain text: no comments, escapes reduced to characters."""
    lines = [l for l in src.splitlines() if not l.startswith('.\\"')]
    s = "\n".join(lines)
    s = s.replace("\\-", "-").replace("\\&", "").replace("\\c", "").replace("\\e", "\\")
    s = re.sub(r"\\f(\[[^]]*\]|.)", "", s)
    s = re.sub(r"\\\(..", " ", s)
    return s


def sections(text):
    """[(kind, title, body, parent SH title)] for every .SH and .SS."""
    out, cur, sh = [], None, ""
    for line in text.splitlines():
        m = re.match(r'^\.(SH|SS)\s+"?(.*?)"?\s*$', line)
        if m:
            if m.group(1) == "SH":
                sh = m.group(2)
            cur = [m.group(1), m.group(2), [], sh]
            out.append(cur)
        elif cur:
            cur[2].append(line)
    return [(k, t, "\n".join(b), p) for k, t, b, p in out]


def has_word(body, word):
    return re.search(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", body) is not None


def doc_problems(src, tool, commands, args):
    text = normalize(src)
    secs = sections(text)
    by_title = {}
    for kind, title, body, parent in secs:
        by_title.setdefault((kind, title), "")
        by_title[(kind, title)] += body + "\n"
    problems = []
    for path, h in sorted(commands.items()):
        if path and h.subcommands and set(h.options) <= {"-h", "--help"}:
            continue  # a group ("oci", "uki"): its commands have the sections
        if path:
            body = by_title.get(("SS", " ".join(path)))
            where = f".SS {' '.join(path)}"
            if body is None:
                problems.append(f"{tool}: command '{' '.join(path)}' has no {where} section")
                continue
            opts = [o for o in h.options if o not in ("-h", "--help")]
            for a in commands[path[:-1]].aliases.get(path[-1], []):
                if not has_word(body, a):
                    problems.append(f"{tool}: alias {a} of '{' '.join(path)}' not in {where}")
        else:
            body = by_title.get(("SH", "OPTIONS"), "")
            where = ".SH OPTIONS"
            opts = h.options
        for o in opts:
            if not has_word(body, o):
                problems.append(f"{tool} {' '.join(path)}: option {o} not documented in {where}")
    existing = {" ".join(p) for p in commands if p}
    for kind, title, _, parent in secs:
        if kind == "SS" and parent.endswith("COMMANDS") and title not in existing:
            problems.append(f".SS {title} documents a command {tool} does not have")
    top = commands[()]
    if args.footer_options:
        body = by_title.get(("SH", args.footer_options), "")
        for line in top.footer:
            m = re.match(r"^  ([a-z][^ ]*(?: [a-z][^ ]*)*?)(?:  |$)", line)
            if not m:
                continue
            for item in re.split(r",\s*", m.group(1)):
                name = item.split("=")[0]
                if name and name not in ("...",) and not has_word(body, name):
                    problems.append(f"{tool}: -o {name} not documented in .SH {args.footer_options}")
    if args.usage_commands:
        body = by_title.get(("SH", args.usage_commands), "")
        items = re.findall(r"^\.TP\n(.*)$", body, re.M)
        for alts in re.findall(r"\[([a-z-]+(?:\|[a-z-]+)+)\]", top.text):
            for c in alts.split("|"):
                if not any(has_word(i, c) for i in items):
                    problems.append(f"{tool}: command {c} has no .TP item in .SH {args.usage_commands}")
    return problems


def dump_example_problems(src, mkcomposefs):
    m = re.search(r"^\.SH EXAMPLE\n(?:.*\n)*?\.EX\n((?:.*\n)*?)\.EE", src, re.M)
    if not m:
        return ["no .SH EXAMPLE with an .EX block"]
    # Page text to the bytes it shows: \- is "-", \e a backslash.
    text = m.group(1).replace("\\-", "-").replace("\\e", "\\")
    r = subprocess.run([mkcomposefs, "--from-file", "-", "--print-digest-only"],
                       input=text.encode(), capture_output=True)
    out = r.stdout.decode().strip()
    if r.returncode != 0 or not re.fullmatch(r"[0-9a-f]{64}", out):
        return [f"the example dump is refused: {r.stderr.decode().strip()} ({out!r})"]
    print(f"example dump accepted: image digest {out}")
    return []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("page")
    ap.add_argument("tool")
    ap.add_argument("--footer-options")
    ap.add_argument("--usage-commands")
    ap.add_argument("--expect-missing")
    ap.add_argument("--expect-render-warning", action="store_true")
    ap.add_argument("--dump-example")
    args = ap.parse_args()
    src = open(args.page, encoding="utf-8").read()
    name = os.path.basename(args.tool)

    if args.expect_render_warning:
        with tempfile.NamedTemporaryFile("w", suffix=".1") as f:
            f.write(src + ".BX undefined request\n\\fQbad font\n")
            f.flush()
            problems = render_problems(f.name)
        if not problems:
            sys.exit("rendering a page with an undefined macro gave no warning")
        print("as expected:", *problems, sep="\n  ")
        return

    if args.tool == "-":
        problems = render_problems(args.page)
        if args.dump_example:
            problems += dump_example_problems(src, args.dump_example)
        if problems:
            print(*problems, sep="\n", file=sys.stderr)
            sys.exit(1)
        print(f"{args.page}: renders cleanly")
        return

    commands = all_commands(args.tool)
    if args.expect_missing:
        opt = args.expect_missing.replace("-", "\\-")
        cut = re.sub(r"(?<![\w-])" + re.escape(opt) + r"(?![\w-])", "", src)
        problems = doc_problems(cut, name, commands, args)
        hit = [p for p in problems if f"option {args.expect_missing} " in p]
        if not hit or len(hit) != len(problems):
            sys.exit(f"deleting {args.expect_missing} from the page gave: {problems}")
        print("as expected:", *problems, sep="\n  ")
        return

    problems = render_problems(args.page) + doc_problems(src, name, commands, args)
    n_opts = sum(len(h.options) for h in commands.values())
    if problems:
        print(*problems, sep="\n", file=sys.stderr)
        sys.exit(1)
    print(f"{args.page}: renders cleanly; {len(commands)} command(s), {n_opts} options documented")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Checks that README.md documents every tool's commands and options.

For each tool given, the README's "### TOOL..." sections (for cfsctl: also
"### cfsctl oci: ..." and "### cfsctl uki: ...") must name every command its
--help lists, recursively (as "`COMMAND" or "cfsctl ... COMMAND"), every
alias, and every option (-h/--help aside); for mount.composefs also the -o
options of its help's footer, and for composefs-info the commands of its
"[a|b|c]" usage line.  --expect-missing=OPT deletes OPT from the README
first and succeeds only if exactly that option is reported.

  check_readme.py README.md BIN_DIR TOOL... [--expect-missing=OPT]
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_page import all_commands, has_word  # noqa: E402


def tool_sections(readme, tool):
    out, keep, fenced = [], False, False
    for line in readme.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        m = None if fenced else re.match(r"^(#{1,6}) (.*)", line)
        if m:
            words = re.split(r"[\s:]+", m.group(2).strip("` "))
            keep = len(m.group(1)) == 3 and words[0].strip("`") == tool
            continue
        if keep:
            out.append(line)
    return "\n".join(out)


def problems_of(readme, bin_dir, tools):
    problems = []
    for tool in tools:
        text = tool_sections(readme, tool)
        if not text:
            problems.append(f"README.md has no '### {tool}' section")
            continue
        commands = all_commands(os.path.join(bin_dir, tool))
        for path, h in sorted(commands.items()):
            if path:
                words = " ".join(path)
                pat = r"(?:`|\b" + re.escape(tool) + r"(?: [^\s`]+)*? )" + re.escape(words) + r"(?![\w-])"
                if not h.subcommands and not re.search(pat, text):
                    problems.append(f"{tool}: command '{words}' not in README.md")
                for a in commands[path[:-1]].aliases.get(path[-1], []):
                    if not has_word(text, a):
                        problems.append(f"{tool}: alias '{a}' of '{words}' not in README.md")
            for o in h.options:
                if o not in ("-h", "--help") and not has_word(text, o):
                    problems.append(f"{tool} {' '.join(path)}: option {o} not in README.md")
        top = commands[()]
        if tool == "mount.composefs":
            for line in top.footer:
                m = re.match(r"^  ([a-z][^ ]*(?: [a-z][^ ]*)*?)(?:  |$)", line)
                for item in re.split(r",\s*", m.group(1)) if m else []:
                    name = item.split("=")[0]
                    if name and name != "..." and not has_word(text, name):
                        problems.append(f"{tool}: -o {name} not in README.md")
        for alts in re.findall(r"\[([a-z-]+(?:\|[a-z-]+)+)\]", top.text):
            for c in alts.split("|"):
                if not re.search(r"`[^`]*\b" + re.escape(c) + r"(?![\w-])", text):
                    problems.append(f"{tool}: command {c} not in README.md")
    return problems


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--expect-missing=")]
    expect = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--expect-missing=")]
    readme_path, bin_dir, tools = args[0], args[1], args[2:]
    readme = open(readme_path, encoding="utf-8").read()
    if expect:
        opt = expect[0]
        cut = re.sub(r"(?<![\w-])" + re.escape(opt) + r"(?![\w-])", "", readme)
        problems = problems_of(cut, bin_dir, tools)
        hit = [p for p in problems if f"option {opt} " in p]
        if not hit or len(hit) != len(problems):
            sys.exit(f"deleting {opt} from README.md gave: {problems}")
        print("as expected:", *problems, sep="\n  ")
        return
    problems = problems_of(readme, bin_dir, tools)
    if problems:
        print(*problems, sep="\n", file=sys.stderr)
        sys.exit(1)
    print(f"README.md documents every command and option of {', '.join(tools)}")


if __name__ == "__main__":
    main()

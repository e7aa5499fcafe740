#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Deterministic inputs of a given size for bench/scale_bench.sh:
#   gen_scale.py dump N   composefs dump (composefs-dump(5)) of N entries on stdout
#   gen_scale.py tree N DIR   a directory of N entries (files of 100 bytes,
#                             unique content, so each becomes an object)
# Both are directories of 1000 files each, so the shape does not change with N
# and the per-entry cost is what grows.
import hashlib
import os
import sys

FANOUT = 1000


def layout(n):
    """Yields (dir_index, file_index) for n entries counting the directories."""
    dirs = max(1, (n + FANOUT) // (FANOUT + 1))
    files = n - dirs
    for d in range(dirs):
        count = files // dirs + (1 if d < files % dirs else 0)
        yield d, count


def dump(n):
    out = sys.stdout
    parts = list(layout(n))
    out.write("/ 4096 40755 %d 0 0 0 1700000000.0 - - -\n" % (2 + len(parts)))
    for d, count in parts:
        out.write("/d%05d 4096 40755 2 0 0 0 1700000000.0 - - -\n" % d)
        for f in range(count):
            name = "/d%05d/f%06d" % (d, f)
            h = hashlib.sha256(name.encode()).hexdigest()
            out.write("%s 100 100644 1 0 0 0 1700000000.0 %s/%s - %s\n" % (name, h[:2], h[2:], h))


def tree(n, root):
    os.makedirs(root)
    for d, count in layout(n):
        dd = os.path.join(root, "d%05d" % d)
        os.mkdir(dd)
        for f in range(count):
            p = os.path.join(dd, "f%06d" % f)
            with open(p, "wb") as fh:
                fh.write(("%s\n" % p).encode().ljust(100, b"x"))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "dump":
        dump(int(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "tree":
        tree(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit("usage: gen_scale.py dump N | tree N DIR")

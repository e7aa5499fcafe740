#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Differential test, run by hand: random dump files through the reference
mkcomposefs and ours must give byte-identical images (or both refuse).

    tests/differential/random_dumps.py REF_MKCOMPOSEFS [OUR_MKCOMPOSEFS] [N] [SEED]

Trees are random but valid-looking: every file type, whiteouts, hardlinks
(forward and backward), xattrs (shared, escaped trusted.overlay.*, long),
inline content around block boundaries, long symlinks, big sparse sizes,
many-entry directories, names that sort around "." and "..", mtimes that
make inodes compact or extended, uids/gids over 16 bits.
"""
import os
import random
import subprocess
import sys
import tempfile


def esc(b: bytes, equal=False, lone_dash=False) -> str:
    if lone_dash and b == b"-":
        return "\\x2d"
    out = []
    for c in b:
        if c == 0x5C:
            out.append("\\\\")
        elif c == 0x0A:
            out.append("\\n")
        elif c == 0x0D:
            out.append("\\r")
        elif c == 0x09:
            out.append("\\t")
        elif c == 0x3D and equal:
            out.append("\\x3d")
        elif c < 0x21 or c > 0x7E:
            out.append("\\x%02x" % c)
        else:
            out.append(chr(c))
    return "".join(out)


def rand_name(r: random.Random) -> bytes:
    kind = r.random()
    if kind < 0.05:
        return bytes([r.choice(b"!#$%&+,-")]) + b"x"  # sorts before "."
    if kind < 0.1:
        return b"%02x" % r.randrange(256)  # collides with root stubs
    if kind < 0.12:
        return b"n" * r.choice([200, 254, 255])
    if kind < 0.15:
        return bytes(r.randrange(1, 256) for _ in range(r.randrange(1, 12))).replace(b"/", b"_")
    return ("f%d" % r.randrange(100000)).encode()


def rand_xattrs(r: random.Random, pool):
    xs = {}
    for _ in range(r.choice([0, 0, 0, 1, 1, 2, 3, 5])):
        if pool and r.random() < 0.5:
            k, v = r.choice(pool)
        else:
            prefix = r.choice([b"user.", b"trusted.", b"security.", b"trusted.overlay.",
                               b"system.posix_acl_access", b"system.posix_acl_default",
                               b"lustre.", b"other.", b"user.overlay."])
            k = prefix + (b"" if prefix.startswith(b"system") else
                          bytes(r.choice(b"abcxyz=.") for _ in range(r.randrange(1, 20))))
            v = bytes(r.randrange(256) for _ in range(r.choice([0, 1, 3, 10, 40, 300])))
            pool.append((k, v))
        xs[k] = v
    return xs


def gen(r: random.Random) -> str:
    lines = []
    pool = []
    base_mtime = r.randrange(0, 2 ** 31)
    def mtime():
        if r.random() < 0.5:
            return "%d.0" % base_mtime
        return "%d.%d" % (base_mtime + r.randrange(-5, 5), r.choice([0, 1, 999999999]))
    def ids():
        return (r.choice([0, 0, 1000, 65535, 65536, 4000000000]),
                r.choice([0, 0, 100, 70000]))
    def xattr_str(xs):
        return "".join(" %s=%s" % (esc(k, equal=True), esc(v, equal=True)) for k, v in xs.items())
    uid, gid = ids()
    lines.append("/ 4096 40755 2 %d %d 0 %s - - -%s" % (uid, gid, mtime(), xattr_str(rand_xattrs(r, pool))))
    dirs = ["/"]
    files = []
    for _ in range(r.randrange(1, 120)):
        parent = r.choice(dirs)
        name = rand_name(r)
        path = (parent.rstrip("/") + "/" + esc(name))
        if any(l.split(" ", 1)[0] == path for l in lines):
            continue
        uid, gid = ids()
        nlink = r.choice([1, 1, 2, 70000])
        t = r.random()
        xs = rand_xattrs(r, pool)
        if t < 0.25:
            lines.append("%s 4096 %o 2 %d %d 0 %s - - -%s" % (path, 0o40000 | r.choice([0o755, 0o700, 0o1777]), uid, gid, mtime(), xattr_str(xs)))
            dirs.append(path)
            if r.random() < 0.1:  # a directory with many entries
                for i in range(r.randrange(100, 600)):
                    lines.append("%s/e%d 0 100644 1 0 0 0 %d.0 - - -" % (path, i, base_mtime))
        elif t < 0.55:
            size = r.choice([0, 1, 63, 64, 65, 100, 2048, 2049, 4095, 4096, 4097, 5000])
            inline = r.random() < 0.5 and size > 0
            content = esc(bytes(r.randrange(256) for _ in range(size)), lone_dash=True) if inline else "-"
            digest = "".join(r.choice("0123456789abcdef") for _ in range(64)) if r.random() < 0.8 else "-"
            payload = "-" if inline else (r.choice(["ab/cdef", "-", "/abs", "x" * 300]) if r.random() < 0.9 else "-")
            big = r.choice([size, size, 10 ** 9, 2 ** 40, 8 * 2 ** 50])
            if inline:
                big = size
            lines.append("%s %d %o %d %d %d 0 %s %s %s %s%s" % (path, big, 0o100000 | r.choice([0o644, 0o4755, 0o600]), nlink, uid, gid, mtime(), payload, content, digest, xattr_str(xs)))
            files.append(path)
        elif t < 0.65:
            target = bytes(r.randrange(1, 256) for _ in range(r.choice([1, 10, 100, 3000, 4000, 4095])))
            tgt = esc(target, lone_dash=True)
            lines.append("%s %d 120777 1 %d %d 0 %s %s - -%s" % (path, len(target), uid, gid, mtime(), tgt, xattr_str(xs)))
            files.append(path)
        elif t < 0.75:
            rdev = r.choice([0, 0, 1, 259, 2 ** 20 + 5])
            typ = r.choice(["20", "60"])
            lines.append("%s 0 %s644 1 %d %d %d %s - - -%s" % (path, typ, uid, gid, rdev, mtime(), xattr_str(xs)))
            files.append(path)
        elif t < 0.8:
            lines.append("%s 0 %s644 1 %d %d 0 %s - - -%s" % (path, r.choice(["10", "140"]), uid, gid, mtime(), xattr_str(xs)))
            files.append(path)
        else:
            if files:
                lines.append("%s 0 @100644 0 0 0 0 0.0 %s - -" % (path, r.choice(files)))
    # Forward hardlinks: move some link lines before their targets.
    r.shuffle(lines[1:1])
    return "\n".join(lines) + "\n"


def run(tool, dump, opts):
    p = subprocess.run([tool, "--from-file"] + opts + ["-", "-"], input=dump.encode("latin-1"),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return p.returncode, p.stdout, p.stderr


def main():
    ref = sys.argv[1]
    ours = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.path.dirname(__file__), "../../build/bin/mkcomposefs")
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    bad = 0
    both_refused = 0
    for i in range(n):
        r = random.Random(seed * 1000003 + i)
        dump = gen(r)
        opts = r.choice([[], ["--min-version=1", "--max-version=1"], ["--max-version=0"]])
        rc1, img1, err1 = run(ref, dump, opts)
        rc2, img2, err2 = run(ours, dump, opts)
        if rc1 != 0 and rc2 != 0:
            both_refused += 1
            continue
        if rc1 != rc2 or img1 != img2:
            bad += 1
            fd, path = tempfile.mkstemp(prefix="diff-%d-" % i, suffix=".dump", dir="/tmp")
            os.write(fd, dump.encode("latin-1"))
            os.close(fd)
            print("MISMATCH case %d opts %s: ref rc=%d ours rc=%d (%s) saved %s" % (
                i, opts, rc1, rc2, (err1 or err2).decode(errors="replace").strip()[:200], path))
    print("%d cases, %d mismatches, %d refused by both" % (n, bad, both_refused))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()

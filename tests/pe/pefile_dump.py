#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
# Test oracle: what Python's pefile (Debian python3-pefile) reads from a PE
# file, as JSON on stdout: every COFF and optional header field, the data
# directories, every section header with the SHA-256 of its loaded bytes,
# pefile's own checksum of the file, and its parse warnings.
import hashlib
import json
import sys

import pefile



def main():
    path = sys.argv[1]
    data = open(path, "rb").read()
    pe = pefile.PE(data=data, fast_load=False)
    out = {"size": len(data)}
    out["dos"] = {"e_magic": pe.DOS_HEADER.e_magic, "e_lfanew": pe.DOS_HEADER.e_lfanew}
    out["coff"] = {k: getattr(pe.FILE_HEADER, k) for k in pe.FILE_HEADER.__field_offsets__}
    out["optional"] = {k: getattr(pe.OPTIONAL_HEADER, k) for k in pe.OPTIONAL_HEADER.__field_offsets__}
    out["optional_offset"] = pe.OPTIONAL_HEADER.get_file_offset()
    out["data_directories"] = [
        {"name": d.name, "VirtualAddress": d.VirtualAddress, "Size": d.Size}
        for d in pe.OPTIONAL_HEADER.DATA_DIRECTORY
    ]
    secs = []
    for s in pe.sections:
        d = {k: getattr(s, k) for k in s.__field_offsets__ if k != "Name"}
        d["Name"] = s.Name.rstrip(b"\0").decode("latin-1")
        d["header_offset"] = s.get_file_offset()
        n = min(s.Misc_VirtualSize, s.SizeOfRawData)
        d["sha256"] = hashlib.sha256(data[s.PointerToRawData:s.PointerToRawData + n]).hexdigest()
        secs.append(d)
    out["sections"] = secs
    out["generated_checksum"] = pe.generate_checksum()
    out["warnings"] = pe.get_warnings()
    json.dump(out, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()

"""The cffi declarations (tessera/_ffi.py) against the C headers: a C program
compiled here prints sizeof and offsetof of every structure the package
declares, which must equal cffi's layout (a field added to a header without
updating _ffi.py would otherwise corrupt memory silently)."""

import os
import shutil
import subprocess

import pytest

from conftest import SRC
from tessera._ffi import STRUCTS, ffi


def test_struct_layouts_match_the_headers(tmp_path):
    cc = shutil.which(os.environ.get("CC", "cc"))
    if not cc:
        pytest.skip("no C compiler")
    lines = ['#include "tessera.h"', "#include <stddef.h>", "#include <stdio.h>",
             "int main(void) {"]
    want = []
    for s in STRUCTS:
        lines.append('    printf("%%zu\\n", sizeof(%s));' % s)
        want.append(ffi.sizeof(s))
        for name, field in ffi.typeof(s).fields:
            lines.append('    printf("%%zu\\n", offsetof(%s, %s));' % (s, name))
            want.append(field.offset)
    lines += ["    return 0;", "}"]
    c = tmp_path / "layout.c"
    c.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "layout"
    subprocess.run([cc, "-std=c11", "-I", os.path.join(SRC, "include"), str(c), "-o", str(exe)],
                   check=True)
    got = [int(v) for v in subprocess.run([str(exe)], check=True, capture_output=True,
                                          text=True).stdout.split()]
    assert got == want

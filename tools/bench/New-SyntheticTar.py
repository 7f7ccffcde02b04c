#!/usr/bin/env python3
"""Writes a deterministic synthetic rootfs tar for the benchmark: ENTRIES entries (directories of
1000 files each) holding about BYTES bytes of file data, half random and half text, so that it
compresses roughly like real binaries. Usage: New-SyntheticTar.py OUT.tar ENTRIES BYTES"""
import io, random, sys, tarfile

out, entries, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(20261125)
pool_size = 64 << 20
pool = bytearray()
text = b"synthetic initramfs benchmark data, lib/x86_64-linux-gnu/libc.so.6 GLIBC_2.34 " * 1024
while len(pool) < pool_size:
    pool += rng.randbytes(len(text)) + text
pool = bytes(pool[:pool_size])
dirs = max(1, entries // 1000)
files = entries - dirs - 3
mean = total // max(1, files)
with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
    def add(name, kind, size=0, data=None, mode=0o644, link=""):
        info = tarfile.TarInfo(name)
        info.type, info.size, info.mode, info.mtime, info.linkname = kind, size, mode, 1700000000, link
        tar.addfile(info, io.BytesIO(data) if data is not None else None)
    add("bin", tarfile.DIRTYPE, mode=0o755)
    add("data", tarfile.DIRTYPE, mode=0o755)
    add("init", tarfile.SYMTYPE, mode=0o777, link="bin/sh")
    written = 0
    for d in range(dirs):
        add(f"data/d{d:04}", tarfile.DIRTYPE, mode=0o755)
        for f in range(files // dirs):
            size = min(pool_size, max(0, int(rng.expovariate(1.0 / mean)))) if mean > 0 else 0
            start = rng.randrange(0, pool_size - size + 1)
            add(f"data/d{d:04}/f{f:05}", tarfile.REGTYPE, size, pool[start:start + size])
            written += size
print(written)

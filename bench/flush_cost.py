#!/usr/bin/env python3
"""What one durable flush costs this machine (issue 5): CPU and wall time per write + fsync.

Each case writes some 4 KiB pages into a preallocated file and calls fsync (or fdatasync), N
times, and prints the mean wall time and the process's CPU time (user + system) per flush. The
cases separate a flush's fixed cost (one dirty page) from its cost per page (contiguous, as WAL
frames are, or scattered), the cost of writing a commit's frames one `pwrite` at a time (SQLite
writes each WAL frame's 24-byte header and its page separately, so its pages do not start on the
file's 4 KiB pages) against one `pwrite`, and fsync against fdatasync. Python's own overhead is about 1 µs per call, small beside a flush.

Usage: bench/flush_cost.py [DIR] [FLUSHES]   (defaults: /tmp, 2000; the file is removed after)
"""

import os
import resource
import sys
import tempfile
import time

PAGE = 4096
FILE_BYTES = 64 << 20


def measure(fd, name, write, sync=os.fsync, flushes=2000):
    """Runs `write(offset) -> next offset` then `sync(fd)`, `flushes` times; prints the means."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    offset = 0
    for _ in range(flushes):
        offset = write(offset) % (FILE_BYTES - (1 << 20))
        sync(fd)
    wall = (time.perf_counter() - started) / flushes
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / flushes
    print(f"| {name} | {wall * 1e6:.0f} | {cpu * 1e6:.0f} |")


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
    flushes = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    with tempfile.NamedTemporaryFile(dir=directory) as file:
        fd = file.fileno()
        # Allocated and on disk first, so no case pays for block allocation (a WAL is reused too).
        os.pwrite(fd, os.urandom(FILE_BYTES), 0)
        os.fsync(fd)
        page, header = os.urandom(PAGE), os.urandom(24)

        def contiguous(pages):
            data = os.urandom(PAGE * pages)
            return lambda offset: offset + os.pwrite(fd, data, offset)

        def scattered(pages):
            def write(offset):
                for _ in range(pages):
                    os.pwrite(fd, page, offset)
                    offset += 3 * PAGE
                return offset
            return write

        def page_by_page(pages):
            def write(offset):
                for _ in range(pages):
                    offset += os.pwrite(fd, page, offset)
                return offset
            return write

        def frame_by_frame(frames):
            def write(offset):
                for _ in range(frames):
                    os.pwrite(fd, header, offset)
                    os.pwrite(fd, page, offset + 24)
                    offset += PAGE + 24
                return offset
            return write

        print(f"flushes of a {FILE_BYTES >> 20} MiB file in {directory}, {flushes} each")
        print()
        print("| case | wall µs per flush | CPU µs per flush |")
        print("|---|---|---|")
        measure(fd, "fsync, nothing written", lambda offset: offset, flushes=flushes)
        for pages in (1, 2, 4, 8, 16):
            measure(fd, f"{pages} contiguous pages, one pwrite, fsync", contiguous(pages), flushes=flushes)
        measure(fd, "8 scattered pages, 8 pwrites, fsync", scattered(8), flushes=flushes)
        measure(fd, "7 pages, 7 pwrites, fsync", page_by_page(7), flushes=flushes)
        measure(fd, "7 WAL-like frames (24 + 4096 bytes, unaligned), 14 pwrites, fsync", frame_by_frame(7), flushes=flushes)
        measure(fd, "7 pages, one pwrite, fsync", contiguous(7), flushes=flushes)
        measure(fd, "7 pages, one pwrite, fdatasync", contiguous(7), os.fdatasync, flushes)


if __name__ == "__main__":
    main()

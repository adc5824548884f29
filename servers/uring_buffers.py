"""A provided-buffer ring for io_uring: the kernel picks the buffer a recv fills.

With a buffer ring, a multishot recv needs no buffer of its own: when data
arrives, the kernel takes the next free buffer from a ring shared with the
process, fills it, and names it in the completion (``IORING_CQE_F_BUFFER``,
buffer id in the upper 16 bits of the flags). The process copies the bytes
out and hands the buffer back by writing one ring entry and moving the ring's
tail: no system call. So an idle connection holds no buffer at all; the pool
is shared by every connection and sized by how many completions one loop turn
can see, not by how many clients there are.

The ``liburing`` binding wraps ``io_uring_setup_buf_ring``, but its ``int
*err`` argument cannot be passed from Python (every value raises TypeError
in liburing 2026.3.30), so the ring is registered here with the
``io_uring_register(IORING_REGISTER_PBUF_RING)`` system call it makes, and
its entries are written as the C helpers ``io_uring_buf_ring_add`` and
``io_uring_buf_ring_advance`` write them (``struct io_uring_buf``, 16 bytes).
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import struct

SYS_IO_URING_REGISTER = 427  # the same number on every architecture (asm-generic)
IORING_REGISTER_PBUF_RING = 22
IORING_UNREGISTER_PBUF_RING = 23

# struct io_uring_buf { __u64 addr; __u32 len; __u16 bid; __u16 resv; }: the
# resv field of entry 0 is the ring's tail, which only the process writes.
_ENTRY = struct.Struct("=QIH")
_ENTRY_SIZE = 16
_TAIL = struct.Struct("=H")
_TAIL_OFFSET = 14
# struct io_uring_buf_reg { __u64 ring_addr; __u32 ring_entries; __u16 bgid;
#                           __u16 flags; __u64 resv[3]; }
_REGISTRATION = struct.Struct("=QIHH3Q")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _register(ring_fd: int, opcode: int, registration: bytes) -> None:
    argument = ctypes.create_string_buffer(registration, len(registration))
    result = _libc.syscall(ctypes.c_long(SYS_IO_URING_REGISTER), ctypes.c_int(ring_fd),
                           ctypes.c_uint(opcode), argument, ctypes.c_uint(1))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"io_uring_register(PBUF_RING): {os.strerror(code)}")


class BufferRing:
    """``count`` buffers of ``size`` bytes in buffer group ``group`` of one io_uring.

    ``count`` must be a power of two (the kernel indexes the ring by a mask).
    Pool and ring are anonymous mappings: their pages are only backed once the
    kernel writes into them, so a buffer never used costs no memory.
    """

    def __init__(self, ring_fd: int, group: int, count: int, size: int) -> None:
        if count <= 0 or count & (count - 1) or count > 32768:
            raise ValueError(f"buffer count must be a power of two up to 32768, got {count}")
        self.group = group
        self.size = size
        self._mask = count - 1
        self._ring_fd = ring_fd
        self._tail = 0
        self._ring = mmap.mmap(-1, max(count * _ENTRY_SIZE, mmap.PAGESIZE))
        self._pool = mmap.mmap(-1, count * size)
        # ctypes views pin the mappings (mmap refuses to close while they exist)
        # and give their addresses, which the kernel needs.
        self._ring_view = ctypes.c_char.from_buffer(self._ring)
        self._pool_view = ctypes.c_char.from_buffer(self._pool)
        self._pool_address = ctypes.addressof(self._pool_view)
        _register(ring_fd, IORING_REGISTER_PBUF_RING, _REGISTRATION.pack(
            ctypes.addressof(self._ring_view), count, group, 0, 0, 0, 0))
        self._registered = True
        for buffer_id in range(count):
            self.give_back(buffer_id)
        self.publish()

    def take(self, buffer_id: int, length: int) -> bytes:
        """A copy of the first ``length`` bytes the kernel wrote into ``buffer_id``."""
        start = buffer_id * self.size
        return self._pool[start:start + length]

    def give_back(self, buffer_id: int) -> None:
        """Queue ``buffer_id`` for reuse; the kernel sees it after :meth:`publish`."""
        _ENTRY.pack_into(self._ring, (self._tail & self._mask) * _ENTRY_SIZE,
                         self._pool_address + buffer_id * self.size, self.size, buffer_id)
        self._tail += 1

    def publish(self) -> None:
        """Move the tail past every buffer given back: once per loop turn, as liburing's
        ``io_uring_buf_ring_advance``. The entries are written before the tail; x86-64
        keeps stores in order, and the kernel reads the tail with acquire semantics."""
        _TAIL.pack_into(self._ring, _TAIL_OFFSET, self._tail & 0xFFFF)

    def close(self) -> None:
        """Unregister the group and unmap; only once no recv can pick a buffer any more."""
        if self._registered:
            self._registered = False
            try:
                _register(self._ring_fd, IORING_UNREGISTER_PBUF_RING,
                          _REGISTRATION.pack(0, 0, self.group, 0, 0, 0, 0))
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.ENOENT, errno.EBADF, errno.EOPNOTSUPP):
                    raise
        del self._ring_view, self._pool_view
        self._ring.close()
        self._pool.close()

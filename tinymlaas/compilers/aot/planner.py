"""Static memory planning: every activation gets a fixed offset in one arena.

Buffers whose lifetimes (first write .. last read, in step order) overlap may
not share bytes, with one exception that makes the arena small: when a step
consumes a buffer for the last time, its output may *partly* overlap that
input as long as the kernel never overwrites input bytes it still has to
read. Lowering states that as a minimum distance ``d`` (bytes): the output
may start anywhere at or below ``input_start - d``. Elementwise ops get
``d = 0`` (fully in place); a 3x3 convolution gets about one input row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Buffer:
    key: int          # the tensor (alias root) this buffer holds
    nbytes: int
    align: int
    first: int        # step that writes it
    last: int         # last step that reads it
    offset: int = -1


@dataclass
class Plan:
    arena_bytes: int
    offsets: dict[int, int] = field(default_factory=dict)


def overlap_distance(minread: np.ndarray, out_itemsize: int, in_itemsize: int) -> int:
    """Smallest ``input_start - output_start`` (bytes) at which writes never clobber
    input still to be read.

    ``minread[k]`` is the lowest input element read after output element k-1
    was written and up to output element k (outputs are written in memory
    order, each after its own reads).
    """
    n = len(minread)
    if n == 0:
        return 0
    # future[k] = lowest input element read after output k was written.
    future = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    if n > 1:
        future[:-1] = np.minimum.accumulate(minread[::-1].astype(np.int64))[::-1][1:]
    k = np.arange(n, dtype=np.int64)
    ok = future != np.iinfo(np.int64).max
    if not ok.any():
        return -(1 << 62)
    return int(np.max((k[ok] + 1) * out_itemsize - future[ok] * in_itemsize))


def _conflict(a: Buffer, b: Buffer) -> bool:
    return a.first <= b.last and b.first <= a.last


def _legal(b: Buffer, off: int, placed: list[Buffer], relax: dict[tuple[int, int], int]) -> bool:
    end = off + b.nbytes
    for p in placed:
        if not _conflict(b, p):
            continue
        if end <= p.offset or p.offset + p.nbytes <= off:
            continue
        if (b.key, p.key) in relax and off <= p.offset - relax[(b.key, p.key)]:
            continue  # b is the output written over its dying input p
        if (p.key, b.key) in relax and p.offset <= off - relax[(p.key, b.key)]:
            continue  # p is the output written over its dying input b
        return False
    return True


def _place(order: list[Buffer], relax: dict[tuple[int, int], int]) -> dict[int, int]:
    placed: list[Buffer] = []
    offsets: dict[int, int] = {}
    for b in order:
        cands = {0}
        for p in placed:
            cands.add(p.offset + p.nbytes)
            if (b.key, p.key) in relax:
                cands.add(p.offset - relax[(b.key, p.key)])
            if (p.key, b.key) in relax:
                cands.add(p.offset + relax[(p.key, b.key)])
        best = None
        aligned: set[int] = set()
        for c in cands:
            aligned.update((c // b.align * b.align, -(-c // b.align) * b.align))
        for c in sorted(x for x in aligned if x >= 0):
            if _legal(b, c, placed, relax):
                best = c
                break
        assert best is not None  # the end of everything placed is always legal
        b.offset = best
        offsets[b.key] = best
        placed.append(b)
    return offsets


def plan(buffers: list[Buffer], relax: dict[tuple[int, int], int]) -> Plan:
    """Offsets for all buffers; tries a few greedy orders and keeps the smallest arena.

    ``relax[(out, in)] = d`` allows ``out`` to start at or below ``in.offset - d``.
    """
    if not buffers:
        return Plan(arena_bytes=0)
    orders = [
        sorted(buffers, key=lambda b: (-b.nbytes, b.first)),
        sorted(buffers, key=lambda b: (-b.nbytes, -b.first)),
        sorted(buffers, key=lambda b: (b.first, -b.nbytes)),
        # Latest first: an in-place chain then stacks each input just above its output.
        sorted(buffers, key=lambda b: (-b.first, -b.nbytes)),
        sorted(buffers, key=lambda b: (-(b.last - b.first), -b.nbytes)),
    ]
    # Greedy placement is order-sensitive around in-place chains: a few seeded
    # shuffles of the by-size order often find a tighter arena (deterministically).
    rng = np.random.default_rng(0)
    for _ in range(48 if len(buffers) <= 40 else 6):
        keys = rng.random(len(buffers))
        orders.append([b for _, b in sorted(zip(keys, buffers, strict=True),
                                            key=lambda kb: (-kb[1].nbytes, kb[0]))])
        orders.append([buffers[i] for i in rng.permutation(len(buffers))])
    best: Plan | None = None
    for order in orders:
        offsets = _place([Buffer(b.key, b.nbytes, b.align, b.first, b.last) for b in order],
                         relax)
        size = max(offsets[b.key] + b.nbytes for b in buffers)
        size = -(-size // 4) * 4
        if best is None or size < best.arena_bytes:
            best = Plan(arena_bytes=size, offsets=offsets)
    assert best is not None
    for b in buffers:
        b.offset = best.offsets[b.key]
    return best

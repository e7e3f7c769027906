"""Cut the CUDA kernels (the ``.nv_fatbin`` section) out of a CPU-only image's shared objects.

catboost's wheel links its GPU training into ``_catboost.so``: 224 MB of its 264 MB (stripped)
are the ``.nv_fatbin`` section, the device code the CUDA driver would upload to a GPU. A process
that never creates a CUDA context never reads it (the static CUDA runtime only records the
pointers at load time; after training, predicting and SHAP values on the CPU, /proc/self/pagemap
shows none of its pages read but the few at its edges the kernel's fault-around maps), but the
section sits inside a loaded segment, so ``strip`` cannot remove it.

:func:`drop_fatbin` rewrites the file so that the page-aligned inside of the section becomes
zero-filled memory instead of file bytes: the read-only ``PT_LOAD`` segment holding it is split
in two, the first ending (in the file) where the section's first whole page starts and extending
in memory over the section like a ``.bss``, the second starting at the section's last page.
Everything after it moves down in the file by a multiple of the segment alignment, so every
virtual address, relocation and symbol stays where it was; only file offsets in the ELF, program
and section headers change. The freed program-header slot is the ``PT_PHDR`` entry, which a
shared object does not need (the loader finds the table in its first segment). Afterwards the
library still loads and predicts; it can no longer run on a GPU, which no image that applies
this does (the serving image and, for a like-with-like size comparison, the all-dependencies
image).

Stdlib only: serving/Dockerfile runs this file with the image's python3 in the build stage
(``python3 gpu_code.py FILE...``). tests/release/test_build.py cuts the real catboost library
and compares its predictions and SHAP values with the original's.
"""

from __future__ import annotations

import os
import struct
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

SECTION = ".nv_fatbin"
_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_PT_LOAD, _PT_INTERP, _PT_PHDR = 1, 3, 6
_PF_W = 2
_SHT_NOBITS = 8
_ET_DYN = 3
#: Below this the rewrite is not worth it (and a tiny section is probably not CUDA device code).
MIN_SAVING = 1 << 20


@dataclass(frozen=True)
class Cut:
    """What :func:`drop_fatbin` did to one file (``saved`` 0 and ``reason`` when nothing)."""

    path: Path
    saved: int
    reason: str = ""


def _round_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align


def _round_down(value: int, align: int) -> int:
    return value // align * align


@dataclass
class _Elf:
    ident: bytes
    ehdr: list[int]  # the ELF header's fields after e_ident: e_type is [0], e_shoff [5]
    phdrs: list[list[int]]
    shdrs: list[list[int]]
    names: list[str]


def _parse(data: bytes) -> _Elf | str:
    """The headers of a little-endian 64-bit shared object, or why it is not one."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return "not a little-endian 64-bit ELF file"
    ident, *ehdr = _EHDR.unpack_from(data, 0)
    e_type, e_phoff, e_shoff = ehdr[0], ehdr[4], ehdr[5]
    e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx = ehdr[8:13]
    if e_type != _ET_DYN or e_phentsize != _PHDR.size or e_shentsize != _SHDR.size:
        return "not a shared object with standard headers"
    if not e_shnum or e_shstrndx >= e_shnum:
        return "no section headers"
    phdrs = [list(_PHDR.unpack_from(data, e_phoff + i * e_phentsize)) for i in range(e_phnum)]
    shdrs = [list(_SHDR.unpack_from(data, e_shoff + i * e_shentsize)) for i in range(e_shnum)]
    strtab = shdrs[e_shstrndx][4]
    names = [data[strtab + sh[0] : data.index(b"\0", strtab + sh[0])].decode() for sh in shdrs]
    return _Elf(ident, ehdr, phdrs, shdrs, names)


def cuda_kernel_bytes(path: Path) -> int:
    """File bytes of ``path``'s ``.nv_fatbin`` sections (0 when cut, absent or not ELF)."""
    data = path.read_bytes()
    elf = _parse(data)
    if isinstance(elf, str):
        return 0
    return sum(
        sh[5]
        for sh, name in zip(elf.shdrs, elf.names, strict=True)
        if name == SECTION and sh[1] != _SHT_NOBITS
    )


def _rewrite(data: bytes) -> bytes | str:
    """The file without the inside of its .nv_fatbin section, or why it is left as it is."""
    elf = _parse(data)
    if isinstance(elf, str):
        return elf
    ehdr, phdrs, shdrs = elf.ehdr, elf.phdrs, elf.shdrs
    e_phoff, e_shoff, e_phentsize, e_phnum, e_shentsize = (ehdr[i] for i in (4, 5, 8, 9, 10))
    names = dict(zip(map(id, shdrs), elf.names, strict=True))

    def name(sh: list[int]) -> str:
        return names[id(sh)]

    fatbins = [sh for sh in shdrs if name(sh) == SECTION and sh[1] != _SHT_NOBITS]
    if not fatbins:
        return f"no {SECTION} section"
    fatbin = fatbins[0]
    start, end = fatbin[4], fatbin[4] + fatbin[5]
    loads = [ph for ph in phdrs if ph[0] == _PT_LOAD]
    holders = [ph for ph in loads if ph[2] <= start and end <= ph[2] + ph[5]]
    if len(holders) != 1:
        return f"{SECTION} is not inside one loaded segment"
    holder = holders[0]
    if holder[1] & _PF_W or holder[5] != holder[6]:
        return f"the segment holding {SECTION} is writable or has a .bss part"
    align = max(4096, *(ph[7] for ph in loads))
    if align & (align - 1):
        return f"segment alignment {align} is not a power of two"
    keep_end = _round_up(start, align)  # A: the file keeps [0, A)
    resume = _round_down(end, align)  # P: and [P, EOF), moved down to A
    delta = resume - keep_end
    if delta < MIN_SAVING:
        return f"{SECTION} spans less than {MIN_SAVING} bytes of whole pages"
    for ph in phdrs:
        if ph is not holder and ph[5] and ph[2] < resume and ph[2] + ph[5] > keep_end:
            return f"another program header overlaps {SECTION}"
    for sh in shdrs:
        overlaps = sh[4] < resume and sh[4] + sh[5] > keep_end
        if sh is not fatbin and sh[1] != _SHT_NOBITS and sh[5] and overlaps:
            return f"section {name(sh)} overlaps {SECTION}"
    if any(ph[0] == _PT_INTERP for ph in phdrs):
        return "an executable (PT_INTERP): its PT_PHDR entry is needed"
    rest = [ph for ph in phdrs if ph[0] != _PT_PHDR]
    if len(rest) + 1 > e_phnum:
        return "no free program-header slot (no PT_PHDR entry to reuse)"

    new_phdrs: list[list[int]] = []
    for ph in rest:
        if ph is holder:
            p_type, p_flags, offset, vaddr, paddr, filesz, _memsz, p_align = ph
            inside = resume - offset  # bytes of the segment before P
            new_phdrs.append(
                [p_type, p_flags, offset, vaddr, paddr, keep_end - offset, inside, p_align]
            )
            tail = filesz - inside
            new_phdrs.append(
                [p_type, p_flags, keep_end, vaddr + inside, paddr + inside, tail, tail, p_align]
            )
        else:
            moved = list(ph)
            if moved[2] >= resume:
                moved[2] -= delta
            new_phdrs.append(moved)
    for sh in shdrs:
        if sh is fatbin:
            sh[1], sh[4] = _SHT_NOBITS, keep_end  # zero-filled memory now, no file bytes
        elif sh[4] >= resume:
            sh[4] -= delta
    if e_shoff >= resume:
        ehdr[5] = e_shoff - delta
    ehdr[9] = len(new_phdrs)

    out = bytearray(data[:keep_end])
    out += data[resume:]
    _EHDR.pack_into(out, 0, elf.ident, *ehdr)
    for i, ph in enumerate(new_phdrs):
        _PHDR.pack_into(out, e_phoff + i * e_phentsize, *ph)
    for i, sh in enumerate(shdrs):
        _SHDR.pack_into(out, ehdr[5] + i * e_shentsize, *sh)
    return bytes(out)


def drop_fatbin(path: Path) -> Cut:
    """Rewrite ``path`` in place without the file bytes of its ``.nv_fatbin`` section."""
    with path.open("rb") as handle:
        head = handle.read(_EHDR.size)
        if head[:4] != b"\x7fELF":
            return Cut(path, 0, "not an ELF file")
        data = head + handle.read()
    rewritten = _rewrite(data)
    if isinstance(rewritten, str):
        return Cut(path, 0, rewritten)
    mode = path.stat().st_mode
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(rewritten)
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return Cut(path, len(data) - len(rewritten))


def main(argv: list[str]) -> int:
    """``python3 gpu_code.py FILE...``: cut each file that has CUDA kernels; print the total."""
    total = 0
    for arg in argv:
        cut = drop_fatbin(Path(arg))
        if cut.saved:
            sys.stdout.write(f"gpu_code: {arg}: {SECTION} cut, {cut.saved / 1e6:.1f} MB\n")
        total += cut.saved
    sys.stdout.write(f"gpu_code: {total / 1e6:.1f} MB of CUDA kernels cut, {len(argv)} files\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

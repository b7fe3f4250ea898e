#!/usr/bin/env python3
"""Pack the test kernel ELF as a Linux x86 bzImage (boot protocol 2.15).

The file is a boot sector plus one setup sector holding the setup header
(Documentation/arch/x86/boot.rst), followed by the protected-mode part: the
flat image of the kernel's PT_LOAD segments as loaded at 0x100000, whose
offset 0x200 is the 64-bit entry. There is no real-mode setup code: a loader
that runs it reaches a cli/hlt loop. Only the 32-bit and 64-bit boot
protocols are supported.

usage: mkbzimage.py kernel.elf out.bzImage
"""
import struct
import sys

LOAD_ADDR = 0x100000
SETUP_SECTS = 1                     # sectors after the boot sector
SECTOR = 512
ENTRY64_OFFSET = 0x200
HALT_STUB_OFFSET = 0x280            # in the setup area: cli; hlt; jmp back to hlt
VERSION_OFFSET = 0x290
VERSION = b"ebb-test-kernel\0"

LOADED_HIGH = 0x01
XLF_KERNEL_64 = 0x01


def fail(msg):
    sys.exit(f"mkbzimage: {msg}")


def read_elf(data):
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        fail("not a little-endian ELF64 file")
    (e_machine,) = struct.unpack_from("<H", data, 18)
    if e_machine != 62:
        fail("not an x86-64 ELF")
    e_phoff, e_shoff = struct.unpack_from("<QQ", data, 32)
    e_phentsize, e_phnum, e_shentsize, e_shnum = struct.unpack_from("<HHHH", data, 54)

    segments = []
    for i in range(e_phnum):
        p_type, _flags, p_offset, _vaddr, p_paddr, p_filesz, p_memsz, _align = struct.unpack_from(
            "<IIQQQQQQ", data, e_phoff + i * e_phentsize)
        if p_type == 1:             # PT_LOAD
            segments.append((p_paddr, data[p_offset:p_offset + p_filesz], p_memsz))

    sections = [struct.unpack_from("<IIQQQQIIQQ", data, e_shoff + i * e_shentsize) for i in range(e_shnum)]
    symbols = {}
    for sh in sections:
        if sh[1] != 2:              # SHT_SYMTAB
            continue
        strtab = sections[sh[6]]
        str_off = strtab[4]
        for off in range(sh[4], sh[4] + sh[5], sh[9]):
            st_name, _info, _other, _shndx, st_value, _size = struct.unpack_from("<IBBHQQ", data, off)
            end = data.index(b"\0", str_off + st_name)
            symbols[data[str_off + st_name:end].decode()] = st_value
    return segments, symbols


def flat_image(segments):
    """The bytes of all PT_LOAD file contents, placed at p_paddr - LOAD_ADDR."""
    end = 0
    for paddr, body, _memsz in segments:
        if paddr < LOAD_ADDR:
            fail(f"segment at 0x{paddr:x} is below the load address")
        end = max(end, paddr - LOAD_ADDR + len(body))
    image = bytearray(end)
    for paddr, body, _memsz in segments:
        image[paddr - LOAD_ADDR:paddr - LOAD_ADDR + len(body)] = body
    return image


def setup_area(syssize, init_size, kernel_info_offset):
    s = bytearray((SETUP_SECTS + 1) * SECTOR)

    def put(fmt, off, value):
        struct.pack_into("<" + fmt, s, off, value)

    put("B", 0x1f1, SETUP_SECTS)            # setup_sects
    put("I", 0x1f4, syssize)                # syssize, 16-byte units
    put("H", 0x1fa, 0xffff)                 # vid_mode: "normal"
    put("H", 0x1fe, 0xaa55)                 # boot_flag
    put("B", 0x200, 0xeb)                   # jump: short jmp over the header...
    put("B", 0x201, HALT_STUB_OFFSET - 0x202)
    s[0x202:0x206] = b"HdrS"                # header
    put("H", 0x206, 0x020f)                 # version 2.15
    put("H", 0x20c, 0x1000)                 # start_sys_seg (obsolete)
    put("H", 0x20e, VERSION_OFFSET - 0x200) # kernel_version
    put("B", 0x211, LOADED_HIGH)            # loadflags
    put("I", 0x214, LOAD_ADDR)              # code32_start
    put("I", 0x22c, 0x7fffffff)             # initrd_addr_max
    put("I", 0x230, 0x200000)               # kernel_alignment
    put("B", 0x234, 0)                      # relocatable_kernel: no
    put("B", 0x235, 12)                     # min_alignment (log2)
    put("H", 0x236, XLF_KERNEL_64)          # xloadflags
    put("I", 0x238, 2047)                   # cmdline_size
    put("Q", 0x258, LOAD_ADDR)              # pref_address
    put("I", 0x260, init_size)              # init_size
    put("I", 0x268, kernel_info_offset)     # kernel_info_offset
    s[HALT_STUB_OFFSET:HALT_STUB_OFFSET + 4] = bytes([0xfa, 0xf4, 0xeb, 0xfd])  # ...to cli; hlt; jmp back to hlt
    s[VERSION_OFFSET:VERSION_OFFSET + len(VERSION)] = VERSION
    return s


def main():
    if len(sys.argv) != 3:
        fail("usage: mkbzimage.py kernel.elf out.bzImage")
    with open(sys.argv[1], "rb") as f:
        segments, symbols = read_elf(f.read())
    for name in ("linux_start64", "_end", "kernel_info"):
        if name not in symbols:
            fail(f"symbol {name} not found")
    if symbols["linux_start64"] != LOAD_ADDR + ENTRY64_OFFSET:
        fail("linux_start64 is not at offset 0x200 of the image")

    image = flat_image(segments)
    image += bytes(-len(image) % 16)
    init_size = symbols["_end"] - LOAD_ADDR
    if init_size < len(image):
        fail("_end lies inside the image")
    init_size = (init_size + 0xfff) & ~0xfff
    setup = setup_area(len(image) // 16, init_size, symbols["kernel_info"] - LOAD_ADDR)
    with open(sys.argv[2], "wb") as f:
        f.write(setup + image)


if __name__ == "__main__":
    main()

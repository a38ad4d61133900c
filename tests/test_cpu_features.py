"""The CPU's instruction-set flags, read from the operating system (the benchmarks' machine line, bf16 choice)."""

import platform

import pytest

from dlbasics.cpu_features import cpu_flags, math_flags, native_bf16, native_bf16_flags, parse_cpuinfo

EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu vme sse sse2 avx fma avx2 avx512f avx512dq avx512bw avx512_vnni avx512_bf16 sha_ni

processor\t: 1
flags\t\t: fpu
"""
GRAVITON = "processor\t: 0\nBogoMIPS\t: 2100.00\nFeatures\t: fp asimd aes sha2 crc32 atomics bf16 i8mm sve\n"
OLD_XEON = "processor\t: 0\nflags\t\t: fpu sse sse2 avx fma avx2 avx512f avx512bw\n"


def test_the_first_processors_flags_are_read_on_x86_and_on_arm():
    assert {"avx512_bf16", "avx2", "sha_ni"} <= parse_cpuinfo(EPYC) and "fpu" in parse_cpuinfo(EPYC)
    assert parse_cpuinfo(GRAVITON) == {"fp", "asimd", "aes", "sha2", "crc32", "atomics", "bf16", "i8mm", "sve"}
    assert parse_cpuinfo("processor\t: 0\n") == set()


def test_the_math_flags_come_in_a_fixed_order_and_native_bf16_needs_bf16_dot_products():
    assert math_flags(parse_cpuinfo(EPYC)) == ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"]
    assert math_flags(parse_cpuinfo(GRAVITON)) == ["asimd", "bf16", "i8mm", "sve"]
    assert native_bf16(parse_cpuinfo(EPYC)) and native_bf16(parse_cpuinfo(GRAVITON))
    assert not native_bf16(parse_cpuinfo(OLD_XEON))  # AVX-512 alone: bf16 is converted, not native
    assert native_bf16({"amx_tile", "amx_bf16"}) and not native_bf16(set())
    assert native_bf16_flags({"amx_bf16", "avx2", "avx512_bf16"}) == ["avx512_bf16", "amx_bf16"]  # their order


@pytest.mark.skipif(platform.system() != "Linux", reason="/proc/cpuinfo is Linux's")
def test_this_machines_flags_come_from_proc_cpuinfo():
    flags = cpu_flags()
    assert flags and math_flags() == math_flags(flags) and native_bf16() == native_bf16(flags)

"""What machine a number was made on: the CPU's model name, and the CPU *kind*, named by what
changes the arithmetic rather than by its marketing name.

Float results of a training run differ in the last bit between CPUs whose kernels differ (oneDNN
and ATen pick their kernels by instruction set), and a search whose delta climbs to 1e4 turns
such a difference into flipped gates. Two machines of one kind run the same kernels; the model
name does not say that (an "AMD EPYC" may have AVX2 only or AVX-512 with BF16). ``cpu_kind``
is what results rows, ``config.json`` and benchmark files record, and what the tests compare
(tests/test_smoke_results.py: exact on the kind that made the committed results, by structure
elsewhere).
"""
from __future__ import annotations

import functools
import platform
import re
from pathlib import Path

import torch

# /proc/cpuinfo flags that pick other kernels in torch's CPU backends (oneDNN, ATen's vectorised
# ops): the AVX-512 and AVX2 code paths, and the bf16/int8 matrix units used by autocast to bf16.
KERNEL_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def _field(lines: list[str], key: str) -> str:
    return next((x.split(":", 1)[1].strip() for x in lines if x.split(":", 1)[0].strip() == key), "")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("" where there is none): for people; the
    arithmetic is named by ``cpu_kind``."""
    return _field(_cpuinfo(), "model name")


def cpu_flags() -> set[str]:
    """The kernel-relevant flags of ``KERNEL_FLAGS`` this CPU has (empty where /proc/cpuinfo is
    missing)."""
    return set(_field(_cpuinfo(), "flags").split()) & set(KERNEL_FLAGS)


@functools.lru_cache(maxsize=None)
def cpu_kind() -> str:
    """One string naming the CPU kind, e.g. ``"x86_64 AuthenticAMD AVX2 [avx2]"`` or
    ``"x86_64 GenuineIntel AVX512 [amx_bf16 amx_tile avx2 avx512_bf16 avx512f]"``: the
    architecture, the vendor, torch's dispatch level (``torch.backends.cpu.get_cpu_capability``)
    and the kernel-relevant flags, sorted. Equal strings: the same CPU kernels (same torch)."""
    vendor = _field(_cpuinfo(), "vendor_id") or "unknown-vendor"
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):  # very old torch: no dispatch level to read
        capability = "unknown"
    return f"{platform.machine()} {vendor} {capability} [{' '.join(sorted(cpu_flags()))}]"


def kind_slug(kind: str | None = None) -> str:
    """A file or folder name for a CPU kind (default this one's):
    ``x86_64 AuthenticAMD AVX2 [avx2]`` -> ``x86_64-authenticamd-avx2-avx2``."""
    return re.sub(r"[^a-z0-9_]+", "-", (cpu_kind() if kind is None else kind).lower()).strip("-")


def has_bf16_matmul() -> bool:
    """Whether the CPU has bf16 matrix instructions (AMX-BF16 or AVX512-BF16), where bf16
    autocast can be faster than fp32 (on AVX2 alone it is emulated and about 13x slower)."""
    return bool(cpu_flags() & {"amx_bf16", "avx512_bf16"})


def machine() -> dict:
    """The CPU fields every results row and run file carries beside its device string."""
    return {"cpu_model": cpu_model(), "cpu_kind": cpu_kind()}

"""``kernels.cu`` run on the CPU: every CUDA thread becomes one iteration of a host loop.

The compositor's kernels use no shared memory, no barriers, no atomics and no warp functions, so
each thread is independent of the others and running them one after another computes what the
GPU computes (up to floating-point contraction into FMA, which the ±1 tolerance of the equality
tests covers). The source is compiled unchanged with the system C++ compiler behind a small
prelude (``blockIdx``/``threadIdx`` as globals, ``__float2int_rn``), plus one generated loop per
kernel, into a shared library cached on disk next to the cubins.

:class:`HostKernels` launches like :class:`realtime.compositor.cuda.DeviceKernels` — same names,
same ``LaunchConfig``, same argument types (``np.int32``/``np.float32`` scalars, device pointers
as ``int``, checked strictly) — on CPU torch tensors, so ``CudaCompositor`` runs end to end on a
machine without a GPU. Tests use it to hold every kernel equal to the CPU reference in CI.

Example:
    >>> import torch
    >>> from realtime.compositor import MaskSettings, make_compositor
    >>> from realtime.compositor.cuda import CudaCompositor
    >>> compositor = CudaCompositor(make_compositor("fill"), MaskSettings(), launcher=HostKernels())
    >>> out, alpha = compositor(torch.full((4, 6, 3), 9, dtype=torch.uint8), torch.ones((2, 2)))
    >>> out[0, 0].tolist()
    [0, 0, 0]
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from engines import zoo
from engines.errors import BackendError
from realtime.compositor.cuda import SOURCE_PATH

PRELUDE = r"""
#include <math.h>
#include <algorithm>
struct emu_dim3 { unsigned x, y, z; };
static emu_dim3 blockIdx, threadIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
using std::max;
using std::min;
static inline int __float2int_rn(float v) { return (int)nearbyintf(v); }  // round half to even, as on the GPU
"""

LOOP = r"""
extern "C" void emulate_{name}(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                               {params}) {{
    gridDim = {{gx, gy, gz}};
    blockDim = {{bx, by, bz}};
    for (unsigned z = 0; z < gz; ++z) for (unsigned y = 0; y < gy; ++y) for (unsigned x = 0; x < gx; ++x)
        for (unsigned k = 0; k < bz; ++k) for (unsigned j = 0; j < by; ++j) for (unsigned i = 0; i < bx; ++i) {{
            blockIdx = {{x, y, z}};
            threadIdx = {{i, j, k}};
            {name}({args});
        }}
}}
"""

# What would make threads depend on each other (shared memory, barriers, atomics, warp functions)
UNSUPPORTED = re.compile(r"\b(__shared__|__syncthreads\w*|atomic[A-Z]\w*|__shfl\w*|__ballot\w*|cooperative_groups)\b")


KERNEL = re.compile(r'extern "C" __global__ void (\w+)\(([^)]*)\)')


def kernel_signatures(source: str) -> dict[str, list[tuple[str, str]]]:
    """``{kernel: [(kind, name), ...]}`` for every ``extern "C" __global__`` kernel; kind is ``int``,
    ``float``, ``u8*``, ``u16*``, ``int*``, ``float*`` or ``void*``."""
    signatures = {}
    for kernel, params in KERNEL.findall(source):
        parsed = []
        for param in params.split(","):
            words = param.replace("const ", "").replace("*", " * ").split()
            parsed.append((words[0] + ("*" if "*" in words else ""), words[-1]))
        signatures[kernel] = parsed
    return signatures


def _compiler() -> str:
    for candidate in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if candidate and shutil.which(candidate):
            return candidate
    raise BackendError("emulating the CUDA kernels on the CPU needs a C++ compiler: apt install g++ (or set CXX)")


@cache
def _library(cache_root: str | None, sanitize: bool) -> tuple[ctypes.CDLL, dict[str, list[tuple[str, str]]]]:
    source = SOURCE_PATH.read_text()
    used = sorted(set(UNSUPPORTED.findall(re.sub(r"//[^\n]*|/\*.*?\*/", "", source, flags=re.DOTALL))))
    if used:
        raise BackendError(f"kernels.cu uses {', '.join(used)}: the one-thread-at-a-time CPU emulator cannot run it")
    signatures = kernel_signatures(source)
    params = dict(KERNEL.findall(source))
    loops = "".join(LOOP.format(name=name, params=" ".join(params[name].split()), args=", ".join(arg for _, arg in kinds))
                    for name, kinds in signatures.items())
    program = f"{PRELUDE}\n#line 1 \"{SOURCE_PATH}\"\n{source}\n{loops}"
    compiler = _compiler()
    # no FMA contraction (aarch64 compilers contract by default): the host results stay bit-exact everywhere
    flags = ["-O1", "-g", "-fsanitize=address", "-fno-omit-frame-pointer"] if sanitize else ["-O2"]
    flags.append("-ffp-contract=off")
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    key = hashlib.sha256(f"{program}\0{version}\0{flags}".encode()).hexdigest()[:24]
    path = zoo.cache_dir(cache_root) / "cubin" / f"compositor-host-{key}.so"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.cpp")
        partial.write_text(program)
        built = path.with_suffix(f".{os.getpid()}.part")
        result = subprocess.run([compiler, *flags, "-std=c++17", "-shared", "-fPIC", "-w", "-o", str(built), str(partial)],
                                capture_output=True, text=True)
        partial.unlink()
        if result.returncode:
            raise BackendError(f"kernels.cu does not compile for the CPU emulator: {result.stderr.strip()[:2000]}")
        built.replace(path)
    library = ctypes.CDLL(str(path))
    ctype = {"int": ctypes.c_int, "float": ctypes.c_float}
    for name, kinds in signatures.items():
        function = getattr(library, f"emulate_{name}")
        function.argtypes = [ctypes.c_uint] * 6 + [ctype.get(kind, ctypes.c_void_p) for kind, _ in kinds]
        function.restype = None
    return library, signatures


class HostKernels:
    """The compositor's kernels emulated on the CPU, on CPU torch tensors (see the module docstring).

    Args:
        cache: cache folder for the compiled library (default: the model cache).
        sanitize: build with AddressSanitizer, so that a read or write outside a buffer aborts with a
            report; the process must then run with ``libasan`` preloaded
            (``LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0``).
    """

    def __init__(self, cache: str | Path | None = None, sanitize: bool = False) -> None:
        import torch

        self.torch_device = torch.device("cpu")
        self.library, self.signatures = _library(None if cache is None else str(cache), sanitize)

    def __call__(self, name: str, config: Any, *args: Any) -> None:
        kinds = self.signatures[name]
        if len(args) != len(kinds):
            raise BackendError(f"{name}: {len(args)} arguments for {len(kinds)} parameters")
        for index, (arg, (kind, param)) in enumerate(zip(args, kinds, strict=True)):
            expected: Any = {"int": np.int32, "float": np.float32}.get(kind, int)
            if not isinstance(arg, expected) or (expected is int and isinstance(arg, np.integer | bool)):
                raise BackendError(f"{name} argument {index} ({kind} {param}): got {type(arg).__name__}")
        grid, block = tuple(config.grid), tuple(config.block)
        getattr(self.library, f"emulate_{name}")(*grid, *block, *(a.item() if isinstance(a, np.generic) else a for a in args))

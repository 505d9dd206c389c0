"""Compiled CPU kernels: C++ sources shipped with the package, built on first use by the system compiler.

A few inference paths are loops of many small tensor ops whose dispatch, not their arithmetic, sets
their cost on the CPU (the boundary-layer march is ~35 ops per station). For those, a C++ version of
the same algorithm is compiled once per machine with ``$CXX`` (default ``c++``) at ``-O3 -march=native
-ffast-math``, so that the compiler vectorises it with the C library's SIMD ``exp``/``log``, and loaded
with :mod:`ctypes`. The torch version stays the definition: it serves autograd, CUDA and other dtypes,
and the tests hold the two to agreement.

The library is cached in ``$HYBRIDZOO_DATA/kernels`` (default ``~/.cache/hybridzoo/kernels``) under a
hash of the source, the flags, the compiler's version and this CPU's features, so a changed source, a
new compiler or another machine sharing the home folder gets its own build. The build writes a temporary
file and renames it into place: concurrent processes never load half a library. Where no compiler works,
:func:`load` warns once (:class:`NativeKernelWarning`) and returns ``None``, and callers use the torch
version. ``HYBRIDZOO_NATIVE=0`` turns the kernels off.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import warnings
from functools import cache
from pathlib import Path

SOURCE_DIR = Path(__file__).parent
# -fno-reciprocal-math: x / 0.1 stays a division, as in the torch version (x * 10 rounds differently and
# can change a count taken by ceil).
COMPILE_FLAGS = ("-O3", "-march=native", "-ffast-math", "-fno-reciprocal-math", "-fno-exceptions", "-fPIC",
                 "-std=c++17")
# -ffast-math is a compile flag only: given when linking a shared library, older gcc adds crtfastmath.o,
# which flushes denormals to zero in the whole process that loads it. libmvec holds the SIMD exp/log; a
# library that needs it and links without it must fail here, not when it is loaded (--no-undefined: GNU ld).
_NO_UNDEFINED = ("-Wl,--no-undefined",) if sys.platform.startswith("linux") else ()
LINK_OPTIONS = (("-shared", *_NO_UNDEFINED, "-lmvec", "-lm"), ("-shared", *_NO_UNDEFINED, "-lm"))


class NativeUnavailable(RuntimeError):
    """A kernel could not be compiled or loaded here (no compiler, a failed build)."""


class NativeKernelWarning(RuntimeWarning):
    """A compiled kernel is unavailable, so its (slower) torch version runs; filter it to silence the notice."""


def enabled() -> bool:
    """Whether native kernels may be used: not turned off by ``HYBRIDZOO_NATIVE=0``."""
    return os.environ.get("HYBRIDZOO_NATIVE", "1").strip().lower() not in ("0", "false", "no", "off")


def kernel_dir() -> Path:
    """Cache folder of the compiled kernels: ``$HYBRIDZOO_DATA/kernels`` or ``~/.cache/hybridzoo/kernels``."""
    env = os.environ.get("HYBRIDZOO_DATA")
    return (Path(env).expanduser() if env else Path.home() / ".cache" / "hybridzoo") / "kernels"


def _cpu_features() -> str:
    """This CPU's instruction-set flags (``-march=native`` compiles for them), or its machine name."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    # No feature list to read: this host's name too, so that machines sharing a home folder never share a build.
    return f"{platform.machine()} {platform.processor()} {platform.node()}"


def _compiler() -> list[str]:
    """``$CXX`` (default ``c++``) as a command, which may carry a launcher or flags (``ccache g++``)."""
    cxx = os.environ.get("CXX", "c++")
    cmd = shlex.split(cxx)
    path = shutil.which(cmd[0]) if cmd else None
    if path is None:
        raise NativeUnavailable(f"no C++ compiler: {cxx!r} is not on PATH (set CXX to one)")
    return [path, *cmd[1:]]


def _check_private(folder: Path) -> None:
    """Refuse a kernel folder that another user could write to: a library planted there would be loaded."""
    if os.name != "posix":
        return
    st = folder.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise NativeUnavailable(
            f"{folder} is not private to this user (owner uid {st.st_uid}, mode {oct(st.st_mode & 0o777)}): "
            "no library is loaded from it; make it yours and not group/world-writable, or set HYBRIDZOO_DATA"
        )


def _target(name: str) -> tuple[Path, bytes, list[str]]:
    """Where ``name``'s library for this source, compiler, flags and CPU lives; the source; the compiler."""
    source = (SOURCE_DIR / f"{name}.cpp").read_bytes()
    cxx = _compiler()
    try:
        version = subprocess.run([*cxx, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise NativeUnavailable(f"{' '.join(cxx)} --version failed: {err}") from err
    parts = [source, " ".join(cxx[1:]), " ".join(COMPILE_FLAGS), repr(LINK_OPTIONS), version, _cpu_features()]
    key = hashlib.sha256(b"\0".join(p if isinstance(p, bytes) else p.encode() for p in parts)).hexdigest()[:16]
    return kernel_dir() / f"{name}-{key}.so", source, cxx


def build(name: str) -> Path:
    """Compile ``<name>.cpp`` of this package into the kernel cache (if not there yet); its path.

    Raises:
        NativeUnavailable: no compiler, or the build failed (the message holds the compiler's output).
    """
    return _build(name, *_target(name))


def _build(name: str, target: Path, source: bytes, cxx: list[str]) -> Path:
    """:func:`build` with its :func:`_target` already found."""
    if target.exists():
        _check_private(target.parent)
        return target
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _check_private(target.parent)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}-") as tmp:
        src, obj, lib = (Path(tmp) / f"{name}{ext}" for ext in (".cpp", ".o", ".so"))
        src.write_bytes(source)
        failed = _run([*cxx, *COMPILE_FLAGS, "-c", str(src), "-o", str(obj)])
        errors = [failed] if failed else []
        for link in () if failed else LINK_OPTIONS:  # with libmvec where the C library has it
            failed = _run([*cxx, str(obj), "-o", str(lib), *link])
            if not failed:
                os.replace(lib, target)  # atomic: no process loads a half-written library
                return target
            errors.append(failed)
    raise NativeUnavailable(f"building the {name} kernel failed:\n" + "\n".join(errors))


def load(name: str) -> ctypes.CDLL | None:
    """The compiled kernel ``name``, built on first use; ``None`` (after one warning) where it cannot be.

    ``None`` too, without a warning, while ``HYBRIDZOO_NATIVE=0`` turns the kernels off.
    """
    return _load(name) if enabled() else None


def _run(cmd: list[str]) -> str:
    """Run a compiler command; ``""`` if it succeeded, else the command and its error output."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as err:
        return f"$ {' '.join(cmd)}\n{err}"
    return "" if done.returncode == 0 else f"$ {' '.join(cmd)}\n{done.stderr.strip()}"


@cache
def _load(name: str) -> ctypes.CDLL | None:
    try:
        target = _target(name)
        cached = target[0].exists()
        path = _build(name, *target)
        try:
            return ctypes.CDLL(str(path))
        except OSError:
            if not cached:  # built just now and still not loadable (a noexec folder, say): give up
                raise
            path.unlink(missing_ok=True)  # a cached library that does not load (damaged): build it once more
            return ctypes.CDLL(str(_build(name, *target)))
    except (NativeUnavailable, OSError) as err:
        warnings.warn(
            f"the compiled {name} kernel is unavailable, so the slower torch version runs instead: {err}",
            NativeKernelWarning,
            stacklevel=3,
        )
        return None

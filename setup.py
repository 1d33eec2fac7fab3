"""Build the C core. Everything else is declared in pyproject.toml."""
import glob
import os
import shutil
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

if sys.platform == "win32":
    extra_compile_args = ["/O2"]
    extra_link_args: list[str] = []
else:
    # -O3 for the hash loops; SIMD paths are selected at run time with target attributes,
    # so no -march flag: the wheel must run on any x86-64 / arm64 CPU.
    extra_compile_args = ["-O3", "-std=c11", "-Wall", "-Wextra", "-pthread"]
    extra_link_args = ["-pthread"]


class atomic_build_ext(build_ext):
    """`--inplace` replaces the module by rename, never by rewriting it: a process that has the
    old module mapped (a test run in progress) keeps a valid file instead of crashing."""

    def copy_file(self, infile, outfile, *args, **kwargs):  # type: ignore[override]
        if not self.inplace or os.path.isdir(outfile):
            return super().copy_file(infile, outfile, *args, **kwargs)
        tmp = f"{outfile}.{os.getpid()}.tmp"
        shutil.copy2(infile, tmp)
        os.replace(tmp, outfile)
        return outfile, True


setup(
    cmdclass={"build_ext": atomic_build_ext},
    ext_modules=[
        Extension(
            "hpforensics._pagehash",
            sources=sorted(glob.glob("csrc/pagehash/*.c")),
            depends=glob.glob("csrc/pagehash/*.h"),
            extra_compile_args=extra_compile_args,
            extra_link_args=extra_link_args,
        ),
        Extension(
            "hpforensics._evtxscan",
            sources=sorted(glob.glob("csrc/evtxscan/*.c")),
            depends=glob.glob("csrc/evtxscan/*.h"),
            extra_compile_args=extra_compile_args,
        ),
        Extension(
            "hpforensics._rowfmt",
            sources=sorted(glob.glob("csrc/rowfmt/*.c")),
            depends=glob.glob("csrc/rowfmt/*.h"),
            extra_compile_args=extra_compile_args,
        ),
    ],
)

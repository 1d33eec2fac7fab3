"""Build the C core. Everything else is declared in pyproject.toml."""
import glob
import sys

from setuptools import Extension, setup

if sys.platform == "win32":
    extra_compile_args = ["/O2"]
    extra_link_args: list[str] = []
else:
    # -O3 for the hash loops; SIMD paths are selected at run time with target attributes,
    # so no -march flag: the wheel must run on any x86-64 / arm64 CPU.
    extra_compile_args = ["-O3", "-std=c11", "-Wall", "-Wextra", "-pthread"]
    extra_link_args = ["-pthread"]

setup(
    ext_modules=[
        Extension(
            "hpforensics._pagehash",
            sources=sorted(glob.glob("csrc/pagehash/*.c")),
            depends=glob.glob("csrc/pagehash/*.h"),
            extra_compile_args=extra_compile_args,
            extra_link_args=extra_link_args,
        )
    ]
)

"""Build of dlfr's compiled modules (``dlfr._kernels`` gathers their names).

Everything else about the package lives in pyproject.toml. Every extension
is built with the same flags, and they are portable (no -march=native: a
wheel must run on any CPU of its architecture; the C kernels pick
AVX2/AVX-512 at run time). OpenMP is used when the compiler has it and the
build is correct, just serial, without it. ``DLFR_DEBUG=1`` builds
with bounds checking and without optimisation.
"""

import os
import sys
import tempfile
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("DLFR_DEBUG", "0") == "1"
HERE = Path(__file__).parent


def _compiles(compiler, flags, link_flags=()):
    """Return True if a tiny OpenMP program compiles and links with these flags."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "omp_check.c")
        src.write_text("#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n")
        try:
            objects = compiler.compile([str(src)], output_dir=tmp, extra_postargs=list(flags))
            compiler.link_executable(
                objects, str(Path(tmp, "omp_check")), extra_postargs=list(link_flags)
            )
        except Exception:
            return False
    return True


def _libomp_prefix():
    """Where llvm-openmp (or Homebrew's libomp) put libomp for Apple clang."""
    for prefix in (os.environ.get("DLFR_LIBOMP_PREFIX"), sys.prefix, "/opt/homebrew/opt/libomp",
                   "/usr/local/opt/libomp"):
        if prefix and Path(prefix, "include", "omp.h").exists():
            return prefix
    return None


class BuildExt(build_ext):
    """Pick optimisation and OpenMP flags for the compiler in use."""

    def build_extensions(self):
        ctype = self.compiler.compiler_type
        compile_args, link_args, macros = [], [], []
        if ctype == "msvc":
            compile_args += ["/Od" if DEBUG else "/O2", "/fp:precise"]
            if _compiles(self.compiler, ["/openmp"]):
                compile_args.append("/openmp")
        else:
            # -g0: no DWARF in a release wheel (Python's own CFLAGS carry -g);
            # the symbol table stays, so backtraces and tests/test_dispatch.py
            # still see function names.
            compile_args += ["-O0", "-g"] if DEBUG else ["-O3", "-g0"]
            # Lets masked selects vectorise; values are unchanged (this is not
            # -ffast-math: NaN, infinities and rounding stay IEEE).
            compile_args += ["-fno-trapping-math", "-std=c11", "-ffp-contract=fast"]
            # Export each module's PyInit only: the C kernels' names (gemm_f32_avx2...)
            # stay private to _dispatch and are called directly, not through the PLT;
            # the other modules reach them through _dispatch's cdef functions.
            compile_args.append("-fvisibility=hidden")
            omp = (["-fopenmp"], ["-fopenmp"])
            if sys.platform == "darwin":
                prefix = _libomp_prefix()
                omp = (
                    (["-Xpreprocessor", "-fopenmp", f"-I{prefix}/include"],
                     [f"-L{prefix}/lib", "-lomp", f"-Wl,-rpath,{prefix}/lib"])
                    if prefix else ([], [])
                )
            if omp[0] and _compiles(self.compiler, *omp):
                compile_args += omp[0]
                link_args += omp[1]
            else:
                # Still honour `omp simd` loop hints without the runtime.
                compile_args.append("-fopenmp-simd")
                macros.append(("DLFR_OMP_SIMD", "1"))
        self.dlfr_openmp = any("openmp" in a and "simd" not in a for a in compile_args)
        for ext in self.extensions:
            ext.extra_compile_args = compile_args + [
                a for a in ext.extra_compile_args if a not in compile_args]
            ext.extra_link_args = link_args + ext.extra_link_args
            if ctype != "msvc" and "m" not in ext.libraries:
                # exp/log/tanh come from libm; name it so the module does not
                # rely on the interpreter having loaded libm already.
                ext.libraries = ext.libraries + ["m"]
            ext.define_macros = macros + [
                ("DLFR_BUILD_COMPILER", '"' + ctype + '"'),
                ("DLFR_BUILD_FLAGS", '"' + " ".join(compile_args).replace('"', "") + '"'),
            ] + ext.define_macros
        super().build_extensions()


C_HEADERS = ["src/dlfr/_simd.h", "src/dlfr/_simd_impl.h", "src/dlfr/_simd_levels.h",
             "src/dlfr/_finite.h", "src/dlfr/_omp.h"]


def _extension(name, *c_sources):
    """dlfr.<name> from src/dlfr/<name>.pyx (and these C sources)."""
    return Extension(
        f"dlfr.{name}",
        sources=[f"src/dlfr/{name}.pyx", *c_sources],
        # NumPy's C API (array checks and allocation on the hot path): built with
        # NumPy 2's headers for NumPy 1.23's C API, the module runs on NumPy 1.23+
        # whichever NumPy 2 release the build picked.
        include_dirs=["src/dlfr", numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                       ("NPY_TARGET_VERSION", "NPY_1_23_API_VERSION")],
        depends=C_HEADERS,
    )


extensions = [
    # The C kernels are linked into _dispatch alone: their SIMD dispatch table
    # is process-wide state, which every other module reaches through it.
    _extension("_dispatch", "src/dlfr/_simd.c"),
    _extension("_blas"),
    _extension("_ops"),
    _extension("_engine"),
    _extension("_trainer"),
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": DEBUG,
            "wraparound": False,
            "initializedcheck": DEBUG,
            "cdivision": True,
            "embedsignature": True,
        },
    ),
    cmdclass={"build_ext": BuildExt},
)

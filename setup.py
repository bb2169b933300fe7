"""Build of benchfab's optional native hot path (benchfab._native, from native/).

The extension needs the verbs headers (Debian: libibverbs-dev). Where they are
missing benchfab installs as pure Python and ``benchfab.native`` says why.
Environment switches:
    BENCHFAB_REQUIRE_NATIVE=1   fail the install if the extension cannot be built
    BENCHFAB_NO_NATIVE=1        do not try to build it
    BENCHFAB_VERBS_INCLUDE=DIR  where infiniband/verbs.h lives (default /usr/include)
"""

import glob
import os

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

REQUIRE = os.environ.get("BENCHFAB_REQUIRE_NATIVE", "") not in ("", "0")
INCLUDE = os.environ.get("BENCHFAB_VERBS_INCLUDE", "/usr/include")
NATIVE = "native"
SOURCE = os.path.join(NATIVE, "_native.pyx")


def native_includes():
    """The files _native.pyx includes (native/*.pxi, native/includes/*.pxi): listed as
    depends, so that editing one rebuilds the extension, and shipped in the sdist."""
    return sorted(glob.glob(os.path.join(NATIVE, "**", "*.pxi"), recursive=True))


def native_extensions():
    if os.environ.get("BENCHFAB_NO_NATIVE", "") not in ("", "0"):
        return []
    have_headers = os.path.exists(os.path.join(INCLUDE, "infiniband", "verbs.h"))
    if not have_headers or not os.path.exists(SOURCE):
        if REQUIRE:
            raise SystemExit(
                f"BENCHFAB_REQUIRE_NATIVE is set but {INCLUDE}/infiniband/verbs.h or {SOURCE} is missing "
                "(install libibverbs-dev)"
            )
        return []
    from Cython.Build import cythonize

    ext = Extension(
        "benchfab._native",
        sources=[SOURCE],
        depends=native_includes(),
        include_dirs=[NATIVE, INCLUDE],
        libraries=["ibverbs"],
        extra_compile_args=["-O3"],
        optional=not REQUIRE,
    )
    exts = cythonize(
        [ext],
        include_path=[NATIVE],
        compiler_directives={"language_level": 3, "boundscheck": False, "wraparound": False, "embedsignature": True},
    )
    # cythonize() builds new Extension objects and drops `optional`: restore it.
    for e in exts:
        e.optional = not REQUIRE
    return exts


EXAMPLES = "jobs"  # the example specs: their one copy is the repository's jobs/


def example_specs():
    """jobs/*.yaml and jobs/k8s/*.yaml: what `benchfab init` writes out (benchfab/examples.py)."""
    return sorted(glob.glob(os.path.join(EXAMPLES, "**", "*.yaml"), recursive=True))


class BuildPyWithExamples(build_py):
    """The package plus the example specs as benchfab/examples/, copied from jobs/ at build
    time, so a wheel or sdist install has them; an editable install reads jobs/ itself."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for source in example_specs():
            target = os.path.join(self.build_lib, "benchfab", "examples", os.path.relpath(source, EXAMPLES))
            self.mkpath(os.path.dirname(target))
            self.copy_file(source, target)


setup(ext_modules=native_extensions(), cmdclass={"build_py": BuildPyWithExamples})

"""Build the C extension(s) of ``neuroflow-native``; metadata lives in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "neuroflow_native._spawn",
            sources=["src/neuroflow_native/_spawn.c"],
            extra_compile_args=["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror=implicit"],
        ),
        Extension(
            "neuroflow_native._namespace",
            sources=["src/neuroflow_native/_namespace.c"],
            extra_compile_args=["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror=implicit"],
        ),
    ],
)

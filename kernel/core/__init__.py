"""The IPython-free core both language backends share.

Nothing here imports IPython, ipykernel or a backend: the pipeline a cell
takes (pipeline.py), the steps a backend implements (backend.py), the build
cache, diagnostics in the user's line numbers, toolchain discovery, the
profiler's records and travelling functions. The IPython face (the kernel,
the magics, live feedback) lives one folder up and drives this core.
"""

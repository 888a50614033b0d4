"""The %%cpp backend: C++ cells compiled into Python objects through pybind11."""

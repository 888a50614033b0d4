    {
        pybind11::options docs;
        docs.disable_function_signatures();
        pybind11::object real = cls.attr("${pyname}");
        cls.def${static}("${pyname}", [real](pybind11::args all, pybind11::kwargs kwargs) -> pybind11::object {
            return ipolyglot::retry_or_explain(real, all, kwargs, [&] { pybind11::args args = ${given}; ${explain}; });
        });
    }
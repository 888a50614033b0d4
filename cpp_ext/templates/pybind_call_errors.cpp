    {
        pybind11::options docs;
        docs.disable_function_signatures();
        pybind11::object real;
${real_chain}
        m.def("${pyname}", [real](pybind11::args args, pybind11::kwargs kwargs) -> pybind11::object {
            return ipolyglot::call_or_explain(real, args, kwargs, [&] { ${explain}; });
        });
    }
    {
        pybind11::options docs;
        docs.disable_function_signatures();
        pybind11::object real = cls.attr("__init__");
        cls.def("__init__", [real](pybind11::detail::value_and_holder &self, pybind11::args args, pybind11::kwargs kwargs) {
            ipolyglot::retry_or_explain(real, ipolyglot::with_self(self, args), kwargs, [&] { ${explain}; });
        }, pybind11::detail::is_new_style_constructor());
    }
    {
        pybind11::options docs;  // the docstring below carries the signature
        docs.disable_function_signatures();
        cls.def(pybind11::init<${types}>(), ${doc}${args});
    }
    {
        pybind11::options docs;  // the docstring below carries the signature
        docs.disable_function_signatures();
        ${scope}.def${static}("${pyname}", static_cast<${fnptr}>(&${qual}), ${doc}${args}${extras});
    }
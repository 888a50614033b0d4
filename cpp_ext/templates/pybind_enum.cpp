    pybind11::list members;
${members}
    ipolyglot::enum_class_holder<${qual}>::type() = ipolyglot::make_enum(m, "${name}", ${scoped}, members).release().ptr();
${ns_open}static void ipolyglot_register_${index}(pybind11::module_ &m) {
${body}
}${ns_close}
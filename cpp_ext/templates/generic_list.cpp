static const ipolyglot_abi::function ipolyglot_generic_function_list[] = {
${entries}
};

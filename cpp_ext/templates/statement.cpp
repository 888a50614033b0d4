${result_type} ipolyglot_statement(${params}) {
${body}
#line ${after_line} "${cell}"
    return ${result_type}(${outputs});
}

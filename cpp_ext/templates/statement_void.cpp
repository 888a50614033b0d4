void ipolyglot_statement(${params}) {
${body}
}
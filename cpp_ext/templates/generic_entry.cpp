    {"${name}", ${doc}, &ipolyglot_thunk_${index}, ipolyglot_abi::${result}, ${arity}, ${params}, ${release_gil}, ${numbers_only}},

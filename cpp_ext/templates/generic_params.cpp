static const ipolyglot_abi::parameter ipolyglot_params_${index}[] = {${params}};

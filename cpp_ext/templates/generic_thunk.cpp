void ipolyglot_thunk_${index}(void *const *args, void *result, std::exception_ptr *error) noexcept {
    try {
        ${call};
    } catch (...) {
        *error = std::current_exception();
    }
}

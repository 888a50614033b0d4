    ipolyglot::untime_entry(${scope}, "${pyname}");
    ${scope}.${define}("${pyname}", [](${timed_params}) -> pybind11::object {
        std::int64_t t1 = ipolyglot::now_ns();
        std::int64_t t0 = ${has_args} ? ipolyglot::call_start() : t1;
        std::int64_t native_ns = 0;
        ${call_result}
        ipolyglot::raise_thread_error();
        std::int64_t t2 = ipolyglot::now_ns();
        pybind11::object out = ${convert_result};
        ipolyglot::note_phases(t1 - t0, native_ns, ipolyglot::now_ns() - t2);
        return out;
    }${args});
    ipolyglot::time_entry(${scope}, "${pyname}", "${profile_name}", ${is_static});
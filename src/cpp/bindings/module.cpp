// module.cpp -- fastcnn._core itself: PYBIND11_MODULE, which picks the SIMD
// path and tunes malloc once at import, exports the size limits of
// geometry.h, binds the runtime controls (threads, busy wait, SIMD path, the
// FMA peak probe, build_info) and calls each op family's bind_* (module.h).
// Only the files in src/cpp/bindings/ include pybind11.
//
// Besides PyInit__core, _core exports two functions of its own (every other
// fastcnn symbol is hidden): the thread count as plain C, for threadpoolctl,
// which finds them in the loaded library and calls them through ctypes
// (fastcnn/backend/threads.py registers that controller).
//
// Size letters: none (no buffers here).
#include <cstdint>
#include <string>
#include <vector>

#include "bindings/intake.h"
#include "bindings/module.h"
#include "fastcnn.h"
#include "threadpool.h"

#if defined(__GNUC__)
#define FASTCNN_C_EXPORT extern "C" __attribute__((visibility("default")))
#else
#define FASTCNN_C_EXPORT extern "C"
#endif

// The thread count (fastcnn::get_num_threads / set_num_threads: n is clamped
// into [1, MAX_THREADS] and to OMP_THREAD_LIMIT).
FASTCNN_C_EXPORT int fastcnn_get_num_threads() { return fastcnn::get_num_threads(); }
FASTCNN_C_EXPORT void fastcnn_set_num_threads(int n) { fastcnn::set_num_threads(n); }

namespace fastcnn {
namespace bindings {

namespace {

void bind_runtime(py::module_& m) {
    m.def("set_num_threads", [](int n) {
        if (n < 1 || n > fastcnn::kMaxThreads)
            throw py::value_error("n must be in [1, " + std::to_string(fastcnn::kMaxThreads) +
                                  "], got " + std::to_string(n));
        fastcnn::set_num_threads(n);
    }, py::arg("n"));
    m.def("get_num_threads", &fastcnn::get_num_threads);
    m.def("set_busy_wait", &fastcnn::pool::set_busy_wait, py::arg("on"));
    m.def("busy_wait", &fastcnn::pool::busy_wait);
    m.def("simd_level", &fastcnn::simd_level);
    m.def("_set_isa", [](const std::string& name) {
        const std::string err = fastcnn::set_isa(name.c_str());
        if (!err.empty()) throw py::value_error("set_isa('" + name + "'): " + err);
    }, py::arg("name"));
    m.def("_peak_fma", [](const std::string& name, int64_t iters, int threads) {
        // (flops, value) of fastcnn::peak_fma, for bench/bench_peak.py.
        if (iters < 1 || iters > (int64_t(1) << 40))
            throw py::value_error("_peak_fma: iters must be in [1, 2**40], got " +
                                  std::to_string(iters));
        if (threads < 1 || threads > fastcnn::kMaxThreads)
            throw py::value_error("_peak_fma: threads must be in [1, " +
                                  std::to_string(fastcnn::kMaxThreads) + "], got " +
                                  std::to_string(threads));
        float sink = 0.0f;
        int64_t flops;
        {
            py::gil_scoped_release release;
            flops = fastcnn::peak_fma(name.c_str(), iters, threads, &sink);
        }
        if (flops == 0)
            throw py::value_error("_peak_fma: '" + name + "' is not a path this CPU and build run");
        return py::make_tuple(flops, sink);
    }, py::arg("name"), py::arg("iters"), py::arg("threads"));
    m.def("build_info", []() {
        py::dict d;
        d["version"] = FASTCNN_VERSION;
        d["simd"] = fastcnn::simd_level();
        auto to_list = [](const std::vector<std::string>& names) {
            py::list out;
            for (const std::string& name : names) out.append(name);
            return out;
        };
        d["isas_supported"] = to_list(fastcnn::supported_isas());
        d["isas_compiled"] = to_list(fastcnn::compiled_isas());
        d["cpu_avx2_fma"] = fastcnn::cpu_has_avx2_fma();
        d["cpu_avx512"] = fastcnn::cpu_has_avx512();
        d["avx2_compiled"] = bool(FASTCNN_HAVE_AVX2_BUILD);
        d["avx512_compiled"] = bool(FASTCNN_HAVE_AVX512_BUILD);
        d["threads"] = "fastcnn's own worker pool (no OpenMP runtime)";
        d["num_threads"] = fastcnn::get_num_threads();
        d["compiler"] = FASTCNN_COMPILER;
        d["cxx_flags"] = FASTCNN_CXX_FLAGS;
        d["avx2_flags"] = FASTCNN_HAVE_AVX2_BUILD ? "-mavx2 -mfma (on *_avx2.cpp only)" : "";
        d["avx512_flags"] = FASTCNN_HAVE_AVX512_BUILD
                                ? std::string(FASTCNN_AVX512_FLAGS_STR) + " (on *_avx512.cpp only)"
                                : std::string();
        d["build_type"] = FASTCNN_BUILD_TYPE;
        d["malloc_tuned"] = fastcnn::malloc_tuned();
        return d;
    });
}

}  // namespace

}  // namespace bindings
}  // namespace fastcnn

PYBIND11_MODULE(_core, m) {
    namespace py = pybind11;
    using namespace fastcnn::bindings;
    m.doc() = "fastcnn native kernels (private; use fastcnn.ops)";
    const std::string isa_error = fastcnn::init_dispatch();
    if (!isa_error.empty()) throw py::import_error(isa_error);
    fastcnn::tune_malloc();
    // The limits the intake enforces (geometry.h), read by the Python checks
    // and the tests.
    m.attr("MAX_SIZE") = fastcnn::kMaxDim;
    m.attr("CHOICE_NO_GRADIENT") = int(fastcnn::kNoGradient);
    m.attr("MAX_FUSED_POOL_WINDOW") = fastcnn::kMaxFusedPoolWindow;
    m.attr("MAX_THREADS") = fastcnn::kMaxThreads;
    fastcnn::get_num_threads();   // the count starts from the environment now
    bind_runtime(m);
    bind_gemm(m);
    bind_conv_dense(m);
    bind_pool(m);
    bind_conv_pool(m);
    bind_pointwise(m);
    bind_inference(m);
}

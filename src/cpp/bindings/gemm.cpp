// gemm.cpp -- the GEMM bindings of fastcnn._core: gemm, its plain twin
// _sgemm_naive (the tests' oracle), and the private look-ups into the GEMM's
// choice of strategy and blocking for tests and benchmarks. Intake contract:
// intake.h.
//
// Size letters: C is M x N, op(a) is M x K, op(b) is K x N.
#include <cstdint>
#include <string>
#include <vector>

#include "bindings/intake.h"
#include "bindings/module.h"
#include "fastcnn.h"

namespace fastcnn {
namespace bindings {

namespace {

using GemmKernel = void (*)(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                            const float*, int64_t, float, float*, int64_t);

// name(a, b, c, alpha, beta, trans_a, trans_b): c (M, N) = alpha*op(a)*op(b) +
// beta*c in place by kernel (sgemm or sgemm_naive). a, b float32 C-contiguous
// 2-D; c float32 C-contiguous writeable 2-D.
void def_gemm(py::module_& m, const char* name, GemmKernel kernel, const char* doc) {
    m.def(name, [kernel](py::handle a, py::handle b, py::handle c, double alpha, double beta,
                         bool trans_a, bool trans_b) {
        const float* pa = in_f32(a, "a", 2);
        const float* pb = in_f32(b, "b", 2);
        float* pc = out_f32(c, "c", 2);
        const std::vector<int64_t> da = dims_of(a), db = dims_of(b);
        // op(a) is (M, K), op(b) is (K, N); stored shapes are transposed when asked.
        const int64_t M = trans_a ? da[1] : da[0];
        const int64_t K = trans_a ? da[0] : da[1];
        const int64_t KB = trans_b ? db[1] : db[0];
        const int64_t N = trans_b ? db[0] : db[1];
        if (KB != K) {
            throw py::value_error("inner dimensions differ: a has shape " + dims_str(da) +
                                  " (trans_a=" + (trans_a ? "True" : "False") +
                                  "), b has shape " + dims_str(db) +
                                  " (trans_b=" + (trans_b ? "True" : "False") + ")");
        }
        require_shape(c, "c", {M, N}, "op(a) rows x op(b) columns");
        checked_mul(checked_mul(M, N, "gemm M*N"), K, "gemm M*N*K");
        // Row strides of the C-contiguous arrays (at least 1 so empty arrays
        // never give a zero stride; the kernel never reads them then).
        const int64_t lda = da[1] > 0 ? da[1] : 1;
        const int64_t ldb = db[1] > 0 ? db[1] : 1;
        const int64_t ldc = N > 0 ? N : 1;
        const float fa = static_cast<float>(alpha), fb = static_cast<float>(beta);
        py::gil_scoped_release release;
        kernel(trans_a, trans_b, M, N, K, fa, pa, lda, pb, ldb, fb, pc, ldc);
    }, py::arg("a"), py::arg("b"), py::arg("c"), py::arg("alpha"), py::arg("beta"),
       py::arg("trans_a"), py::arg("trans_b"), doc);
}

}  // namespace

void bind_gemm(py::module_& m) {
    def_gemm(m, "gemm", &fastcnn::sgemm,
             "c (M, N) = alpha * op(a) @ op(b) + beta * c, in place (sgemm).");
    def_gemm(m, "_sgemm_naive", &fastcnn::sgemm_naive,
             "The same with the plain triple loop (sgemm_naive, double accumulation): the "
             "oracle of the tests.");

    m.def("_gemm_path", [](int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b,
                           bool serial) {
        require_range(M, 0, kMaxDim, "m");
        require_range(N, 0, kMaxDim, "n");
        require_range(K, 0, kMaxDim, "k");
        checked_mul(checked_mul(M, N, "gemm M*N"), K, "gemm M*N*K");
        return std::string(fastcnn::sgemm_path(serial, trans_a, trans_b, M, N, K));
    }, py::arg("m"), py::arg("n"), py::arg("k"), py::arg("trans_a"), py::arg("trans_b"),
       py::arg("serial") = false,
       "The strategy gemm (serial: sgemm_serial) takes for these sizes on the SIMD path in "
       "use, as the entry point itself chooses it.");

    m.def("_gemm_limits", []() {
        const fastcnn::GemmLimits l = fastcnn::gemm_limits();
        py::dict d;
        d["dot_kb"] = l.dot_kb;
        d["dot_max_mn"] = l.dot_max_mn;
        d["dot_k_ranges"] = l.dot_k_ranges;
        d["stream_max_m"] = l.stream_max_m;
        d["stream_min_n"] = l.stream_min_n;
        d["stream_min_dot_k"] = l.stream_min_dot_k;
        d["stream_max_k"] = l.stream_max_k;
        d["whole_a_max_floats"] = l.whole_a_max_floats;
        d["min_work_per_thread"] = l.min_work_per_thread;
        return d;
    }, "The size limits of the GEMM's choice of strategy (fastcnn.h GemmLimits).");

    m.def("_gemm_blocking", [](const std::string& name) {
        // The block table of path `name` (blocking.h), for tests and benches.
        int64_t b[5];
        if (!fastcnn::gemm_blocking(name.c_str(), b)) {
            throw py::value_error("_gemm_blocking: '" + name +
                                  "' is not a SIMD path this build has");
        }
        py::dict d;
        d["mr"] = b[0];
        d["nr"] = b[1];
        d["mc"] = b[2];
        d["kc"] = b[3];
        d["nc"] = b[4];
        return d;
    }, py::arg("name"));
}

}  // namespace bindings
}  // namespace fastcnn

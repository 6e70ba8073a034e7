// gemm.cpp -- the GEMM bindings of fastcnn._core: gemm and the private
// look-ups into the GEMM's blocking for tests and benchmarks. Intake
// contract: intake.h.
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

// gemm(a, b, c, alpha, beta, trans_a, trans_b): c (M, N) = alpha*op(a)*op(b) + beta*c
// in place. a, b float32 C-contiguous 2-D; c float32 C-contiguous writeable 2-D.
void bind_gemm(py::module_& m) {
    m.def("gemm", [](py::handle a, py::handle b, py::handle c, double alpha, double beta,
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
        fastcnn::sgemm(trans_a, trans_b, M, N, K, fa, pa, lda, pb, ldb, fb, pc, ldc);
    }, py::arg("a"), py::arg("b"), py::arg("c"), py::arg("alpha"), py::arg("beta"),
       py::arg("trans_a"), py::arg("trans_b"));

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

// bindings.cpp -- the only file that includes pybind11: fastcnn._core.
//
// Contract of every binding here:
//  * arguments arrive as ndarrays that fastcnn/ops.py already converted
//    (float32, C-contiguous); this file re-checks dtype, layout, ndim and every
//    shape relation strictly and raises TypeError / ValueError naming the
//    argument and the shapes, so that even a direct call into _core can never
//    crash or write out of bounds;
//  * arrays the kernel writes into are never converted: a wrong one is an error;
//  * outputs are allocated by the caller (ops.py) and passed in;
//  * the GIL is released around the kernel call only.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "fastcnn.h"

namespace py = pybind11;

namespace {

// ------------------------------------------------------------ intake ----

std::string shape_str(const py::array& a) {
    std::ostringstream s;
    s << "(";
    for (py::ssize_t d = 0; d < a.ndim(); ++d) {
        if (d) s << ", ";
        s << a.shape(d);
    }
    if (a.ndim() == 1) s << ",";
    s << ")";
    return s.str();
}

std::string dims_str(const std::vector<int64_t>& dims) {
    std::ostringstream s;
    s << "(";
    for (size_t d = 0; d < dims.size(); ++d) {
        if (d) s << ", ";
        s << dims[d];
    }
    if (dims.size() == 1) s << ",";
    s << ")";
    return s.str();
}

// The handle must be an ndarray (never converted: a converted copy would
// swallow the kernel's writes).
py::array as_array(py::handle h, const char* name) {
    if (!py::isinstance<py::array>(h)) {
        throw py::type_error(std::string(name) + " must be a numpy.ndarray, got " +
                             std::string(py::str(py::type::of(h).attr("__name__"))));
    }
    return py::reinterpret_borrow<py::array>(h);
}

void require_f32(const py::array& a, const char* name, int ndim) {
    if (!a.dtype().is(py::dtype::of<float>())) {
        throw py::type_error(std::string(name) + " must have dtype float32, got " +
                             std::string(py::str(a.dtype())));
    }
    if (!(a.flags() & py::array::c_style)) {
        throw py::type_error(std::string(name) + " must be C-contiguous");
    }
    if (ndim >= 0 && a.ndim() != ndim) {
        throw py::value_error(std::string(name) + " must be " + std::to_string(ndim) +
                              "-D, got shape " + shape_str(a));
    }
}

// Read-only float32 input.
const float* in_f32(py::handle h, const char* name, int ndim) {
    py::array a = as_array(h, name);
    require_f32(a, name, ndim);
    return static_cast<const float*>(a.data());
}

// Optional read-only input: None gives nullptr.
const float* in_f32_opt(py::handle h, const char* name, int ndim) {
    return h.is_none() ? nullptr : in_f32(h, name, ndim);
}

// Float32 output or in-place argument: must be writeable too.
float* out_f32(py::handle h, const char* name, int ndim) {
    py::array a = as_array(h, name);
    require_f32(a, name, ndim);
    if (!a.writeable()) throw py::value_error(std::string(name) + " must be writeable");
    return static_cast<float*>(a.mutable_data());
}

float* out_f32_opt(py::handle h, const char* name, int ndim) {
    return h.is_none() ? nullptr : out_f32(h, name, ndim);
}

std::vector<int64_t> dims_of(py::handle h) {
    py::array a = py::reinterpret_borrow<py::array>(h);
    std::vector<int64_t> d(static_cast<size_t>(a.ndim()));
    for (py::ssize_t i = 0; i < a.ndim(); ++i) d[static_cast<size_t>(i)] = a.shape(i);
    return d;
}

// ValueError unless the array h (named name) has exactly the shape want.
void require_shape(py::handle h, const char* name, const std::vector<int64_t>& want,
                   const char* why = nullptr) {
    py::array a = py::reinterpret_borrow<py::array>(h);
    if (dims_of(a) != want) {
        std::string msg = std::string(name) + " has shape " + shape_str(a) + ", expected " +
                          dims_str(want);
        if (why) msg += std::string(" (") + why + ")";
        throw py::value_error(msg);
    }
}

// a * b with an overflow check (sizes are never negative here).
int64_t checked_mul(int64_t a, int64_t b, const char* what) {
    int64_t r;
    if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) {
        throw py::value_error(std::string("size overflow computing ") + what);
    }
    return r;
}

// Parameters that reach index arithmetic are bounded so that no intermediate
// (e.g. H + 2*PH) can overflow int64.
constexpr int64_t kMaxDim = int64_t(1) << 40;

void require_range(int64_t v, int64_t lo, int64_t hi, const char* name) {
    if (v < lo || v > hi) {
        throw py::value_error(std::string(name) + " must be in [" + std::to_string(lo) + ", " +
                              std::to_string(hi) + "], got " + std::to_string(v));
    }
}

// ============================================================== GEMM ======
// (section owned by the GEMM work)

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
}

// ================================================= im2col, conv, dense ======
// (section owned by the conv / dense work)

void bind_conv_dense(py::module_& m) {
    (void)m;
}

// =========================================================== pooling ======
// (section owned by the pooling work)

void bind_pool(py::module_& m) {
    (void)m;
}

// ============================================ elementwise, costs, optim ======
// (section owned by the activations / costs / dropout / optimizer work)

void bind_elementwise(py::module_& m) {
    (void)m;
}

// ============================================================== misc ======

void bind_misc(py::module_& m) {
    m.def("set_num_threads", [](int n) {
        if (n < 1) throw py::value_error("n must be >= 1, got " + std::to_string(n));
        fastcnn::set_num_threads(n);
    }, py::arg("n"));
    m.def("get_num_threads", &fastcnn::get_num_threads);
    m.def("simd_level", &fastcnn::simd_level);
    m.def("_set_isa", [](const std::string& name) {
        if (!fastcnn::set_isa(name.c_str())) {
            throw py::value_error("ISA '" + name + "' is unknown or not available on this CPU/build");
        }
    }, py::arg("name"));
    m.def("build_info", []() {
        py::dict d;
        d["version"] = FASTCNN_VERSION;
        d["simd"] = fastcnn::simd_level();
        d["cpu_avx2_fma"] = fastcnn::cpu_has_avx2_fma();
        d["avx2_compiled"] = bool(FASTCNN_HAVE_AVX2_BUILD);
        d["openmp"] = fastcnn::openmp_enabled();
        d["num_threads"] = fastcnn::get_num_threads();
        d["compiler"] = FASTCNN_COMPILER;
        d["cxx_flags"] = FASTCNN_CXX_FLAGS;
        d["avx2_flags"] = FASTCNN_HAVE_AVX2_BUILD ? "-mavx2 -mfma (on *_avx2.cpp only)" : "";
        d["build_type"] = FASTCNN_BUILD_TYPE;
        return d;
    });
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "fastcnn native kernels (private; use fastcnn.ops)";
    fastcnn::init_dispatch();
    bind_misc(m);
    bind_gemm(m);
    bind_conv_dense(m);
    bind_pool(m);
    bind_elementwise(m);
}

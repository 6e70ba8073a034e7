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

void bind_gemm(py::module_& m) {
    (void)m;
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

//
// Every array here is float32 C-contiguous (labels: int64, mask: uint8/bool).
// Elementwise ops take arrays of one shape (any ndim); softmax and the costs
// take (N, K) / (N, D) with N, K, D >= 1. An output may be exactly the same
// buffer as an input of its shape (the kernels work index by index), but must
// not partly overlap one. Optimizer buffers (param, grad, states) must be
// pairwise disjoint.

namespace ew {

using Unary = void (*)(float*, const float*, int64_t);
using Binary = void (*)(float*, const float*, const float*, int64_t);

int64_t count(py::handle h) {
    return static_cast<int64_t>(py::reinterpret_borrow<py::array>(h).size());
}

// ValueError if the memory of a and b overlaps; with allow_same, a and b may
// be exactly the same buffer (same start, same size).
void require_apart(py::handle a_h, const char* a_name, py::handle b_h, const char* b_name,
                   bool allow_same) {
    const py::array a = py::reinterpret_borrow<py::array>(a_h);
    const py::array b = py::reinterpret_borrow<py::array>(b_h);
    const char* a0 = static_cast<const char*>(a.data());
    const char* b0 = static_cast<const char*>(b.data());
    const py::ssize_t an = a.nbytes(), bn = b.nbytes();
    if (an == 0 || bn == 0 || a0 >= b0 + bn || b0 >= a0 + an) return;
    if (allow_same && a0 == b0 && an == bn) return;
    if (allow_same) {
        throw py::value_error(std::string(a_name) + " must be either exactly " + b_name +
                              " (in place) or not overlap it");
    }
    throw py::value_error(std::string(a_name) + " must not share memory with " + b_name);
}

// An input of the same shape as ref (named ref_name), float32 C-contiguous.
const float* in_like(py::handle h, const char* name, py::handle ref, const char* ref_name) {
    const float* p = in_f32(h, name, -1);
    require_shape(h, name, dims_of(ref), (std::string("the shape of ") + ref_name).c_str());
    return p;
}

// (N, K) rows with N >= 1 and K >= 1.
std::vector<int64_t> rows_dims(py::handle h, const char* name) {
    const std::vector<int64_t> d = dims_of(h);
    if (d[0] < 1 || d[1] < 1) {
        throw py::value_error(std::string(name) + " must not be empty, got shape " + dims_str(d));
    }
    return d;
}

// A writeable output or in-place state of the same shape as ref.
float* out_like(py::handle h, const char* name, py::handle ref, const char* ref_name) {
    float* p = out_f32(h, name, -1);
    require_shape(h, name, dims_of(ref), (std::string("the shape of ") + ref_name).c_str());
    return p;
}

void def_unary(py::module_& m, const char* name, Unary kernel) {
    m.def(name, [kernel](py::handle out_h, py::handle x_h) {
        const float* x = in_f32(x_h, "x", -1);
        float* out = out_like(out_h, "out", x_h, "x");
        require_apart(out_h, "out", x_h, "x", true);
        const int64_t n = count(x_h);
        py::gil_scoped_release release;
        kernel(out, x, n);
    }, py::arg("out"), py::arg("x"));
}

// dx = f(dout, t) where t is the forward input (relu) or output (sigmoid, tanh).
void def_binary(py::module_& m, const char* name, const char* t_name, Binary kernel) {
    m.def(name, [kernel, t_name](py::handle dx_h, py::handle dout_h, py::handle t_h) {
        const float* dout = in_f32(dout_h, "dout", -1);
        const float* t = in_like(t_h, t_name, dout_h, "dout");
        float* dx = out_like(dx_h, "dx", dout_h, "dout");
        require_apart(dx_h, "dx", dout_h, "dout", true);
        require_apart(dx_h, "dx", t_h, t_name, true);
        const int64_t n = count(dout_h);
        py::gil_scoped_release release;
        kernel(dx, dout, t, n);
    }, py::arg("dx"), py::arg("dout"), py::arg(t_name));
}

void def_softmax(py::module_& m, const char* name,
                 void (*kernel)(float*, const float*, int64_t, int64_t)) {
    m.def(name, [kernel](py::handle out_h, py::handle x_h) {
        const float* x = in_f32(x_h, "x", 2);
        const std::vector<int64_t> d = rows_dims(x_h, "x");
        float* out = out_like(out_h, "out", x_h, "x");
        require_apart(out_h, "out", x_h, "x", true);
        py::gil_scoped_release release;
        kernel(out, x, d[0], d[1]);
    }, py::arg("out"), py::arg("x"));
}

// Quadratic and BCE: grad (N, D) from a (N, D) and targets y (N, D).
void def_cost(py::module_& m, const char* name, const char* grad_name, const char* a_name,
              double (*kernel)(float*, const float*, const float*, int64_t, int64_t)) {
    m.def(name, [kernel, grad_name, a_name](py::handle grad_h, py::handle a_h, py::handle y_h) {
        const float* a = in_f32(a_h, a_name, 2);
        const std::vector<int64_t> d = rows_dims(a_h, a_name);
        const float* y = in_like(y_h, "y", a_h, a_name);
        float* grad = out_like(grad_h, grad_name, a_h, a_name);
        require_apart(grad_h, grad_name, a_h, a_name, true);
        require_apart(grad_h, grad_name, y_h, "y", true);
        py::gil_scoped_release release;
        return kernel(grad, a, y, d[0], d[1]);
    }, py::arg(grad_name), py::arg(a_name), py::arg("y"));
}

// Optimizer intake: param and grad float32 C-contiguous of one shape; each
// state (may be None only where allowed) likewise; all pairwise disjoint.
struct Update {
    float* param;
    const float* grad;
    int64_t n;
};

Update update_intake(py::handle param_h, py::handle grad_h,
                     const std::vector<std::pair<py::handle, const char*>>& states) {
    Update u;
    u.param = out_f32(param_h, "param", -1);
    u.grad = in_like(grad_h, "grad", param_h, "param");
    u.n = count(param_h);
    std::vector<std::pair<py::handle, const char*>> all = {{param_h, "param"}, {grad_h, "grad"}};
    for (const auto& s : states) {
        if (s.first.is_none()) continue;
        out_like(s.first, s.second, param_h, "param");
        all.push_back(s);
    }
    for (size_t i = 0; i < all.size(); ++i) {
        for (size_t j = i + 1; j < all.size(); ++j) {
            require_apart(all[i].first, all[i].second, all[j].first, all[j].second, false);
        }
    }
    return u;
}

float* state_ptr(py::handle h) {
    return h.is_none() ? nullptr
                       : static_cast<float*>(py::reinterpret_borrow<py::array>(h).mutable_data());
}

}  // namespace ew

void bind_elementwise(py::module_& m) {
    ew::def_unary(m, "relu_forward", &fastcnn::relu_forward);
    ew::def_unary(m, "sigmoid_forward", &fastcnn::sigmoid_forward);
    ew::def_unary(m, "tanh_forward", &fastcnn::tanh_forward);
    ew::def_unary(m, "_sigmoid_forward_plain", &fastcnn::sigmoid_forward_plain);
    ew::def_unary(m, "_tanh_forward_plain", &fastcnn::tanh_forward_plain);
    ew::def_binary(m, "relu_backward", "x", &fastcnn::relu_backward);
    ew::def_binary(m, "sigmoid_backward", "y", &fastcnn::sigmoid_backward);
    ew::def_binary(m, "tanh_backward", "y", &fastcnn::tanh_backward);
    ew::def_softmax(m, "softmax_forward", &fastcnn::softmax_forward);
    ew::def_softmax(m, "log_softmax_forward", &fastcnn::log_softmax_forward);
    ew::def_cost(m, "quadratic_cost", "da", "a", &fastcnn::quadratic_cost);
    ew::def_cost(m, "binary_cross_entropy", "dz", "z", &fastcnn::binary_cross_entropy);

    // dlogits (N, K), logits (N, K), labels (N,) int64 in [0, K). Returns the loss.
    m.def("softmax_loglik", [](py::handle dlogits_h, py::handle logits_h, py::handle labels_h) {
        const float* logits = in_f32(logits_h, "logits", 2);
        const std::vector<int64_t> d = ew::rows_dims(logits_h, "logits");
        float* dlogits = ew::out_like(dlogits_h, "dlogits", logits_h, "logits");
        ew::require_apart(dlogits_h, "dlogits", logits_h, "logits", true);
        py::array labels = as_array(labels_h, "labels");
        if (!labels.dtype().equal(py::dtype::of<int64_t>())) {
            throw py::type_error("labels must have dtype int64, got " +
                                 std::string(py::str(labels.dtype())));
        }
        if (!(labels.flags() & py::array::c_style)) {
            throw py::type_error("labels must be C-contiguous");
        }
        require_shape(labels_h, "labels", {d[0]}, "one label per row of logits");
        // Copied, then checked: the kernel indexes rows with these, so they
        // must not change (another Python thread) between check and use.
        const int64_t* first = static_cast<const int64_t*>(labels.data());
        const std::vector<int64_t> lab(first, first + d[0]);  // (N)
        for (int64_t r = 0; r < d[0]; ++r) {
            if (lab[static_cast<size_t>(r)] < 0 || lab[static_cast<size_t>(r)] >= d[1]) {
                throw py::value_error("labels must lie in [0, " + std::to_string(d[1]) +
                                      "), got " + std::to_string(lab[static_cast<size_t>(r)]) +
                                      " at row " + std::to_string(r));
            }
        }
        py::gil_scoped_release release;
        return fastcnn::softmax_loglik(dlogits, logits, lab.data(), d[0], d[1]);
    }, py::arg("dlogits"), py::arg("logits"), py::arg("labels"));

    // out = x * mask * scale; mask uint8 or bool, one byte per value, x's shape.
    m.def("dropout_apply", [](py::handle out_h, py::handle x_h, py::handle mask_h, float scale) {
        const float* x = in_f32(x_h, "x", -1);
        float* out = ew::out_like(out_h, "out", x_h, "x");
        ew::require_apart(out_h, "out", x_h, "x", true);
        py::array mask = as_array(mask_h, "mask");
        const char kind = mask.dtype().kind();
        if (!((kind == 'u' || kind == 'b') && mask.dtype().itemsize() == 1)) {
            throw py::type_error("mask must have dtype uint8 or bool, got " +
                                 std::string(py::str(mask.dtype())));
        }
        if (!(mask.flags() & py::array::c_style)) {
            throw py::type_error("mask must be C-contiguous");
        }
        require_shape(mask_h, "mask", dims_of(x_h), "the shape of x");
        ew::require_apart(out_h, "out", mask_h, "mask", false);
        const uint8_t* mp = static_cast<const uint8_t*>(mask.data());
        const int64_t n = ew::count(x_h);
        py::gil_scoped_release release;
        fastcnn::dropout_apply(out, x, mp, scale, n);
    }, py::arg("out"), py::arg("x"), py::arg("mask"), py::arg("scale"));

    m.def("sgd_update", [](py::handle param_h, py::handle grad_h, py::handle velocity_h,
                           float lr, float momentum, float weight_decay, bool nesterov) {
        const ew::Update u = ew::update_intake(param_h, grad_h, {{velocity_h, "velocity"}});
        if (velocity_h.is_none() && momentum != 0.f) {
            throw py::value_error("velocity is required when momentum != 0");
        }
        float* velocity = ew::state_ptr(velocity_h);
        py::gil_scoped_release release;
        fastcnn::sgd_update(u.param, u.grad, velocity, u.n, lr, momentum, weight_decay, nesterov);
    }, py::arg("param"), py::arg("grad"), py::arg("velocity").none(true), py::arg("lr"),
       py::arg("momentum"), py::arg("weight_decay"), py::arg("nesterov"));

    m.def("adagrad_update", [](py::handle param_h, py::handle grad_h, py::handle sum_sq_h,
                               float lr, float eps, float weight_decay) {
        if (sum_sq_h.is_none()) throw py::type_error("sum_sq must be a numpy.ndarray, got NoneType");
        const ew::Update u = ew::update_intake(param_h, grad_h, {{sum_sq_h, "sum_sq"}});
        float* sum_sq = ew::state_ptr(sum_sq_h);
        py::gil_scoped_release release;
        fastcnn::adagrad_update(u.param, u.grad, sum_sq, u.n, lr, eps, weight_decay);
    }, py::arg("param"), py::arg("grad"), py::arg("sum_sq"), py::arg("lr"), py::arg("eps"),
       py::arg("weight_decay"));

    m.def("rmsprop_update", [](py::handle param_h, py::handle grad_h, py::handle sq_avg_h,
                               float lr, float alpha, float eps, float weight_decay) {
        if (sq_avg_h.is_none()) throw py::type_error("sq_avg must be a numpy.ndarray, got NoneType");
        const ew::Update u = ew::update_intake(param_h, grad_h, {{sq_avg_h, "sq_avg"}});
        float* sq_avg = ew::state_ptr(sq_avg_h);
        py::gil_scoped_release release;
        fastcnn::rmsprop_update(u.param, u.grad, sq_avg, u.n, lr, alpha, eps, weight_decay);
    }, py::arg("param"), py::arg("grad"), py::arg("sq_avg"), py::arg("lr"), py::arg("alpha"),
       py::arg("eps"), py::arg("weight_decay"));

    m.def("adam_update", [](py::handle param_h, py::handle grad_h, py::handle m_h, py::handle v_h,
                            int64_t step, float lr, float beta1, float beta2, float eps,
                            float weight_decay) {
        if (m_h.is_none()) throw py::type_error("m must be a numpy.ndarray, got NoneType");
        if (v_h.is_none()) throw py::type_error("v must be a numpy.ndarray, got NoneType");
        const ew::Update u = ew::update_intake(param_h, grad_h, {{m_h, "m"}, {v_h, "v"}});
        require_range(step, 1, std::numeric_limits<int64_t>::max(), "step");
        float* mp = ew::state_ptr(m_h);
        float* vp = ew::state_ptr(v_h);
        py::gil_scoped_release release;
        fastcnn::adam_update(u.param, u.grad, mp, vp, u.n, step, lr, beta1, beta2, eps,
                             weight_decay);
    }, py::arg("param"), py::arg("grad"), py::arg("m"), py::arg("v"), py::arg("step"),
       py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"));
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

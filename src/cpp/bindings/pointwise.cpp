// pointwise.cpp -- the bindings of the ops that work value by value or row by
// row: activations, softmax, costs, dropout and the optimizer updates.
// Intake contract: intake.h.
//
// Size letters: n values (any shape, seen flat); N rows, K classes, D values
// per row.
//
// Every array here is float32 C-contiguous (labels: int64, mask: uint8/bool).
// Elementwise ops take arrays of one shape (any ndim); softmax and the costs
// take (N, K) / (N, D) with N, K, D >= 1. An output may be exactly the same
// buffer as an input of its shape (the kernels work index by index), but must
// not partly overlap one. Optimizer buffers (param, grad, states) must be
// pairwise disjoint.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "bindings/intake.h"
#include "bindings/module.h"
#include "fastcnn.h"

namespace fastcnn {
namespace bindings {

namespace {

using Unary = void (*)(float*, const float*, int64_t);
using Binary = void (*)(float*, const float*, const float*, int64_t);

// (N, K) rows with N >= 1 and K >= 1.
std::vector<int64_t> rows_dims(py::handle h, const char* name) {
    const std::vector<int64_t> d = dims_of(h);
    if (d[0] < 1 || d[1] < 1) {
        throw py::value_error(std::string(name) + " must not be empty, got shape " + dims_str(d));
    }
    return d;
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

// leaky_relu: out <- f(x, alpha), dx <- f'(dout, x, alpha); alpha as float32.
void def_leaky_relu(py::module_& m) {
    m.def("leaky_relu_forward", [](py::handle out_h, py::handle x_h, double alpha) {
        const float* x = in_f32(x_h, "x", -1);
        float* out = out_like(out_h, "out", x_h, "x");
        require_apart(out_h, "out", x_h, "x", true);
        const int64_t n = count(x_h);
        py::gil_scoped_release release;
        fastcnn::leaky_relu_forward(out, x, n, static_cast<float>(alpha));
    }, py::arg("out"), py::arg("x"), py::arg("alpha"));
    m.def("leaky_relu_backward", [](py::handle dx_h, py::handle dout_h, py::handle x_h,
                                    double alpha) {
        const float* dout = in_f32(dout_h, "dout", -1);
        const float* x = in_like(x_h, "x", dout_h, "dout");
        float* dx = out_like(dx_h, "dx", dout_h, "dout");
        require_apart(dx_h, "dx", dout_h, "dout", true);
        require_apart(dx_h, "dx", x_h, "x", true);
        const int64_t n = count(dout_h);
        py::gil_scoped_release release;
        fastcnn::leaky_relu_backward(dx, dout, x, n, static_cast<float>(alpha));
    }, py::arg("dx"), py::arg("dout"), py::arg("x"), py::arg("alpha"));
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

}  // namespace

void bind_pointwise(py::module_& m) {
    // Activations: forward out <- f(x), backward dx <- f'(dout, x or y).
    def_unary(m, "relu_forward", &fastcnn::relu_forward);
    def_unary(m, "sigmoid_forward", &fastcnn::sigmoid_forward);
    def_unary(m, "tanh_forward", &fastcnn::tanh_forward);
    def_unary(m, "_sigmoid_forward_plain", &fastcnn::sigmoid_forward_plain);
    def_unary(m, "_tanh_forward_plain", &fastcnn::tanh_forward_plain);
    def_binary(m, "relu_backward", "x", &fastcnn::relu_backward);
    def_binary(m, "sigmoid_backward", "y", &fastcnn::sigmoid_backward);
    def_binary(m, "tanh_backward", "y", &fastcnn::tanh_backward);
    def_leaky_relu(m);
    def_softmax(m, "softmax_forward", &fastcnn::softmax_forward);
    def_softmax(m, "log_softmax_forward", &fastcnn::log_softmax_forward);
    def_cost(m, "quadratic_cost", "da", "a", &fastcnn::quadratic_cost);
    def_cost(m, "binary_cross_entropy", "dz", "z", &fastcnn::binary_cross_entropy);

    // dlogits (N, K), logits (N, K), labels (N,) int64 in [0, K). Returns the loss.
    m.def("softmax_loglik", [](py::handle dlogits_h, py::handle logits_h, py::handle labels_h) {
        const float* logits = in_f32(logits_h, "logits", 2);
        const std::vector<int64_t> d = rows_dims(logits_h, "logits");
        float* dlogits = out_like(dlogits_h, "dlogits", logits_h, "logits");
        require_apart(dlogits_h, "dlogits", logits_h, "logits", true);
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
        float* out = out_like(out_h, "out", x_h, "x");
        require_apart(out_h, "out", x_h, "x", true);
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
        require_apart(out_h, "out", mask_h, "mask", false);
        const uint8_t* mp = static_cast<const uint8_t*>(mask.data());
        const int64_t n = count(x_h);
        py::gil_scoped_release release;
        fastcnn::dropout_apply(out, x, mp, scale, n);
    }, py::arg("out"), py::arg("x"), py::arg("mask"), py::arg("scale"));

    m.def("sgd_update", [](py::handle param_h, py::handle grad_h, py::handle velocity_h,
                           float lr, float momentum, float weight_decay, bool nesterov) {
        const Update u = update_intake(param_h, grad_h, {{velocity_h, "velocity"}});
        if (velocity_h.is_none() && momentum != 0.f) {
            throw py::value_error("velocity is required when momentum != 0");
        }
        float* velocity = state_ptr(velocity_h);
        py::gil_scoped_release release;
        fastcnn::sgd_update(u.param, u.grad, velocity, u.n, lr, momentum, weight_decay, nesterov);
    }, py::arg("param"), py::arg("grad"), py::arg("velocity").none(true), py::arg("lr"),
       py::arg("momentum"), py::arg("weight_decay"), py::arg("nesterov"));

    m.def("adagrad_update", [](py::handle param_h, py::handle grad_h, py::handle sum_sq_h,
                               float lr, float eps, float weight_decay) {
        if (sum_sq_h.is_none()) throw py::type_error("sum_sq must be a numpy.ndarray, got NoneType");
        const Update u = update_intake(param_h, grad_h, {{sum_sq_h, "sum_sq"}});
        float* sum_sq = state_ptr(sum_sq_h);
        py::gil_scoped_release release;
        fastcnn::adagrad_update(u.param, u.grad, sum_sq, u.n, lr, eps, weight_decay);
    }, py::arg("param"), py::arg("grad"), py::arg("sum_sq"), py::arg("lr"), py::arg("eps"),
       py::arg("weight_decay"));

    m.def("rmsprop_update", [](py::handle param_h, py::handle grad_h, py::handle sq_avg_h,
                               float lr, float alpha, float eps, float weight_decay) {
        if (sq_avg_h.is_none()) throw py::type_error("sq_avg must be a numpy.ndarray, got NoneType");
        const Update u = update_intake(param_h, grad_h, {{sq_avg_h, "sq_avg"}});
        float* sq_avg = state_ptr(sq_avg_h);
        py::gil_scoped_release release;
        fastcnn::rmsprop_update(u.param, u.grad, sq_avg, u.n, lr, alpha, eps, weight_decay);
    }, py::arg("param"), py::arg("grad"), py::arg("sq_avg"), py::arg("lr"), py::arg("alpha"),
       py::arg("eps"), py::arg("weight_decay"));

    m.def("adam_update", [](py::handle param_h, py::handle grad_h, py::handle m_h, py::handle v_h,
                            int64_t step, float lr, float beta1, float beta2, float eps,
                            float weight_decay) {
        if (m_h.is_none()) throw py::type_error("m must be a numpy.ndarray, got NoneType");
        if (v_h.is_none()) throw py::type_error("v must be a numpy.ndarray, got NoneType");
        const Update u = update_intake(param_h, grad_h, {{m_h, "m"}, {v_h, "v"}});
        require_range(step, 1, std::numeric_limits<int64_t>::max(), "step");
        float* mp = state_ptr(m_h);
        float* vp = state_ptr(v_h);
        py::gil_scoped_release release;
        fastcnn::adam_update(u.param, u.grad, mp, vp, u.n, step, lr, beta1, beta2, eps,
                             weight_decay);
    }, py::arg("param"), py::arg("grad"), py::arg("m"), py::arg("v"), py::arg("step"),
       py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"));
}

}  // namespace bindings
}  // namespace fastcnn

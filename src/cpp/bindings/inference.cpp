// inference.cpp -- the binding of the inference plan (InferencePlan,
// fastcnn.h): _core.InferencePlan(input_shape), the methods that append its
// steps, each checked when it is added, and run(x, out), checked at each call,
// which releases the GIL once for the whole pass. Intake contract: intake.h.
//
// Size letters: N batch; C H W one image of a step's input (flat features F
// as (F,)), K OH OW one image of its output; KH KW SH SW PH PW the conv
// kernel or pooling window, stride, padding; PKH PKW PSH PSW the fused
// max-pool's (geometry.h); I O dense features.
//
// The plan holds a reference to every parameter array it was given and reads
// its data pointer again at each run, so updates in place are seen and a
// parameter array can never be freed under it. The sizes of a step are
// checked for one image when it is added; what a batch multiplies (the
// largest such product, per_image_) is checked against N at each run.
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bindings/intake.h"
#include "bindings/module.h"
#include "fastcnn.h"

namespace fastcnn {
namespace bindings {

namespace {

using Pair = std::array<int64_t, 2>;

int64_t product(const std::vector<int64_t>& dims, const char* what) {
    int64_t p = 1;
    for (int64_t d : dims) p = checked_mul(p, d, what);
    return p;
}

class PlanBinding {
public:
    explicit PlanBinding(const std::vector<int64_t>& input_shape) : in_dims_(input_shape) {
        if (in_dims_.size() != 1 && in_dims_.size() != 3) {
            throw py::value_error("input_shape must be (C, H, W) or (features,), got " +
                                  dims_str(in_dims_));
        }
        for (int64_t d : in_dims_) require_range(d, 1, kMaxDim, "input_shape entry");
        dims_ = in_dims_;
        per_image_ = product(in_dims_, "the input size");
        plan_ = std::make_unique<InferencePlan>(per_image_);
    }

    void conv2d(py::handle w, py::handle b, Pair stride, Pair padding, bool relu) {
        InferStep s = conv_step(InferOp::conv2d, w, b, stride, padding, relu, "conv2d");
        add(s, {s.K, s.OH, s.OW});
    }

    void conv2d_maxpool(py::handle w, py::handle b, Pair stride, Pair padding, Pair size,
                        Pair pool_stride, bool relu) {
        InferStep s = conv_step(InferOp::conv2d_maxpool, w, b, stride, padding, relu,
                                "conv2d_maxpool");
        const PoolCall p = pool_geometry({1, s.K, s.OH, s.OW}, "the conv output", size[0],
                                         size[1], pool_stride[0], pool_stride[1]);
        if (p.KH * p.KW > kMaxFusedPoolWindow) {
            throw py::value_error("pooling window " + dims_str({p.KH, p.KW}) +
                                  " has more than " + std::to_string(kMaxFusedPoolWindow) +
                                  " elements, the most the fused conv + max-pool handles");
        }
        s.PKH = p.KH, s.PKW = p.KW, s.PSH = p.SH, s.PSW = p.SW;
        add(s, {s.K, p.OH, p.OW});
    }

    void pool(InferOp op, Pair size, Pair stride, const char* name) {
        InferStep s = step(op, name, true);
        const PoolCall p = pool_geometry({1, s.C, s.H, s.W}, "the step's input", size[0],
                                         size[1], stride[0], stride[1]);
        s.KH = p.KH, s.KW = p.KW, s.SH = p.SH, s.SW = p.SW;
        add(s, {s.C, p.OH, p.OW});
    }

    void global_avgpool2d() {
        const InferStep s = step(InferOp::global_avgpool2d, "global_avgpool2d", true);
        add(s, {s.C});
    }

    void dense(py::handle w, py::handle b) {
        InferStep s = step(InferOp::dense, "dense", false);
        const int64_t I = s.C * s.H * s.W;
        in_f32(w, "w", 2);
        const int64_t O = dims_of(w)[1];
        require_range(O, 1, kMaxDim, "w output features");
        require_shape(w, "w", {I, O}, "(I, O) matching the step's input features");
        s.w = keep(w);
        if (!b.is_none()) {
            in_f32(b, "b", 1);
            require_shape(b, "b", {O}, "one bias per output feature");
            s.b = keep(b);
        }
        add(s, {O});
    }

    void activation(const std::string& name, float alpha) {
        static const std::pair<const char*, InferOp> known[] = {
            {"relu", InferOp::relu}, {"leaky_relu", InferOp::leaky_relu},
            {"sigmoid", InferOp::sigmoid}, {"tanh", InferOp::tanh},
            {"softmax", InferOp::softmax}};
        for (const auto& [known_name, op] : known) {
            if (name == known_name) {
                InferStep s = step(op, known_name, false);
                s.alpha = alpha;
                add(s, dims_);
                return;
            }
        }
        throw py::value_error("activation must be relu, leaky_relu, sigmoid, tanh or softmax, "
                              "got '" + name + "'");
    }

    void scale(float factor) {
        InferStep s = step(InferOp::scale, "scale", false);
        s.alpha = factor;
        add(s, dims_);
    }

    void flatten() { dims_ = {product(dims_, "the flattened size")}; }

    py::tuple input_shape() const { return py::tuple(py::cast(in_dims_)); }
    py::tuple output_shape() const { return py::tuple(py::cast(dims_)); }
    size_t n_steps() const { return plan_->steps().size(); }

    py::object run(py::handle x, py::handle out) {
        const float* xp = in_f32(x, "x", -1);
        std::vector<int64_t> want = dims_of(x);
        const int64_t N = want.empty() ? 0 : want[0];
        want.assign(1, N);
        want.insert(want.end(), in_dims_.begin(), in_dims_.end());
        require_shape(x, "x", want, "(N,) + the plan's input shape");
        require_range(N, 1, kMaxDim, "x batch size");
        checked_mul(checked_mul(N, per_image_, "N times the largest size of a step"), 16,
                    "the plan's buffers");
        float* op = out_f32(out, "out", -1);
        want.resize(1);
        want.insert(want.end(), dims_.begin(), dims_.end());
        require_shape(out, "out", want, "(N,) + the plan's output shape");
        require_apart(out, "out", x, "x");
        std::vector<const float*> params(params_.size());
        for (size_t i = 0; i < params_.size(); ++i) {
            const py::array& p = params_[i];
            if (static_cast<int64_t>(p.nbytes()) != param_bytes_[i] ||
                !p.dtype().equal(py::dtype::of<float>()) || !(p.flags() & py::array::c_style)) {
                throw py::value_error("a parameter array of this plan is no longer the float32 "
                                      "C-contiguous array of its size it was: build a new plan");
            }
            require_apart(out, "out", p, "a parameter array");
            params[i] = static_cast<const float*>(p.data());
        }
        {
            py::gil_scoped_release nogil;
            plan_->run(op, xp, N, params.data());
        }
        return py::reinterpret_borrow<py::object>(out);
    }

private:
    // A step of op on the current shape, which must be (C, H, W) when images.
    InferStep step(InferOp op, const char* name, bool images) const {
        if (images && dims_.size() != 3) {
            throw py::value_error(std::string(name) + " needs (C, H, W) inputs, got input shape " +
                                  dims_str(dims_));
        }
        InferStep s{};
        s.op = op;
        s.C = dims_[0];
        s.H = dims_.size() == 3 ? dims_[1] : 1;
        s.W = dims_.size() == 3 ? dims_[2] : 1;
        s.w = s.b = -1;
        return s;
    }

    InferStep conv_step(InferOp op, py::handle w, py::handle b, Pair stride, Pair padding,
                        bool relu, const char* name) {
        InferStep s = step(op, name, true);
        in_f32(w, "w", 4);
        const std::vector<int64_t> wd = dims_of(w);
        const ConvGeom g = conv_geom({1, s.C, s.H, s.W}, "the step's input", wd[2], wd[3],
                                     stride[0], stride[1], padding[0], padding[1]);
        s.K = conv_filters(w, g);
        s.KH = g.KH, s.KW = g.KW, s.SH = g.SH, s.SW = g.SW, s.PH = g.PH, s.PW = g.PW;
        s.OH = g.OH, s.OW = g.OW;
        if (!b.is_none()) {
            in_f32(b, "b", 1);
            require_shape(b, "b", {s.K}, "one bias per filter");
        }
        s.w = keep(w);
        if (!b.is_none()) s.b = keep(b);
        s.relu = relu;
        // the columns of one image, and with the output's, the scratch of one image
        per_image_ = std::max(per_image_, checked_mul(g.ckk + s.K, g.OH * g.OW, "a conv's scratch"));
        return s;
    }

    int keep(py::handle a) {
        params_.push_back(py::reinterpret_borrow<py::array>(a));
        param_bytes_.push_back(static_cast<int64_t>(params_.back().nbytes()));
        return static_cast<int>(params_.size() - 1);
    }

    // Appends s with output shape `out` (one image); it becomes the current shape.
    void add(InferStep s, const std::vector<int64_t>& out) {
        const int64_t size = product(out, "a step's output size");
        s.K = out[0];
        s.OH = out.size() == 3 ? out[1] : 1;
        s.OW = out.size() == 3 ? out[2] : 1;
        per_image_ = std::max(per_image_, size);
        plan_->add(s);
        dims_ = out;
    }

    std::vector<int64_t> in_dims_, dims_;  // one image: the input, the current output
    int64_t per_image_ = 1;
    std::unique_ptr<InferencePlan> plan_;
    std::vector<py::array> params_;        // what the steps' w and b index
    std::vector<int64_t> param_bytes_;
};

}  // namespace

void bind_inference(py::module_& m) {
    using P = PlanBinding;
    py::class_<P>(m, "InferencePlan",
                  "A model's inference forward pass as one call (fastcnn.h InferencePlan).")
        .def(py::init<const std::vector<int64_t>&>(), py::arg("input_shape"))
        .def("conv2d", &P::conv2d, py::arg("w"), py::arg("b"), py::arg("stride"),
             py::arg("padding"), py::arg("relu") = false)
        .def("conv2d_maxpool", &P::conv2d_maxpool, py::arg("w"), py::arg("b"),
             py::arg("stride"), py::arg("padding"), py::arg("size"), py::arg("pool_stride"),
             py::arg("relu") = false)
        .def("maxpool2d", [](P& p, Pair size, Pair stride) {
            p.pool(InferOp::maxpool2d, size, stride, "maxpool2d");
        }, py::arg("size"), py::arg("stride"))
        .def("avgpool2d", [](P& p, Pair size, Pair stride) {
            p.pool(InferOp::avgpool2d, size, stride, "avgpool2d");
        }, py::arg("size"), py::arg("stride"))
        .def("l2pool2d", [](P& p, Pair size, Pair stride) {
            p.pool(InferOp::l2pool2d, size, stride, "l2pool2d");
        }, py::arg("size"), py::arg("stride"))
        .def("global_avgpool2d", &P::global_avgpool2d)
        .def("dense", &P::dense, py::arg("w"), py::arg("b"))
        .def("activation", &P::activation, py::arg("name"), py::arg("alpha") = 0.0f)
        .def("scale", &P::scale, py::arg("factor"))
        .def("flatten", &P::flatten)
        .def_property_readonly("input_shape", &P::input_shape)
        .def_property_readonly("output_shape", &P::output_shape)
        .def_property_readonly("n_steps", &P::n_steps)
        .def("run", &P::run, py::arg("x"), py::arg("out"),
             "out (N,) + output_shape <- the whole pass on x (N,) + input_shape; returns out.");
}

}  // namespace bindings
}  // namespace fastcnn

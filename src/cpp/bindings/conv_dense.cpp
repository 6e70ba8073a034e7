// conv_dense.cpp -- the bindings of im2col / col2im, conv2d and the dense
// layer (forward, backward, backward + SGD step). Intake contract: intake.h.
//
// Size letters: N batch, C channels, H W image, K filters, KH KW kernel, SH SW
// stride, PH PW padding, OH OW output (geometry.h); I O dense features.
#include <cstdint>
#include <string>
#include <vector>

#include "bindings/intake.h"
#include "bindings/module.h"
#include "fastcnn.h"

namespace fastcnn {
namespace bindings {

namespace {

struct DenseDims {
    int64_t N, I, O;
};

DenseDims dense_dims(py::handle x, py::handle w) {
    const std::vector<int64_t> xd = dims_of(x), wd = dims_of(w);
    DenseDims d{xd[0], xd[1], wd[1]};
    require_range(d.N, 1, kMaxDim, "x batch size");
    require_range(d.I, 1, kMaxDim, "x features");
    require_range(d.O, 1, kMaxDim, "w output features");
    require_shape(w, "w", {d.I, d.O}, "(I, O) matching x's features");
    checked_mul(d.N, d.O, "N*O");
    return d;
}

// What every dense backward op takes besides x and w: dout (N, O) and the
// optional dx (N, I) (None: not computed).
struct DenseGrad {
    const float* dout;
    float* dx;
};

DenseGrad dense_grad_intake(py::handle dout, py::handle dx, const DenseDims& d) {
    DenseGrad gr{};
    gr.dout = in_f32(dout, "dout", 2);
    require_shape(dout, "dout", {d.N, d.O}, "(N, O)");
    gr.dx = out_f32_opt(dx, "dx", 2);
    if (gr.dx) require_shape(dx, "dx", {d.N, d.I}, "x's shape");
    return gr;
}

// name(out, in, kh, kw, sh, sw, ph, pw) for im2col (out = cols, in = x) and
// col2im (out = dx, in = cols): one side is the image (N, C, H, W) -- the
// input, or the output when image_out -- the other its columns
// (C*KH*KW, N*OH*OW). The image is checked first, then the columns.
using ColsKernel = void (*)(float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t,
                            int64_t, int64_t, int64_t, int64_t, int64_t);

void def_cols(py::module_& m, const char* name, ColsKernel kernel, const char* out_name,
              const char* in_name, bool image_out, const char* doc) {
    m.def(name, [=](py::handle out_h, py::handle in_h, int64_t kh, int64_t kw, int64_t sh,
                    int64_t sw, int64_t ph, int64_t pw) {
        float* out = nullptr;
        const float* in = nullptr;
        const py::handle image_h = image_out ? out_h : in_h, cols_h = image_out ? in_h : out_h;
        const char* image_name = image_out ? out_name : in_name;
        if (image_out) {
            out = out_f32(out_h, out_name, 4);
        } else {
            in = in_f32(in_h, in_name, 4);
        }
        const ConvGeom g = conv_geom(dims_of(image_h), image_name, kh, kw, sh, sw, ph, pw);
        if (image_out) {
            in = in_f32(in_h, in_name, 2);
        } else {
            out = out_f32(out_h, out_name, 2);
        }
        require_shape(cols_h, "cols", {g.ckk, g.nohw}, "(C*KH*KW, N*OH*OW)");
        require_apart(out_h, out_name, in_h, in_name);
        py::gil_scoped_release nogil;
        kernel(out, in, g.N, g.C, g.H, g.W, g.KH, g.KW, g.SH, g.SW, g.PH, g.PW);
    }, py::arg(out_name), py::arg(in_name), py::arg("kh"), py::arg("kw"), py::arg("sh"),
       py::arg("sw"), py::arg("ph"), py::arg("pw"), doc);
}

// The convolution algorithm setting (fastcnn.h: init_conv_algo ...):
// FASTCNN_CONV read once here, at import (an unknown value fails the import,
// as FASTCNN_ISA's does).
void bind_conv_algo(py::module_& m) {
    const std::string err = fastcnn::init_conv_algo();
    if (!err.empty()) throw py::import_error(err);
    m.attr("WINOGRAD_ERROR_BOUND") = fastcnn::kWinogradErrorBound;
    m.def("_set_conv_algo", [](const std::string& name) {
        const std::string why = fastcnn::set_conv_algo(name.c_str());
        if (!why.empty()) throw py::value_error("set_conv_algo('" + name + "'): " + why);
    }, py::arg("name"), "Use convolution algorithm name (auto, im2col, winograd) from now on.");
    m.def("_conv_algo", &fastcnn::conv_algo, "The convolution algorithm setting in use.");
    m.def("_conv_path", [](int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t kh,
                           int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw) {
        const ConvGeom g = conv_geom({n, c, h, w}, "x", kh, kw, sh, sw, ph, pw);
        require_range(k, 1, kMaxDim, "K");
        return std::string(fastcnn::conv_path(g.N, g.C, g.H, g.W, k, g.KH, g.KW, g.SH, g.SW,
                                              g.PH, g.PW));
    }, py::arg("n"), py::arg("c"), py::arg("h"), py::arg("w"), py::arg("k"), py::arg("kh"),
       py::arg("kw"), py::arg("sh"), py::arg("sw"), py::arg("ph"), py::arg("pw"),
       "'im2col' or 'winograd': how a conv of x (n,c,h,w) with w (k,c,kh,kw) runs now.");
}

}  // namespace

void bind_conv_dense(py::module_& m) {
    bind_conv_algo(m);
    def_cols(m, "im2col", &fastcnn::im2col, "cols", "x", false,
             "cols (C*KH*KW, N*OH*OW) <- im2col(x (N,C,H,W)); cols is overwritten.");
    def_cols(m, "col2im", &fastcnn::col2im, "dx", "cols", true,
             "dx (N,C,H,W) <- col2im(cols (C*KH*KW, N*OH*OW)); dx is overwritten.");

    m.def("conv2d_forward", [](py::handle out, py::handle x, py::handle w, py::handle b,
                               int64_t sh, int64_t sw, int64_t ph, int64_t pw, bool relu) {
        const float* xp = in_f32(x, "x", 4);
        const float* wp = in_f32(w, "w", 4);
        const float* bp = in_f32_opt(b, "b", 1);
        const std::vector<int64_t> wd = dims_of(w);
        const ConvGeom g = conv_geom(dims_of(x), "x", wd[2], wd[3], sh, sw, ph, pw);
        const int64_t K = conv_filters(w, g);
        if (bp) require_shape(b, "b", {K}, "one bias per filter");
        float* op = out_f32(out, "out", 4);
        require_shape(out, "out", {g.N, K, g.OH, g.OW}, "(N, K, OH, OW)");
        require_apart(out, "out", x, "x");
        require_apart(out, "out", w, "w");
        require_apart(out, "out", b, "b");
        py::gil_scoped_release nogil;
        fastcnn::conv2d_forward(op, xp, wp, bp, g.N, g.C, g.H, g.W, K, g.KH, g.KW, g.SH, g.SW,
                                g.PH, g.PW, relu);
    }, py::arg("out"), py::arg("x"), py::arg("w"), py::arg("b"), py::arg("sh"), py::arg("sw"),
       py::arg("ph"), py::arg("pw"), py::arg("relu") = false,
       "out (N,K,OH,OW) <- conv(x (N,C,H,W), w (K,C,KH,KW)) + b (K or None), then relu if asked.");

    m.def("conv2d_backward", [](py::handle dx, py::handle dw, py::handle db, py::handle dout,
                                py::handle x, py::handle w, int64_t sh, int64_t sw, int64_t ph,
                                int64_t pw) {
        const float* xp = in_f32(x, "x", 4);
        const float* wp = in_f32(w, "w", 4);
        const std::vector<int64_t> wd = dims_of(w);
        const ConvGeom g = conv_geom(dims_of(x), "x", wd[2], wd[3], sh, sw, ph, pw);
        const int64_t K = conv_filters(w, g);
        const float* gp = in_f32(dout, "dout", 4);
        require_shape(dout, "dout", {g.N, K, g.OH, g.OW}, "(N, K, OH, OW)");
        float* dxp = out_f32_opt(dx, "dx", 4);
        if (dxp) require_shape(dx, "dx", dims_of(x), "x's shape");
        float* dwp = out_f32(dw, "dw", 4);
        require_shape(dw, "dw", wd, "w's shape");
        float* dbp = out_f32_opt(db, "db", 1);
        if (dbp) require_shape(db, "db", {K}, "one per filter");
        require_grads_disjoint(dx, dw, db, dout, x, w);
        py::gil_scoped_release nogil;
        fastcnn::conv2d_backward(dxp, dwp, dbp, gp, xp, wp, g.N, g.C, g.H, g.W, K, g.KH, g.KW,
                                 g.SH, g.SW, g.PH, g.PW);
    }, py::arg("dx"), py::arg("dw"), py::arg("db"), py::arg("dout"), py::arg("x"), py::arg("w"),
       py::arg("sh"), py::arg("sw"), py::arg("ph"), py::arg("pw"),
       "dx (or None), dw, db (or None) <- gradients of conv2d from dout (N,K,OH,OW); overwritten.");

    m.def("dense_forward", [](py::handle out, py::handle x, py::handle w, py::handle b) {
        const float* xp = in_f32(x, "x", 2);
        const float* wp = in_f32(w, "w", 2);
        const float* bp = in_f32_opt(b, "b", 1);
        const DenseDims d = dense_dims(x, w);
        if (bp) require_shape(b, "b", {d.O}, "one bias per output feature");
        float* op = out_f32(out, "out", 2);
        require_shape(out, "out", {d.N, d.O}, "(N, O)");
        require_apart(out, "out", x, "x");
        require_apart(out, "out", w, "w");
        require_apart(out, "out", b, "b");
        py::gil_scoped_release nogil;
        fastcnn::dense_forward(op, xp, wp, bp, d.N, d.I, d.O);
    }, py::arg("out"), py::arg("x"), py::arg("w"), py::arg("b"),
       "out (N,O) <- x (N,I) @ w (I,O) + b (O or None).");

    m.def("dense_backward", [](py::handle dx, py::handle dw, py::handle db, py::handle dout,
                               py::handle x, py::handle w) {
        const float* xp = in_f32(x, "x", 2);
        const float* wp = in_f32(w, "w", 2);
        const DenseDims d = dense_dims(x, w);
        const DenseGrad gr = dense_grad_intake(dout, dx, d);
        float* dwp = out_f32(dw, "dw", 2);
        require_shape(dw, "dw", {d.I, d.O}, "w's shape");
        float* dbp = out_f32_opt(db, "db", 1);
        if (dbp) require_shape(db, "db", {d.O}, "one per output feature");
        require_grads_disjoint(dx, dw, db, dout, x, w);
        py::gil_scoped_release nogil;
        fastcnn::dense_backward(gr.dx, dwp, dbp, gr.dout, xp, wp, d.N, d.I, d.O);
    }, py::arg("dx"), py::arg("dw"), py::arg("db"), py::arg("dout"), py::arg("x"), py::arg("w"),
       "dx (or None), dw, db (or None) <- gradients of dense from dout (N,O); overwritten.");

    m.def("dense_backward_sgd", [](py::handle dx, py::handle w, py::handle b, py::handle dout,
                                   py::handle x, float lr, float weight_decay) {
        const float* xp = in_f32(x, "x", 2);
        float* wp = out_f32(w, "w", 2);
        const DenseDims d = dense_dims(x, w);
        const DenseGrad gr = dense_grad_intake(dout, dx, d);
        float* bp = out_f32_opt(b, "b", 1);
        if (bp) require_shape(b, "b", {d.O}, "one per output feature");
        const py::handle outs[] = {dx, w, b};
        const char* out_names[] = {"dx", "w", "b"};
        for (int o = 0; o < 3; ++o) {
            require_apart(outs[o], out_names[o], dout, "dout");
            require_apart(outs[o], out_names[o], x, "x");
            for (int p = o + 1; p < 3; ++p) {
                require_apart(outs[o], out_names[o], outs[p], out_names[p]);
            }
        }
        py::gil_scoped_release nogil;
        fastcnn::dense_backward_sgd(gr.dx, wp, bp, gr.dout, xp, d.N, d.I, d.O, lr, weight_decay);
    }, py::arg("dx"), py::arg("w"), py::arg("b"), py::arg("dout"), py::arg("x"),
       py::arg("lr"), py::arg("weight_decay"),
       "dx (or None) <- dout . w^T; then w, b (or None) updated in place by one SGD step.");
}

}  // namespace bindings
}  // namespace fastcnn

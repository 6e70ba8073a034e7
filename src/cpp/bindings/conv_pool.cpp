// conv_pool.cpp -- the bindings of the fused conv + max-pool
// (conv2d_maxpool_forward / _backward), with its intake: the conv geometry,
// the pooling window over the conv output, and the uint8 choice array.
// Intake contract: intake.h.
//
// Size letters: N batch, C channels, H W image, K filters, KH KW kernel, SH SW
// stride, PH PW padding, OH OW conv output; PKH PKW pooling window, PSH PSW
// its stride, POH POW pooled output (geometry.h).
#include <cstdint>
#include <string>
#include <vector>

#include "bindings/intake.h"
#include "bindings/module.h"
#include "fastcnn.h"

namespace fastcnn {
namespace bindings {

namespace {


// A uint8 C-contiguous array of exactly the shape want (the choices of a fused
// conv + max-pool); checked writeable only when out is true (an input is only
// read, so a read-only one is fine).
uint8_t* u8_array(py::handle h, const char* name, const std::vector<int64_t>& want, bool out) {
    py::array a = as_array(h, name);
    if (!a.dtype().equal(py::dtype::of<uint8_t>())) {
        throw py::type_error(std::string(name) + " must have dtype uint8, got " +
                             std::string(py::str(a.dtype())));
    }
    if (!(a.flags() & py::array::c_style)) {
        throw py::type_error(std::string(name) + " must be C-contiguous");
    }
    require_shape(h, name, want, "the pooled output shape");
    if (!out) {  // mutable_data() would refuse a read-only array
        return const_cast<uint8_t*>(static_cast<const uint8_t*>(a.data()));
    }
    if (!a.writeable()) throw py::value_error(std::string(name) + " must be writeable");
    return static_cast<uint8_t*>(a.mutable_data());
}

// The conv geometry of x and w, the pooling window over the conv output, and
// the two inputs' data: pooled = (N, K, POH, POW) is the pooled output shape.
struct ConvPoolCall {
    ConvGeom g;
    int64_t K;
    PoolCall p;  // N, C = K, H = OH, W = OW of the conv output
    std::vector<int64_t> pooled;
    const float* x;
    const float* w;
};

ConvPoolCall conv_pool_intake(py::handle x, py::handle w, int64_t sh, int64_t sw, int64_t ph,
                              int64_t pw, int64_t pkh, int64_t pkw, int64_t psh, int64_t psw) {
    ConvPoolCall c{};
    c.x = in_f32(x, "x", 4);
    c.w = in_f32(w, "w", 4);
    const std::vector<int64_t> wd = dims_of(w);
    c.g = conv_geom(dims_of(x), "x", wd[2], wd[3], sh, sw, ph, pw);
    c.K = conv_filters(w, c.g);
    c.p = pool_geometry({c.g.N, c.K, c.g.OH, c.g.OW}, "the conv output", pkh, pkw, psh, psw);
    if (pkh * pkw > fastcnn::kMaxFusedPoolWindow) {  // one byte per choice (geometry.h)
        throw py::value_error("pooling window " + dims_str({pkh, pkw}) + " has " +
                              std::to_string(pkh * pkw) +
                              " elements; the fused conv + max-pool handles at most " +
                              std::to_string(fastcnn::kMaxFusedPoolWindow));
    }
    c.pooled = {c.g.N, c.K, c.p.OH, c.p.OW};
    return c;
}

}  // namespace

void bind_conv_pool(py::module_& m) {
    m.def("conv2d_maxpool_forward", [](py::handle out, py::handle choice, py::handle x,
                                       py::handle w, py::handle b, int64_t sh, int64_t sw,
                                       int64_t ph, int64_t pw, int64_t pkh, int64_t pkw,
                                       int64_t psh, int64_t psw, bool relu) {
        const ConvPoolCall c = conv_pool_intake(x, w, sh, sw, ph, pw, pkh, pkw, psh, psw);
        const ConvGeom& g = c.g;
        const float* bp = in_f32_opt(b, "b", 1);
        if (bp) require_shape(b, "b", {c.K}, "one bias per filter");
        float* op = out_f32(out, "out", 4);
        require_shape(out, "out", c.pooled, "(N, K, POH, POW): the pooled conv output");
        uint8_t* cp = u8_array(choice, "choice", c.pooled, true);
        for (auto [h, name] : {std::pair<py::handle, const char*>{x, "x"}, {w, "w"}, {b, "b"}}) {
            require_apart(out, "out", h, name);
            require_apart(choice, "choice", h, name);
        }
        require_apart(out, "out", choice, "choice");
        py::gil_scoped_release nogil;
        fastcnn::conv2d_maxpool_forward(op, cp, c.x, c.w, bp, g.N, g.C, g.H, g.W, c.K, g.KH, g.KW,
                                        g.SH, g.SW, g.PH, g.PW, c.p.KH, c.p.KW, c.p.SH, c.p.SW,
                                        relu);
    }, py::arg("out"), py::arg("choice"), py::arg("x"), py::arg("w"), py::arg("b"),
       py::arg("sh"), py::arg("sw"), py::arg("ph"), py::arg("pw"), py::arg("pkh"),
       py::arg("pkw"), py::arg("psh"), py::arg("psw"), py::arg("relu"),
       "out (N,K,POH,POW), choice (uint8, same shape) <- max-pool (pkh x pkw, stride psh x psw) "
       "of conv(x, w) + b, relu'd if asked; the conv output itself is not stored.");

    m.def("conv2d_maxpool_backward", [](py::handle dx, py::handle dw, py::handle db,
                                        py::handle dout, py::handle choice, py::handle x,
                                        py::handle w, int64_t sh, int64_t sw, int64_t ph,
                                        int64_t pw, int64_t pkh, int64_t pkw, int64_t psh,
                                        int64_t psw) {
        const ConvPoolCall c = conv_pool_intake(x, w, sh, sw, ph, pw, pkh, pkw, psh, psw);
        const ConvGeom& g = c.g;
        const float* gp = in_f32(dout, "dout", 4);
        require_shape(dout, "dout", c.pooled, "(N, K, POH, POW): the pooled conv output");
        const uint8_t* cp = u8_array(choice, "choice", c.pooled, false);
        // A choice outside the window would send a gradient outside the image.
        const int64_t window = pkh * pkw;
        const int64_t n = count(choice);
        // One branch-free pass over bytes (vectorised: the intake has checked
        // window <= kMaxFusedPoolWindow, so it fits a byte);
        // the second only to name the culprit.
        const uint8_t window8 = static_cast<uint8_t>(window);
        uint8_t any_bad = 0;
        for (int64_t i = 0; i < n; ++i) {
            any_bad |= static_cast<uint8_t>((cp[i] >= window8) & (cp[i] != fastcnn::kNoGradient));
        }
        for (int64_t i = 0; any_bad && i < n; ++i) {
            if (cp[i] >= window && cp[i] != fastcnn::kNoGradient) {
                throw py::value_error(
                    "choice holds " + std::to_string(cp[i]) + " at flat index " +
                    std::to_string(i) + ", but a " + std::to_string(pkh) + "x" +
                    std::to_string(pkw) + " window has offsets 0.." +
                    std::to_string(window - 1) + " (or " +
                    std::to_string(fastcnn::kNoGradient) +
                    ": no gradient); pass the choice that conv2d_maxpool returned");
            }
        }
        float* dxp = out_f32_opt(dx, "dx", 4);
        if (dxp) require_shape(dx, "dx", dims_of(x), "x's shape");
        float* dwp = out_f32(dw, "dw", 4);
        require_shape(dw, "dw", dims_of(w), "w's shape");
        float* dbp = out_f32_opt(db, "db", 1);
        if (dbp) require_shape(db, "db", {c.K}, "one per filter");
        require_grads_disjoint(dx, dw, db, dout, x, w);
        for (auto [h, name] : {std::pair<py::handle, const char*>{dx, "dx"}, {dw, "dw"},
                               {db, "db"}}) {
            require_apart(h, name, choice, "choice");
        }
        py::gil_scoped_release nogil;
        fastcnn::conv2d_maxpool_backward(dxp, dwp, dbp, gp, cp, c.x, c.w, g.N, g.C, g.H, g.W, c.K,
                                         g.KH, g.KW, g.SH, g.SW, g.PH, g.PW, c.p.KH, c.p.KW,
                                         c.p.SH, c.p.SW);
    }, py::arg("dx"), py::arg("dw"), py::arg("db"), py::arg("dout"), py::arg("choice"),
       py::arg("x"), py::arg("w"), py::arg("sh"), py::arg("sw"), py::arg("ph"), py::arg("pw"),
       py::arg("pkh"), py::arg("pkw"), py::arg("psh"), py::arg("psw"),
       "dx (or None), dw, db (or None) <- gradients of conv2d_maxpool from dout of the pooled "
       "output and choice; overwritten.");
}

}  // namespace bindings
}  // namespace fastcnn

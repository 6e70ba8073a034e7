// pool.cpp -- the pooling bindings: max, average and L2 pooling (forward,
// backward) and global average pooling. Intake contract: intake.h.
//
// Size letters: N batch, C channels, H W image, KH KW window, SH SW stride,
// OH OW output (pool_out_size, geometry.h).
//
// Windowed pooling: x (N, C, H, W) -> out (N, C, OH, OW), window (kh, kw),
// stride (sh, sw), no padding. The geometry is re-checked here and the shapes
// of out / dout / dx must follow from it exactly. Outputs must not overlap
// inputs.
#include <cstdint>
#include <string>
#include <vector>

#include "bindings/intake.h"
#include "bindings/module.h"
#include "fastcnn.h"

namespace fastcnn {
namespace bindings {

namespace {


// Intake of out (N, C, OH, OW) and x (N, C, H, W) for a forward kernel.
PoolCall pool_forward_intake(float** out, const float** x, py::handle out_h, py::handle x_h,
                             int64_t kh, int64_t kw, int64_t sh, int64_t sw) {
    *x = in_f32(x_h, "x", 4);
    *out = out_f32(out_h, "out", 4);
    const PoolCall g = pool_geometry(dims_of(x_h), "x", kh, kw, sh, sw);
    require_shape(out_h, "out", {g.N, g.C, g.OH, g.OW}, "the pooled shape of x");
    require_apart(out_h, "out", x_h, "x");
    return g;
}

// Intake of dx (N, C, H, W), dout (N, C, OH, OW) and, when x is not null,
// x (N, C, H, W) for a backward kernel.
PoolCall pool_backward_intake(float** dx, const float** dout, const float** x,
                              py::handle dx_h, py::handle dout_h, py::handle x_h,
                              int64_t kh, int64_t kw, int64_t sh, int64_t sw) {
    *dx = out_f32(dx_h, "dx", 4);
    *dout = in_f32(dout_h, "dout", 4);
    const PoolCall g = pool_geometry(dims_of(dx_h), "dx", kh, kw, sh, sw);
    require_shape(dout_h, "dout", {g.N, g.C, g.OH, g.OW}, "the pooled shape of dx");
    require_apart(dx_h, "dx", dout_h, "dout");
    if (x) {
        *x = in_f32(x_h, "x", 4);
        require_shape(x_h, "x", dims_of(dx_h), "the shape of dx");
        require_apart(dx_h, "dx", x_h, "x");
    }
    return g;
}

// Intake for global average pooling: image (N, C, H, W) and pooled (N, C),
// already checked as float32 4-D / 2-D arrays. Returns the image's dims.
std::vector<int64_t> global_pool_intake(py::handle image_h, py::handle pooled_h,
                                        const char* pooled_name) {
    const std::vector<int64_t> d = dims_of(image_h);
    require_range(d[2], 1, kMaxDim, "H");
    require_range(d[3], 1, kMaxDim, "W");
    require_shape(pooled_h, pooled_name, {d[0], d[1]}, "(N, C) of the image");
    return d;
}

using PoolForward = void (*)(float*, const float*, int64_t, int64_t, int64_t, int64_t,
                             int64_t, int64_t, int64_t, int64_t);
// Backward kernels that read x (max, L2) and the one that does not (average).
using PoolBackwardX = void (*)(float*, const float*, const float*, int64_t, int64_t, int64_t,
                               int64_t, int64_t, int64_t, int64_t, int64_t);

// name(out, x, kh, kw, sh, sw): out (N, C, OH, OW) <- pooled x (N, C, H, W).
void def_pool_forward(py::module_& m, const char* name, PoolForward kernel) {
    m.def(name, [kernel](py::handle out_h, py::handle x_h, int64_t kh, int64_t kw,
                         int64_t sh, int64_t sw) {
        float* out;
        const float* x;
        const PoolCall g = pool_forward_intake(&out, &x, out_h, x_h, kh, kw, sh, sw);
        py::gil_scoped_release release;
        kernel(out, x, g.N, g.C, g.H, g.W, g.KH, g.KW, g.SH, g.SW);
    }, py::arg("out"), py::arg("x"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"));
}

// name(dx, dout, x, kh, kw, sh, sw): dx (N, C, H, W) <- gradient from dout (N, C, OH, OW).
void def_pool_backward_x(py::module_& m, const char* name, PoolBackwardX kernel) {
    m.def(name, [kernel](py::handle dx_h, py::handle dout_h, py::handle x_h,
                         int64_t kh, int64_t kw, int64_t sh, int64_t sw) {
        float* dx;
        const float *dout, *x = nullptr;
        const PoolCall g = pool_backward_intake(&dx, &dout, &x, dx_h, dout_h, x_h, kh, kw, sh, sw);
        py::gil_scoped_release release;
        kernel(dx, dout, x, g.N, g.C, g.H, g.W, g.KH, g.KW, g.SH, g.SW);
    }, py::arg("dx"), py::arg("dout"), py::arg("x"), py::arg("kh"), py::arg("kw"),
       py::arg("sh"), py::arg("sw"));
}

// name(out, in) of global average pooling: forward (out (N, C), x (N, C, H, W))
// and backward (dx (N, C, H, W), dout (N, C)); image_out: the image is the
// output. The image is checked first, then the pooled (N, C) array.
using GlobalPoolKernel = void (*)(float*, const float*, int64_t, int64_t, int64_t);

void def_global_pool(py::module_& m, const char* name, GlobalPoolKernel kernel,
                     const char* out_name, const char* in_name, bool image_out) {
    m.def(name, [=](py::handle out_h, py::handle in_h) {
        float* out = nullptr;
        const float* in = nullptr;
        if (image_out) {
            out = out_f32(out_h, out_name, 4);
            in = in_f32(in_h, in_name, 2);
        } else {
            in = in_f32(in_h, in_name, 4);
            out = out_f32(out_h, out_name, 2);
        }
        const std::vector<int64_t> d = image_out ? global_pool_intake(out_h, in_h, in_name)
                                                 : global_pool_intake(in_h, out_h, out_name);
        require_apart(out_h, out_name, in_h, in_name);
        const int64_t hw = d[2] * d[3];  // the size of an existing array
        py::gil_scoped_release release;
        kernel(out, in, d[0], d[1], hw);
    }, py::arg(out_name), py::arg(in_name));
}

}  // namespace

void bind_pool(py::module_& m) {
    // Windowed pooling: out (N, C, OH, OW) <- x (N, C, H, W), and back. The
    // average-pool backward needs only the shapes, not x.
    m.def("avgpool2d_backward", [](py::handle dx_h, py::handle dout_h, int64_t kh, int64_t kw,
                                   int64_t sh, int64_t sw) {
        float* dx;
        const float* dout;
        const PoolCall g = pool_backward_intake(&dx, &dout, nullptr, dx_h, dout_h, py::none(),
                                                kh, kw, sh, sw);
        py::gil_scoped_release release;
        fastcnn::avgpool2d_backward(dx, dout, g.N, g.C, g.H, g.W, g.KH, g.KW, g.SH, g.SW);
    }, py::arg("dx"), py::arg("dout"), py::arg("kh"), py::arg("kw"), py::arg("sh"),
       py::arg("sw"));
    def_pool_forward(m, "maxpool2d_forward", &fastcnn::maxpool2d_forward);
    def_pool_forward(m, "avgpool2d_forward", &fastcnn::avgpool2d_forward);
    def_pool_forward(m, "l2pool2d_forward", &fastcnn::l2pool2d_forward);
    def_pool_backward_x(m, "maxpool2d_backward", &fastcnn::maxpool2d_backward);
    def_pool_backward_x(m, "l2pool2d_backward", &fastcnn::l2pool2d_backward);

    // Global average: x (N, C, H, W) <-> out (N, C).
    def_global_pool(m, "global_avgpool2d_forward", &fastcnn::global_avgpool2d_forward, "out",
                    "x", false);
    def_global_pool(m, "global_avgpool2d_backward", &fastcnn::global_avgpool2d_backward, "dx",
                    "dout", true);
}

}  // namespace bindings
}  // namespace fastcnn

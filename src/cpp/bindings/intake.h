// intake.h -- the array intake every op family's bindings share: fastcnn._core
// takes its arguments through these checks before any native work.
//
// Contract of every binding (src/cpp/bindings/*.cpp, the only files that
// include pybind11):
//  * arguments arrive as ndarrays that fastcnn/ops.py already converted
//    (float32, C-contiguous); the intake re-checks dtype, layout, ndim and
//    every shape relation strictly and raises TypeError (dtype, layout, not an
//    array) or ValueError (shape, size, value) naming the argument and the
//    shapes, so that even a direct call into _core can never crash or write
//    out of bounds;
//  * arrays the kernel writes into are never converted: a wrong one is an error;
//  * outputs are allocated by the caller (ops.py) and passed in;
//  * the GIL is released around the kernel call only.
//
// Size letters: N batch, C channels, H W image, K filters, KH KW kernel or
// window, SH SW stride, PH PW padding, OH OW output (geometry.h).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fastcnn.h"

namespace fastcnn {
namespace bindings {

namespace py = pybind11;

// "(2, 3)", "(5,)": a shape as NumPy prints it.
std::string shape_str(const py::array& a);
std::string dims_str(const std::vector<int64_t>& dims);

// The handle as an ndarray; TypeError if it is not one (never converted: a
// converted copy would swallow the kernel's writes).
py::array as_array(py::handle h, const char* name);

// TypeError unless a is float32 and C-contiguous; ValueError unless it has
// ndim dimensions (ndim < 0: any).
void require_f32(const py::array& a, const char* name, int ndim);

// Read-only float32 input; the _opt form gives nullptr for None.
const float* in_f32(py::handle h, const char* name, int ndim);
const float* in_f32_opt(py::handle h, const char* name, int ndim);

// Float32 output or in-place argument: writeable too (ValueError if not).
float* out_f32(py::handle h, const char* name, int ndim);
float* out_f32_opt(py::handle h, const char* name, int ndim);

// The shape of an (already checked) array, and its number of values.
std::vector<int64_t> dims_of(py::handle h);
int64_t count(py::handle h);

// ValueError unless the array h (named name) has exactly the shape want; why
// (if given) says where want comes from.
void require_shape(py::handle h, const char* name, const std::vector<int64_t>& want,
                   const char* why = nullptr);

// An input / a writeable output or in-place state of the same shape as ref
// (named ref_name), float32 C-contiguous.
const float* in_like(py::handle h, const char* name, py::handle ref, const char* ref_name);
float* out_like(py::handle h, const char* name, py::handle ref, const char* ref_name);

// ValueError if the memory of a and b overlaps (a kernel writing into what it
// still reads would give garbage). With allow_same, a and b may be exactly the
// same buffer (same start, same size): elementwise kernels work in place.
// None (an absent optional array) overlaps nothing.
void require_apart(py::handle a_h, const char* a_name, py::handle b_h, const char* b_name,
                   bool allow_same = false);

// The three gradient outputs of a backward op (dx and db may be None) share
// no memory with each other nor with the inputs dout, x, w.
void require_grads_disjoint(py::handle dx, py::handle dw, py::handle db, py::handle dout,
                            py::handle x, py::handle w);

// a * b; ValueError naming `what` if it overflows int64 (sizes are never
// negative here).
int64_t checked_mul(int64_t a, int64_t b, const char* what);

// ValueError unless lo <= v <= hi. Sizes and window parameters that reach
// index arithmetic are bounded by kMaxDim (geometry.h).
void require_range(int64_t v, int64_t lo, int64_t hi, const char* name);

// Geometry of a conv window sweep over x (N, C, H, W): every size checked, so
// that the kernels' int64 index arithmetic cannot overflow (im2col, conv and
// the fused conv + max-pool).
struct ConvGeom {
    int64_t N, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW;
    int64_t ckk;    // C*KH*KW: rows of cols
    int64_t nohw;   // N*OH*OW: columns of cols
};
ConvGeom conv_geom(const std::vector<int64_t>& x_dims, const char* x_name, int64_t KH,
                   int64_t KW, int64_t SH, int64_t SW, int64_t PH, int64_t PW);

// Conv weights w (K, C, KH, KW) against x's C; returns K. The scratch of one
// image ((C*KH*KW + K) * OH*OW floats) and the output size must not overflow.
int64_t conv_filters(py::handle w, const ConvGeom& g);

// Geometry of a pooling window sweep (no padding) over the images of shape
// dims (N, C, H, W) of `name` (the pooling ops and the fused conv + max-pool).
struct PoolCall {
    int64_t N, C, H, W, KH, KW, SH, SW, OH, OW;
};
PoolCall pool_geometry(const std::vector<int64_t>& dims, const char* name, int64_t kh,
                       int64_t kw, int64_t sh, int64_t sw);

}  // namespace bindings
}  // namespace fastcnn

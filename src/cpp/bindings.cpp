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
// It is longer than the ~500 lines the style guide asks of a file because it is
// the one file that knows Python (STYLE 6 wins over 15); each op family has its
// own section below, and repeated intake shapes go through shared helpers.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "fastcnn.h"
#include "threadpool.h"

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
    if (!a.dtype().equal(py::dtype::of<float>())) {
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

// Number of values in an (already checked) array.
int64_t count(py::handle h) {
    return static_cast<int64_t>(py::reinterpret_borrow<py::array>(h).size());
}

// An input of the same shape as ref (named ref_name), float32 C-contiguous.
const float* in_like(py::handle h, const char* name, py::handle ref, const char* ref_name) {
    const float* p = in_f32(h, name, -1);
    require_shape(h, name, dims_of(ref), (std::string("the shape of ") + ref_name).c_str());
    return p;
}

// A writeable output or in-place state of the same shape as ref.
float* out_like(py::handle h, const char* name, py::handle ref, const char* ref_name) {
    float* p = out_f32(h, name, -1);
    require_shape(h, name, dims_of(ref), (std::string("the shape of ") + ref_name).c_str());
    return p;
}

// ValueError if the memory of a and b overlaps (a kernel writing into what it
// still reads would give garbage). With allow_same, a and b may be exactly the
// same buffer (same start, same size): elementwise kernels work in place.
// None (an absent optional array) overlaps nothing.
void require_apart(py::handle a_h, const char* a_name, py::handle b_h, const char* b_name,
                   bool allow_same = false) {
    if (a_h.is_none() || b_h.is_none()) return;
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

// a * b with an overflow check (sizes are never negative here).
int64_t checked_mul(int64_t a, int64_t b, const char* what) {
    int64_t r;
    if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) {
        throw py::value_error(std::string("size overflow computing ") + what);
    }
    return r;
}

// Parameters that reach index arithmetic are bounded by kMaxDim (geometry.h)
// so that no intermediate (e.g. H + 2*PH) can overflow int64.
using fastcnn::kMaxDim;

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

// The three gradient outputs of a backward op (dx and db may be None) share
// no memory with each other nor with the inputs dout, x, w.
void require_grads_disjoint(py::handle dx, py::handle dw, py::handle db, py::handle dout,
                            py::handle x, py::handle w) {
    const py::handle outs[] = {dx, dw, db};
    const char* out_names[] = {"dx", "dw", "db"};
    const py::handle ins[] = {dout, x, w};
    const char* in_names[] = {"dout", "x", "w"};
    for (int o = 0; o < 3; ++o) {
        for (int i = 0; i < 3; ++i) require_apart(outs[o], out_names[o], ins[i], in_names[i]);
        for (int p = o + 1; p < 3; ++p) {
            require_apart(outs[o], out_names[o], outs[p], out_names[p]);
        }
    }
}

// Geometry of a window sweep over x (N, C, H, W): every size checked, so that
// the kernels' int64 index arithmetic cannot overflow.
struct ConvGeom {
    int64_t N, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW;
    int64_t ckk;    // C*KH*KW: rows of cols
    int64_t nohw;   // N*OH*OW: columns of cols
};

ConvGeom conv_geom(const std::vector<int64_t>& x_dims, const char* x_name, int64_t KH,
                   int64_t KW, int64_t SH, int64_t SW, int64_t PH, int64_t PW) {
    ConvGeom g{};
    const std::string x = x_name;
    g.N = x_dims[0]; g.C = x_dims[1]; g.H = x_dims[2]; g.W = x_dims[3];
    require_range(g.N, 1, kMaxDim, (x + " batch size").c_str());
    require_range(g.C, 1, kMaxDim, (x + " channels").c_str());
    require_range(g.H, 1, kMaxDim, (x + " height").c_str());
    require_range(g.W, 1, kMaxDim, (x + " width").c_str());
    require_range(KH, 1, kMaxDim, "kernel height");
    require_range(KW, 1, kMaxDim, "kernel width");
    require_range(SH, 1, kMaxDim, "stride height");
    require_range(SW, 1, kMaxDim, "stride width");
    require_range(PH, 0, kMaxDim, "padding height");
    require_range(PW, 0, kMaxDim, "padding width");
    g.KH = KH; g.KW = KW; g.SH = SH; g.SW = SW; g.PH = PH; g.PW = PW;
    if (KH > g.H + 2 * PH || KW > g.W + 2 * PW) {
        throw py::value_error("kernel " + dims_str({KH, KW}) + " is larger than the padded input " +
                              dims_str({g.H + 2 * PH, g.W + 2 * PW}) + " of " + x + " with shape " +
                              dims_str(x_dims));
    }
    g.OH = fastcnn::conv_out_size(g.H, KH, SH, PH);
    g.OW = fastcnn::conv_out_size(g.W, KW, SW, PW);
    g.ckk = checked_mul(checked_mul(g.C, KH, "C*KH"), KW, "C*KH*KW");
    g.nohw = checked_mul(checked_mul(g.N, g.OH, "N*OH"), g.OW, "N*OH*OW");
    checked_mul(g.ckk, g.nohw, "C*KH*KW*N*OH*OW");
    checked_mul(checked_mul(g.N, g.C, "N*C"), checked_mul(g.H, g.W, "H*W"), "N*C*H*W");
    return g;
}

// Conv weights w (K, C, KH, KW) against x's C; returns K. The scratch of one
// image ((C*KH*KW + K) * OH*OW floats) and the output size must not overflow.
int64_t conv_filters(py::handle w, const ConvGeom& g) {
    const std::vector<int64_t> wd = dims_of(w);
    require_range(wd[0], 1, kMaxDim, "w filters");
    const int64_t K = wd[0];
    require_shape(w, "w", {K, g.C, g.KH, g.KW}, "(K, C, KH, KW) matching x's channels");
    const int64_t ohw = checked_mul(g.OH, g.OW, "OH*OW");
    checked_mul(g.ckk + K, ohw, "(C*KH*KW + K)*OH*OW");
    checked_mul(K, g.nohw, "K*N*OH*OW");
    return K;
}

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

void bind_conv_dense(py::module_& m) {
    m.def("im2col", [](py::handle cols, py::handle x, int64_t kh, int64_t kw, int64_t sh,
                       int64_t sw, int64_t ph, int64_t pw) {
        const float* xp = in_f32(x, "x", 4);
        const ConvGeom g = conv_geom(dims_of(x), "x", kh, kw, sh, sw, ph, pw);
        float* cp = out_f32(cols, "cols", 2);
        require_shape(cols, "cols", {g.ckk, g.nohw}, "(C*KH*KW, N*OH*OW)");
        require_apart(cols, "cols", x, "x");
        py::gil_scoped_release nogil;
        fastcnn::im2col(cp, xp, g.N, g.C, g.H, g.W, g.KH, g.KW, g.SH, g.SW, g.PH, g.PW);
    }, py::arg("cols"), py::arg("x"), py::arg("kh"), py::arg("kw"), py::arg("sh"),
       py::arg("sw"), py::arg("ph"), py::arg("pw"),
       "cols (C*KH*KW, N*OH*OW) <- im2col(x (N,C,H,W)); cols is overwritten.");

    m.def("col2im", [](py::handle dx, py::handle cols, int64_t kh, int64_t kw, int64_t sh,
                       int64_t sw, int64_t ph, int64_t pw) {
        float* dp = out_f32(dx, "dx", 4);
        const ConvGeom g = conv_geom(dims_of(dx), "dx", kh, kw, sh, sw, ph, pw);
        const float* cp = in_f32(cols, "cols", 2);
        require_shape(cols, "cols", {g.ckk, g.nohw}, "(C*KH*KW, N*OH*OW)");
        require_apart(dx, "dx", cols, "cols");
        py::gil_scoped_release nogil;
        fastcnn::col2im(dp, cp, g.N, g.C, g.H, g.W, g.KH, g.KW, g.SH, g.SW, g.PH, g.PW);
    }, py::arg("dx"), py::arg("cols"), py::arg("kh"), py::arg("kw"), py::arg("sh"),
       py::arg("sw"), py::arg("ph"), py::arg("pw"),
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
        const float* gp = in_f32(dout, "dout", 2);
        require_shape(dout, "dout", {d.N, d.O}, "(N, O)");
        float* dxp = out_f32_opt(dx, "dx", 2);
        if (dxp) require_shape(dx, "dx", {d.N, d.I}, "x's shape");
        float* dwp = out_f32(dw, "dw", 2);
        require_shape(dw, "dw", {d.I, d.O}, "w's shape");
        float* dbp = out_f32_opt(db, "db", 1);
        if (dbp) require_shape(db, "db", {d.O}, "one per output feature");
        require_grads_disjoint(dx, dw, db, dout, x, w);
        py::gil_scoped_release nogil;
        fastcnn::dense_backward(dxp, dwp, dbp, gp, xp, wp, d.N, d.I, d.O);
    }, py::arg("dx"), py::arg("dw"), py::arg("db"), py::arg("dout"), py::arg("x"), py::arg("w"),
       "dx (or None), dw, db (or None) <- gradients of dense from dout (N,O); overwritten.");

    m.def("dense_backward_sgd", [](py::handle dx, py::handle w, py::handle b, py::handle dout,
                                   py::handle x, float lr, float weight_decay) {
        const float* xp = in_f32(x, "x", 2);
        float* wp = out_f32(w, "w", 2);
        const DenseDims d = dense_dims(x, w);
        const float* gp = in_f32(dout, "dout", 2);
        require_shape(dout, "dout", {d.N, d.O}, "(N, O)");
        float* dxp = out_f32_opt(dx, "dx", 2);
        if (dxp) require_shape(dx, "dx", {d.N, d.I}, "x's shape");
        float* bp = out_f32_opt(b, "b", 1);
        if (bp) require_shape(b, "b", {d.O}, "one per output feature");
        const py::handle outs[] = {dx, w, b};
        const char* out_names[] = {"dx", "w", "b"};
        for (int o = 0; o < 3; ++o) {
            require_apart(outs[o], out_names[o], dout, "dout");
            require_apart(outs[o], out_names[o], x, "x");
            for (int p = o + 1; p < 3; ++p) require_apart(outs[o], out_names[o], outs[p], out_names[p]);
        }
        py::gil_scoped_release nogil;
        fastcnn::dense_backward_sgd(dxp, wp, bp, gp, xp, d.N, d.I, d.O, lr, weight_decay);
    }, py::arg("dx"), py::arg("w"), py::arg("b"), py::arg("dout"), py::arg("x"),
       py::arg("lr"), py::arg("weight_decay"),
       "dx (or None) <- dout . w^T; then w, b (or None) updated in place by one SGD step.");
}

// =========================================================== pooling ======
// (section owned by the pooling work)
//
// Windowed pooling: x (N, C, H, W) -> out (N, C, OH, OW), window (kh, kw),
// stride (sh, sw), no padding. The geometry is re-checked here and the shapes
// of out / dout / dx must follow from it exactly. Outputs must not overlap
// inputs.

struct PoolCall {
    int64_t N, C, H, W, KH, KW, SH, SW, OH, OW;
};

// Checks the window against the image shape dims (N, C, H, W) of `name`.
PoolCall pool_geometry(const std::vector<int64_t>& dims, const char* name,
                       int64_t kh, int64_t kw, int64_t sh, int64_t sw) {
    require_range(dims[2], 1, kMaxDim, "H");
    require_range(dims[3], 1, kMaxDim, "W");
    require_range(kh, 1, kMaxDim, "kh");
    require_range(kw, 1, kMaxDim, "kw");
    require_range(sh, 1, kMaxDim, "sh");
    require_range(sw, 1, kMaxDim, "sw");
    if (kh > dims[2] || kw > dims[3]) {
        throw py::value_error("window " + dims_str({kh, kw}) + " is larger than the image of " +
                              name + " with shape " + dims_str(dims));
    }
    return PoolCall{dims[0], dims[1], dims[2], dims[3], kh, kw, sh, sw,
                    fastcnn::pool_out_size(dims[2], kh, sh),
                    fastcnn::pool_out_size(dims[3], kw, sw)};
}

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

void bind_pool(py::module_& m) {
    def_pool_forward(m, "maxpool2d_forward", &fastcnn::maxpool2d_forward);
    def_pool_forward(m, "avgpool2d_forward", &fastcnn::avgpool2d_forward);
    def_pool_forward(m, "l2pool2d_forward", &fastcnn::l2pool2d_forward);
    def_pool_backward_x(m, "maxpool2d_backward", &fastcnn::maxpool2d_backward);
    def_pool_backward_x(m, "l2pool2d_backward", &fastcnn::l2pool2d_backward);

    // Average-pool backward needs only the shapes, not x.
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

    // Global average: x (N, C, H, W) <-> out (N, C).
    m.def("global_avgpool2d_forward", [](py::handle out_h, py::handle x_h) {
        const float* x = in_f32(x_h, "x", 4);
        float* out = out_f32(out_h, "out", 2);
        const std::vector<int64_t> d = global_pool_intake(x_h, out_h, "out");
        require_apart(out_h, "out", x_h, "x");
        const int64_t hw = d[2] * d[3];               // the size of an existing array
        py::gil_scoped_release release;
        fastcnn::global_avgpool2d_forward(out, x, d[0], d[1], hw);
    }, py::arg("out"), py::arg("x"));

    m.def("global_avgpool2d_backward", [](py::handle dx_h, py::handle dout_h) {
        float* dx = out_f32(dx_h, "dx", 4);
        const float* dout = in_f32(dout_h, "dout", 2);
        const std::vector<int64_t> d = global_pool_intake(dx_h, dout_h, "dout");
        require_apart(dx_h, "dx", dout_h, "dout");
        const int64_t hw = d[2] * d[3];               // the size of an existing array
        py::gil_scoped_release release;
        fastcnn::global_avgpool2d_backward(dx, dout, d[0], d[1], hw);
    }, py::arg("dx"), py::arg("dout"));
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
    m.def("set_busy_wait", &fastcnn::pool::set_busy_wait, py::arg("on"));
    m.def("busy_wait", &fastcnn::pool::busy_wait);
    m.def("simd_level", &fastcnn::simd_level);
    m.def("_set_isa", [](const std::string& name) {
        const std::string err = fastcnn::set_isa(name.c_str());
        if (!err.empty()) throw py::value_error("set_isa('" + name + "'): " + err);
    }, py::arg("name"));
    m.def("_peak_fma", [](const std::string& name, int64_t iters, int threads) {
        // (flops, value) of fastcnn::peak_fma, for bench/bench_peak.py.
        if (iters < 1 || iters > (int64_t(1) << 40))
            throw py::value_error("_peak_fma: iters must be in [1, 2**40], got " +
                                  std::to_string(iters));
        if (threads < 1 || threads > 1024)
            throw py::value_error("_peak_fma: threads must be in [1, 1024], got " +
                                  std::to_string(threads));
        float sink = 0.0f;
        int64_t flops;
        {
            py::gil_scoped_release release;
            flops = fastcnn::peak_fma(name.c_str(), iters, threads, &sink);
        }
        if (flops == 0)
            throw py::value_error("_peak_fma: '" + name + "' is not a path this CPU and build run");
        return py::make_tuple(flops, sink);
    }, py::arg("name"), py::arg("iters"), py::arg("threads"));
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
    m.def("build_info", []() {
        py::dict d;
        d["version"] = FASTCNN_VERSION;
        d["simd"] = fastcnn::simd_level();
        auto to_list = [](const std::vector<std::string>& names) {
            py::list out;
            for (const std::string& name : names) out.append(name);
            return out;
        };
        d["isas_supported"] = to_list(fastcnn::supported_isas());
        d["isas_compiled"] = to_list(fastcnn::compiled_isas());
        d["cpu_avx2_fma"] = fastcnn::cpu_has_avx2_fma();
        d["cpu_avx512"] = fastcnn::cpu_has_avx512();
        d["avx2_compiled"] = bool(FASTCNN_HAVE_AVX2_BUILD);
        d["avx512_compiled"] = bool(FASTCNN_HAVE_AVX512_BUILD);
        d["openmp"] = fastcnn::openmp_enabled();
        d["num_threads"] = fastcnn::get_num_threads();
        d["compiler"] = FASTCNN_COMPILER;
        d["cxx_flags"] = FASTCNN_CXX_FLAGS;
        d["avx2_flags"] = FASTCNN_HAVE_AVX2_BUILD ? "-mavx2 -mfma (on *_avx2.cpp only)" : "";
        d["avx512_flags"] = FASTCNN_HAVE_AVX512_BUILD
                                ? std::string(FASTCNN_AVX512_FLAGS_STR) + " (on *_avx512.cpp only)"
                                : std::string();
        d["build_type"] = FASTCNN_BUILD_TYPE;
        d["malloc_tuned"] = fastcnn::malloc_tuned();
        return d;
    });
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "fastcnn native kernels (private; use fastcnn.ops)";
    const std::string isa_error = fastcnn::init_dispatch();
    if (!isa_error.empty()) throw py::import_error(isa_error);
    fastcnn::tune_malloc();
    // The limits the intake enforces, read by the Python checks and the tests.
    m.attr("MAX_SIZE") = fastcnn::kMaxDim;
    m.attr("CHOICE_NO_GRADIENT") = int(fastcnn::kNoGradient);
    m.attr("MAX_FUSED_POOL_WINDOW") = fastcnn::kMaxFusedPoolWindow;
    bind_misc(m);
    bind_gemm(m);
    bind_conv_dense(m);
    bind_pool(m);
    bind_conv_pool(m);
    bind_elementwise(m);
}

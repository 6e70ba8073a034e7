// intake.cpp -- the shared array intake of the bindings (see intake.h for
// the contract of every function here).
//
// Size letters: as in intake.h.
#include "bindings/intake.h"

#include <sstream>

namespace fastcnn {
namespace bindings {

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

const float* in_f32(py::handle h, const char* name, int ndim) {
    py::array a = as_array(h, name);
    require_f32(a, name, ndim);
    return static_cast<const float*>(a.data());
}

const float* in_f32_opt(py::handle h, const char* name, int ndim) {
    return h.is_none() ? nullptr : in_f32(h, name, ndim);
}

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

void require_shape(py::handle h, const char* name, const std::vector<int64_t>& want,
                   const char* why) {
    py::array a = py::reinterpret_borrow<py::array>(h);
    if (dims_of(a) != want) {
        std::string msg = std::string(name) + " has shape " + shape_str(a) + ", expected " +
                          dims_str(want);
        if (why) msg += std::string(" (") + why + ")";
        throw py::value_error(msg);
    }
}

int64_t count(py::handle h) {
    return static_cast<int64_t>(py::reinterpret_borrow<py::array>(h).size());
}

const float* in_like(py::handle h, const char* name, py::handle ref, const char* ref_name) {
    const float* p = in_f32(h, name, -1);
    require_shape(h, name, dims_of(ref), (std::string("the shape of ") + ref_name).c_str());
    return p;
}

float* out_like(py::handle h, const char* name, py::handle ref, const char* ref_name) {
    float* p = out_f32(h, name, -1);
    require_shape(h, name, dims_of(ref), (std::string("the shape of ") + ref_name).c_str());
    return p;
}

void require_apart(py::handle a_h, const char* a_name, py::handle b_h, const char* b_name,
                   bool allow_same) {
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

int64_t checked_mul(int64_t a, int64_t b, const char* what) {
    int64_t r;
    if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) {
        throw py::value_error(std::string("size overflow computing ") + what);
    }
    return r;
}

void require_range(int64_t v, int64_t lo, int64_t hi, const char* name) {
    if (v < lo || v > hi) {
        throw py::value_error(std::string(name) + " must be in [" + std::to_string(lo) + ", " +
                              std::to_string(hi) + "], got " + std::to_string(v));
    }
}

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

}  // namespace bindings
}  // namespace fastcnn

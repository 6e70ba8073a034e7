// pool.cpp -- 2-D pooling over NCHW images: max, average, L2, global average,
// each with its backward pass. Contract: see the "pooling" block of fastcnn.h.
//
// Size letters:
//   N  batch     C  channels     H W  input height/width
//   KH KW  window height/width   SH SW  stride     OH OW  output height/width
//   OH = (H - KH) / SH + 1, OW = (W - KW) / SW + 1 (floor; no padding).
//
// Buffers (all float32, C-contiguous, owned by the caller):
//   x, dx     (N, C, H, W)      out, dout (N, C, OH, OW)
//   global pooling: x, dx (N, C, HW), out, dout (N, C)
//
// Every kernel runs one OpenMP loop over the N*C planes. A plane of dx is
// written by the one thread that owns it, so overlapping windows (stride <
// size) add up without races. Backward kernels OVERWRITE dx: each plane is
// zeroed first and then every window adds its share.
//
// Max-pool NaN rule (the same as np.argmax over the flattened window): the
// chosen element is the first NaN in row-major order, or else the first
// maximum; forward outputs that element bit for bit, backward sends the whole
// dout to it.
//
// Average and L2 sum in double: a window of float32 squares cannot overflow or
// underflow there, so L2 matches a float64 reference even for tiny or huge x.
//
// 2x2 windows with stride 2 (the common CNN case) have a specialised path for
// max and average; the general loops are their plain twins and handle every
// other geometry (and the same one, when called directly).
#include <algorithm>
#include <cmath>

#include "fastcnn.h"

namespace fastcnn {

namespace {

// The running choice cur is replaced by the next element v (in row-major
// order) when cur is not NaN and v is either NaN or strictly larger. Applied in
// order, this keeps the first NaN, or else the first maximum.
inline bool takes_over(float v, float cur) {
    return !std::isnan(cur) && (std::isnan(v) || v > cur);
}

// Offset (i*W + j) inside the plane of the chosen element of the window whose
// top-left corner is at win (a pointer into a plane of width W).
inline int64_t max_choice(const float* win, int64_t W, int64_t KH, int64_t KW) {
    int64_t best = 0;
    float best_value = win[0];
    for (int64_t i = 0; i < KH; ++i) {
        for (int64_t j = 0; j < KW; ++j) {
            const float v = win[i * W + j];
            if (takes_over(v, best_value)) {
                best_value = v;
                best = i * W + j;
            }
        }
    }
    return best;
}

inline bool is_2x2_stride2(int64_t KH, int64_t KW, int64_t SH, int64_t SW) {
    return KH == 2 && KW == 2 && SH == 2 && SW == 2;
}

// ---------------------------------------------------- max, 2x2 stride 2 ----

// The first NaN or first maximum of a, b, c, d (row-major order of a 2x2 window).
inline float max4(float a, float b, float c, float d) {
    float m = a;
    m = takes_over(b, m) ? b : m;
    m = takes_over(c, m) ? c : m;
    m = takes_over(d, m) ? d : m;
    return m;
}

// out_plane (OH, OW) from x_plane (H, W).
void maxpool_2x2_plane(float* out_plane, const float* x_plane, int64_t W, int64_t OH, int64_t OW) {
    for (int64_t oh = 0; oh < OH; ++oh) {
        const float* top = x_plane + 2 * oh * W;     // (2, W) rows of the windows
        const float* bottom = top + W;
        float* out_row = out_plane + oh * OW;        // (OW)
        for (int64_t ow = 0; ow < OW; ++ow) {
            out_row[ow] = max4(top[2 * ow], top[2 * ow + 1], bottom[2 * ow], bottom[2 * ow + 1]);
        }
    }
}

// dx_plane (H, W) overwritten; windows do not overlap, so each element is
// written once (the rows/columns left over by the floor are zeroed).
void maxpool_2x2_backward_plane(float* dx_plane, const float* dout_plane, const float* x_plane,
                                int64_t H, int64_t W, int64_t OH, int64_t OW) {
    for (int64_t oh = 0; oh < OH; ++oh) {
        const float* top = x_plane + 2 * oh * W;
        const float* bottom = top + W;
        float* dtop = dx_plane + 2 * oh * W;
        float* dbottom = dtop + W;
        const float* dout_row = dout_plane + oh * OW;
        for (int64_t ow = 0; ow < OW; ++ow) {
            const float a = top[2 * ow], b = top[2 * ow + 1];
            const float c = bottom[2 * ow], d = bottom[2 * ow + 1];
            int choice = 0;                           // 0 a, 1 b, 2 c, 3 d
            float m = a;
            if (takes_over(b, m)) { m = b; choice = 1; }
            if (takes_over(c, m)) { m = c; choice = 2; }
            if (takes_over(d, m)) { m = d; choice = 3; }
            const float g = dout_row[ow];
            dtop[2 * ow] = choice == 0 ? g : 0.0f;
            dtop[2 * ow + 1] = choice == 1 ? g : 0.0f;
            dbottom[2 * ow] = choice == 2 ? g : 0.0f;
            dbottom[2 * ow + 1] = choice == 3 ? g : 0.0f;
        }
        if (2 * OW < W) {                            // odd W: last column
            dtop[W - 1] = 0.0f;
            dbottom[W - 1] = 0.0f;
        }
    }
    if (2 * OH < H) std::fill(dx_plane + (H - 1) * W, dx_plane + H * W, 0.0f);   // odd H
}

}  // namespace

// ------------------------------------------------------------------ max ----

void maxpool2d_forward(float* out, const float* x, int64_t N, int64_t C, int64_t H, int64_t W,
                       int64_t KH, int64_t KW, int64_t SH, int64_t SW) {
    const int64_t OH = (H - KH) / SH + 1, OW = (W - KW) / SW + 1;
    const int64_t planes = N * C;
    const bool fast = is_2x2_stride2(KH, KW, SH, SW);
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; ++p) {
        const float* x_plane = x + p * H * W;        // (H, W)
        float* out_plane = out + p * OH * OW;        // (OH, OW)
        if (fast) {
            maxpool_2x2_plane(out_plane, x_plane, W, OH, OW);
            continue;
        }
        for (int64_t oh = 0; oh < OH; ++oh) {
            for (int64_t ow = 0; ow < OW; ++ow) {
                const float* win = x_plane + oh * SH * W + ow * SW;
                out_plane[oh * OW + ow] = win[max_choice(win, W, KH, KW)];
            }
        }
    }
}

void maxpool2d_backward(float* dx, const float* dout, const float* x,
                        int64_t N, int64_t C, int64_t H, int64_t W,
                        int64_t KH, int64_t KW, int64_t SH, int64_t SW) {
    const int64_t OH = (H - KH) / SH + 1, OW = (W - KW) / SW + 1;
    const int64_t planes = N * C;
    const bool fast = is_2x2_stride2(KH, KW, SH, SW);
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; ++p) {
        const float* x_plane = x + p * H * W;        // (H, W)
        const float* dout_plane = dout + p * OH * OW;  // (OH, OW)
        float* dx_plane = dx + p * H * W;            // (H, W)
        if (fast) {
            maxpool_2x2_backward_plane(dx_plane, dout_plane, x_plane, H, W, OH, OW);
            continue;
        }
        std::fill(dx_plane, dx_plane + H * W, 0.0f);
        for (int64_t oh = 0; oh < OH; ++oh) {
            for (int64_t ow = 0; ow < OW; ++ow) {
                const int64_t corner = oh * SH * W + ow * SW;
                dx_plane[corner + max_choice(x_plane + corner, W, KH, KW)] += dout_plane[oh * OW + ow];
            }
        }
    }
}

// -------------------------------------------------------------- average ----

void avgpool2d_forward(float* out, const float* x, int64_t N, int64_t C, int64_t H, int64_t W,
                       int64_t KH, int64_t KW, int64_t SH, int64_t SW) {
    const int64_t OH = (H - KH) / SH + 1, OW = (W - KW) / SW + 1;
    const int64_t planes = N * C;
    const bool fast = is_2x2_stride2(KH, KW, SH, SW);
    const double inv_count = 1.0 / static_cast<double>(KH * KW);
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; ++p) {
        const float* x_plane = x + p * H * W;        // (H, W)
        float* out_plane = out + p * OH * OW;        // (OH, OW)
        for (int64_t oh = 0; oh < OH; ++oh) {
            float* out_row = out_plane + oh * OW;    // (OW)
            if (fast) {
                const float* top = x_plane + 2 * oh * W;
                const float* bottom = top + W;
                for (int64_t ow = 0; ow < OW; ++ow) {
                    const double sum = static_cast<double>(top[2 * ow]) + top[2 * ow + 1] +
                                       bottom[2 * ow] + bottom[2 * ow + 1];
                    out_row[ow] = static_cast<float>(0.25 * sum);
                }
                continue;
            }
            for (int64_t ow = 0; ow < OW; ++ow) {
                const float* win = x_plane + oh * SH * W + ow * SW;
                double sum = 0.0;
                for (int64_t i = 0; i < KH; ++i) {
                    for (int64_t j = 0; j < KW; ++j) sum += win[i * W + j];
                }
                out_row[ow] = static_cast<float>(sum * inv_count);
            }
        }
    }
}

void avgpool2d_backward(float* dx, const float* dout,
                        int64_t N, int64_t C, int64_t H, int64_t W,
                        int64_t KH, int64_t KW, int64_t SH, int64_t SW) {
    const int64_t OH = (H - KH) / SH + 1, OW = (W - KW) / SW + 1;
    const int64_t planes = N * C;
    const float count = static_cast<float>(KH * KW);
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; ++p) {
        const float* dout_plane = dout + p * OH * OW;  // (OH, OW)
        float* dx_plane = dx + p * H * W;            // (H, W)
        std::fill(dx_plane, dx_plane + H * W, 0.0f);
        for (int64_t oh = 0; oh < OH; ++oh) {
            for (int64_t ow = 0; ow < OW; ++ow) {
                const float g = dout_plane[oh * OW + ow] / count;
                float* dwin = dx_plane + oh * SH * W + ow * SW;
                for (int64_t i = 0; i < KH; ++i) {
                    for (int64_t j = 0; j < KW; ++j) dwin[i * W + j] += g;
                }
            }
        }
    }
}

// ------------------------------------------------------------------- L2 ----

namespace {

// sqrt(sum of squares) of the window at win, in double.
inline double l2_norm(const float* win, int64_t W, int64_t KH, int64_t KW) {
    double sum_sq = 0.0;
    for (int64_t i = 0; i < KH; ++i) {
        for (int64_t j = 0; j < KW; ++j) {
            const double v = win[i * W + j];
            sum_sq += v * v;
        }
    }
    return std::sqrt(sum_sq);
}

}  // namespace

void l2pool2d_forward(float* out, const float* x, int64_t N, int64_t C, int64_t H, int64_t W,
                      int64_t KH, int64_t KW, int64_t SH, int64_t SW) {
    const int64_t OH = (H - KH) / SH + 1, OW = (W - KW) / SW + 1;
    const int64_t planes = N * C;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; ++p) {
        const float* x_plane = x + p * H * W;        // (H, W)
        float* out_plane = out + p * OH * OW;        // (OH, OW)
        for (int64_t oh = 0; oh < OH; ++oh) {
            for (int64_t ow = 0; ow < OW; ++ow) {
                const float* win = x_plane + oh * SH * W + ow * SW;
                out_plane[oh * OW + ow] = static_cast<float>(l2_norm(win, W, KH, KW));
            }
        }
    }
}

void l2pool2d_backward(float* dx, const float* dout, const float* x,
                       int64_t N, int64_t C, int64_t H, int64_t W,
                       int64_t KH, int64_t KW, int64_t SH, int64_t SW) {
    const int64_t OH = (H - KH) / SH + 1, OW = (W - KW) / SW + 1;
    const int64_t planes = N * C;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; ++p) {
        const float* x_plane = x + p * H * W;        // (H, W)
        const float* dout_plane = dout + p * OH * OW;  // (OH, OW)
        float* dx_plane = dx + p * H * W;            // (H, W)
        std::fill(dx_plane, dx_plane + H * W, 0.0f);
        for (int64_t oh = 0; oh < OH; ++oh) {
            for (int64_t ow = 0; ow < OW; ++ow) {
                const int64_t corner = oh * SH * W + ow * SW;
                const double norm = l2_norm(x_plane + corner, W, KH, KW);
                const double g = dout_plane[oh * OW + ow];
                for (int64_t i = 0; i < KH; ++i) {
                    for (int64_t j = 0; j < KW; ++j) {
                        const int64_t e = corner + i * W + j;
                        // d norm / d x = x / norm, 0 for an all-zero window. Written
                        // as g * ratio like the reference, so a NaN/Inf dout or an
                        // Inf x (Inf/Inf) gives NaN in the same places.
                        const double ratio = norm == 0.0 ? 0.0 : x_plane[e] / norm;
                        dx_plane[e] += static_cast<float>(g * ratio);
                    }
                }
            }
        }
    }
}

// -------------------------------------------------------- global average ----

void global_avgpool2d_forward(float* out, const float* x, int64_t N, int64_t C, int64_t HW) {
    const int64_t planes = N * C;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; ++p) {
        const float* x_plane = x + p * HW;           // (HW)
        double sum = 0.0;
        for (int64_t e = 0; e < HW; ++e) sum += x_plane[e];
        out[p] = static_cast<float>(sum / static_cast<double>(HW));
    }
}

void global_avgpool2d_backward(float* dx, const float* dout, int64_t N, int64_t C, int64_t HW) {
    const int64_t planes = N * C;
    const float count = static_cast<float>(HW);
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; ++p) {
        float* dx_plane = dx + p * HW;               // (HW)
        std::fill(dx_plane, dx_plane + HW, dout[p] / count);
    }
}

}  // namespace fastcnn

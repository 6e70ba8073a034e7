// im2col.cpp -- unfold image windows into columns (im2col) and fold them back (col2im).
//
// Size letters:
//   N  batch   C  channels   H W  image height/width   KH KW  kernel height/width
//   SH SW  stride   PH PW  zero padding   OH OW  output height/width
//   (conv_out_size, geometry.h).
//
// Contract (see fastcnn.h):
//   im2col: cols (C*KH*KW, N*OH*OW), row r = (c*KH + i)*KW + j, column
//           q = (n*OH + oh)*OW + ow, cols[r][q] = x[n][c][oh*SH - PH + i][ow*SW - PW + j],
//           0 where that position lies in the padding. cols is overwritten.
//   col2im: its adjoint. dx (N,C,H,W) is overwritten with, for each pixel, the
//           sum of every cols entry that im2col would have copied from it.
// The caller owns every buffer and has checked the sizes (the bindings' intake):
// KH <= H + 2*PH, KW <= W + 2*PW, all sizes >= 1, no product overflows int64.
//
// Threads: both split the (n, c) planes: im2col reads plane x[n][c] and writes
// its KH*KW stretches of OH*OW in cols; col2im adds into plane dx[n][c] only,
// so no two threads ever add into the same pixel. The in-image ranges of each
// kernel offset (Span) are computed once per call, not per plane: the integer
// divisions cost as much as copying a short row.
#include "common.h"
#include "fastcnn.h"
#include "threadpool.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace fastcnn {

namespace {

// Output positions o in [0, n_out) whose input position o*step - pad + offset
// falls inside [0, size): the half-open range [lo, hi) (empty when lo >= hi).
struct Span {
    int64_t lo;
    int64_t hi;
};

Span inside(int64_t n_out, int64_t size, int64_t step, int64_t pad, int64_t offset) {
    // o*step - pad + offset >= 0     <=>  o >= ceil((pad - offset) / step)
    // o*step - pad + offset <= size-1 <=> o <= floor((size - 1 + pad - offset) / step)
    const int64_t first = pad - offset;  // may be negative
    int64_t lo = first <= 0 ? 0 : (first + step - 1) / step;
    const int64_t last = size - 1 + pad - offset;
    int64_t hi = last < 0 ? 0 : last / step + 1;
    lo = std::min(lo, n_out);
    hi = std::min(hi, n_out);
    return {lo, std::max(lo, hi)};
}

// dst[0..count) = src[0..count) for short rows (OW is 8 to 28 in the nets this
// library trains), where a call to memcpy/memmove (what GCC makes of a plain
// copy loop) costs more than the copy: fixed 4-float pieces, each one inline
// 16-byte move, the last piece overlapping the one before it.
inline void copy_short(float* dst, const float* src, int64_t count) {
    constexpr int64_t kPiece = 4;
    if (count < kPiece) {
        for (int64_t o = 0; o < count; ++o) dst[o] = src[o];
        return;
    }
    for (int64_t o = 0; o + kPiece <= count; o += kPiece) {
        std::memcpy(dst + o, src + o, kPiece * sizeof(float));
    }
    std::memcpy(dst + count - kPiece, src + count - kPiece, kPiece * sizeof(float));
}

// inside() for each kernel offset 0..KSIZE-1 along one axis: (KSIZE)
std::vector<Span> spans(int64_t ksize, int64_t n_out, int64_t size, int64_t step, int64_t pad) {
    std::vector<Span> out(static_cast<size_t>(ksize));
    for (int64_t i = 0; i < ksize; ++i) out[i] = inside(n_out, size, step, pad, i);
    return out;
}

}  // namespace

void im2col(float* cols, const float* x, int64_t N, int64_t C, int64_t H, int64_t W,
            int64_t KH, int64_t KW, int64_t SH, int64_t SW, int64_t PH, int64_t PW) {
    const int64_t OH = conv_out_size(H, KH, SH, PH);
    const int64_t OW = conv_out_size(W, KW, SW, PW);
    const int64_t ncols = N * OH * OW;
    const int64_t planes = N * C;  // one (n, c) plane of x each
    const std::vector<Span> oh_in = spans(KH, OH, H, SH, PH);  // (KH)
    const std::vector<Span> ow_in = spans(KW, OW, W, SW, PW);  // (KW)

    pool::parallel_for(planes, C * KH * KW * ncols >= kParallelMin, [=, &oh_in, &ow_in](int64_t t) {
        const int64_t n = t / C;
        const int64_t c = t % C;
        const float* plane = x + t * H * W;                     // x[n][c]  (H, W)
        for (int64_t i = 0; i < KH; ++i) {
            const Span rows = oh_in[i];
            for (int64_t j = 0; j < KW; ++j) {
                const Span cols_in = ow_in[j];
                const int64_t count = cols_in.hi - cols_in.lo;
                const int64_t r = (c * KH + i) * KW + j;
                float* dst = cols + r * ncols + n * OH * OW;    // cols[r][n*OH*OW ...] (OH, OW)
                std::fill(dst, dst + rows.lo * OW, 0.0f);       // rows above the image
                if (SW == 1 && count == OW && OW % 4 == 0) {
                    // Whole rows, no padding columns (OW is 8 or 24 in the book's
                    // nets): OW/4 16-byte moves per row, no overlapping tail.
                    const float* src = plane + (rows.lo * SH - PH + i) * W + (j - PW);
                    for (int64_t oh = rows.lo; oh < rows.hi; ++oh, src += SH * W) {
                        float* out_row = dst + oh * OW;
                        for (int64_t o = 0; o < OW; o += 4) {
                            std::memcpy(out_row + o, src + o, 4 * sizeof(float));
                        }
                    }
                    std::fill(dst + rows.hi * OW, dst + OH * OW, 0.0f);  // rows below the image
                    continue;
                }
                for (int64_t oh = rows.lo; oh < rows.hi; ++oh) {
                    float* out_row = dst + oh * OW;              // (OW)
                    // The input pixels of cols_in, from ow = cols_in.lo on, SW apart.
                    const float* src = plane + (oh * SH - PH + i) * W + (cols_in.lo * SW - PW + j);
                    float* inside_row = out_row + cols_in.lo;
                    if (SW == 1) {
                        copy_short(inside_row, src, count);
                    } else {
                        for (int64_t o = 0; o < count; ++o) inside_row[o] = src[o * SW];
                    }
                    if (count < OW) {                            // padding columns
                        std::fill(out_row, inside_row, 0.0f);
                        std::fill(inside_row + count, out_row + OW, 0.0f);
                    }
                }
                std::fill(dst + rows.hi * OW, dst + OH * OW, 0.0f);  // rows below the image
            }
        }
    });
}

void col2im(float* dx, const float* cols, int64_t N, int64_t C, int64_t H, int64_t W,
            int64_t KH, int64_t KW, int64_t SH, int64_t SW, int64_t PH, int64_t PW) {
    const int64_t OH = conv_out_size(H, KH, SH, PH);
    const int64_t OW = conv_out_size(W, KW, SW, PW);
    const int64_t ncols = N * OH * OW;
    const int64_t planes = N * C;  // one (n, c) plane of dx each
    const std::vector<Span> oh_spans = spans(KH, OH, H, SH, PH);  // (KH)
    const std::vector<Span> ow_spans = spans(KW, OW, W, SW, PW);  // (KW)

    pool::parallel_for(planes, C * KH * KW * ncols >= kParallelMin, [=, &oh_spans, &ow_spans](int64_t t) {
        const int64_t n = t / C;
        const int64_t c = t % C;
        float* plane = dx + t * H * W;                          // dx[n][c]  (H, W)
        std::fill(plane, plane + H * W, 0.0f);
        for (int64_t i = 0; i < KH; ++i) {
            const Span oh_in = oh_spans[i];
            for (int64_t j = 0; j < KW; ++j) {
                const Span ow_in = ow_spans[j];
                const int64_t r = (c * KH + i) * KW + j;
                const float* src = cols + r * ncols + n * OH * OW;  // (OH, OW)
                for (int64_t oh = oh_in.lo; oh < oh_in.hi; ++oh) {
                    float* dx_row = plane + (oh * SH - PH + i) * W;  // (W)
                    const float* src_row = src + oh * OW;            // (OW)
                    // dx pixels of ow_in, from ow = ow_in.lo on, SW apart.
                    float* dst = dx_row + (ow_in.lo * SW - PW + j);
                    const float* add = src_row + ow_in.lo;
                    const int64_t count = ow_in.hi - ow_in.lo;
                    if (SW == 1 && count % 4 == 0) {
                        // 4-wide pieces (OW is 8 or 24 in the book's nets): one SSE
                        // add each, without the set-up of a loop of unknown length.
                        for (int64_t o = 0; o < count; o += 4) {
                            for (int64_t l = 0; l < 4; ++l) dst[o + l] += add[o + l];
                        }
                    } else if (SW == 1) {
                        for (int64_t o = 0; o < count; ++o) dst[o] += add[o];
                    } else {
                        for (int64_t o = 0; o < count; ++o) dst[o * SW] += add[o];
                    }
                }
            }
        }
    });
}

}  // namespace fastcnn

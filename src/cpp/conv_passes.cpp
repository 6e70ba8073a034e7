// conv_passes.cpp -- the plain functions behind the conv passes of
// conv_passes.h: the sizes and plan of a call, the packed weights, the sums
// of db and dw. Size letters and the scheme: see conv_passes.h.
#include "conv_passes.h"

#include "common.h"
#include "gemm/gemm_internal.h"

namespace fastcnn {
namespace conv {

Shape make_shape(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t KH, int64_t KW,
                 int64_t SH, int64_t SW, int64_t PH, int64_t PW) {
    const int64_t OH = conv_out_size(H, KH, SH, PH);
    const int64_t OW = conv_out_size(W, KW, SW, PW);
    return Shape{N, C, H, W, K, KH, KW, SH, SW, PH, PW, OH, OW, OH * OW, C * KH * KW};
}

Plan make_plan(const Shape& s) {
    const int64_t N = s.N, K = s.K, CKK = s.CKK, OHW = s.OHW;
    Plan p{};
    p.per_image = OHW >= kPerImageMinOHW;
    const int64_t max_groups = std::max<int64_t>(
        1, std::min(kMaxGroups, kPartsBytes / static_cast<int64_t>(sizeof(float)) / (K * CKK)));
    p.G = ceil_div(N, std::min(N, max_groups));
    p.groups = ceil_div(N, p.G);
    // Scratch per image of a sub-chunk: its columns (+ the row of ones), plus
    // its part of the K-row matrix on the batched path.
    const int64_t per_image_floats = p.per_image ? (CKK + 1) * OHW : (CKK + K) * OHW;
    const int64_t fit = kChunkBytes / static_cast<int64_t>(sizeof(float)) / per_image_floats;
    p.S = std::max<int64_t>(1, std::min(p.G, fit));
    const int64_t threads = get_num_threads();
    p.threads = static_cast<int>(std::min<int64_t>(threads, p.groups));
    return p;
}

PackedWeights::PackedWeights(bool trans, int64_t M, int64_t K, const float* A, int64_t lda,
                             int64_t columns)
    : trans_(trans), M_(M), K_(K), A_(A), lda_(lda),
      rows_(!trans && columns >= 0 && columns <= kRowsAMaxColumns),
      packed_(static_cast<size_t>(rows_ ? 0 : sgemm_packed_a_size(M, K))) {
    if (rows_) {
        layout_ = gemm::active_isa_id();
    } else if (packed_.size() > 0) {
        layout_ = sgemm_pack_a(trans, M, K, 1.0f, A, lda, packed_.get());
    }
}

void PackedWeights::gemm(int64_t n, const float* B, int64_t ldb, float* C, int64_t ldc) const {
    if (rows_) {
        sgemm_rows_a(layout_, M_, n, K_, A_, lda_, B, ldb, C, ldc);
    } else if (packed_.size() == 0) {
        sgemm_serial(trans_, false, M_, n, K_, 1.0f, A_, lda_, B, ldb, 0.0f, C, ldc);
    } else {
        sgemm_with_packed_a(layout_, packed_.get(), M_, n, K_, false, B, ldb, 0.0f, C, ldc);
    }
}

float sum_floats(const float* v, int64_t count) {
    float lane[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    int64_t p = 0;
    for (; p + 8 <= count; p += 8) {
        for (int l = 0; l < 8; ++l) lane[l] += v[p + l];
    }
    float tail = 0.0f;
    for (; p < count; ++p) tail += v[p];
    return ((lane[0] + lane[4]) + (lane[1] + lane[5])) +
           ((lane[2] + lane[6]) + (lane[3] + lane[7])) + tail;
}

// A block of values at a time, slot by slot, so every read is a contiguous
// (vectorised) stream rather than one value per slot 4*n bytes apart.
void sum_dw_parts(float* dw, const float* parts, int64_t n, int64_t groups) {
    constexpr int64_t kBlock = 1024;
    const int64_t blocks = ceil_div(n, kBlock);
    pool::parallel_for(blocks, n * groups >= kParallelMin, [=](int64_t blk) {
        const int64_t e0 = blk * kBlock, e1 = std::min(n, e0 + kBlock);
        float* out = dw + e0;  // (e1 - e0,)
        for (int64_t e = e0; e < e1; ++e) out[e - e0] = parts[e];
        for (int64_t g = 1; g < groups; ++g) {
            const float* slot = parts + g * n;  // (n,)
            for (int64_t e = e0; e < e1; ++e) out[e - e0] += slot[e];
        }
    });
}

}  // namespace conv
}  // namespace fastcnn

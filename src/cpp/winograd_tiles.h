// winograd_tiles.h -- the tile transforms of the Winograd convolution
// F(4x4, 3x3) (winograd.h): their sizes and their table per SIMD path.
// Internal: not part of the fastcnn API, no Python.
//
// Size letters: N C H W K OH OW PH PW as in fastcnn.h; TH TW = tile rows and
// columns per image (ceil(OH/4), ceil(OW/4)); ld = the tile columns of a
// block's matrices (their leading dimension); e = i*6 + j, the element (row
// i, column j) of a 6x6 tile in the Winograd domain.
//
// The transforms are one source (winograd_tiles_impl.h) compiled three times:
// winograd_tiles.cpp (portable), winograd_tiles_avx2.cpp and
// winograd_tiles_avx512.cpp (with those paths' flags, so the compiler's
// vectors are 8 or 16 floats wide); tile_kernels() gives the table of the SIMD
// path in use (winograd.cpp). Results are the same on any thread count on
// each path, not across paths. This header is included by the per-path files:
// it declares data and functions only, with no inline function of external
// linkage (common.h's rule).
#pragma once
#include <cstdint>

namespace fastcnn {
namespace wino {

// Tiles a transform handles at once: its (36, kTileChunk) buffers stay in L1.
// 64 (was 32): each 1-D transform call runs over twice the tiles for the
// same set-up (the layers' gains: docs/performance.md, 2026-12-08).
constexpr int64_t kTileChunk = 64;
// Floats of a transform's work buffer (tiles); the weights' need 27 * C.
constexpr int64_t kTileWorkFloats = 80 * kTileChunk;

// The tile grid of one call: image and output sizes, padding, tiles per image.
struct TileGrid {
    int64_t H, W, OH, OW, PH, PW, TH, TW;
};

// Tiles of images [n0, n1), tile rows [ty0, ty1) of each, in (image, row,
// column) order; either n1 = n0 + 1 or the rows are all of them.
struct Block {
    int64_t n0, n1, ty0, ty1;
};

static inline int64_t block_tiles(const Block& b, const TileGrid& tg) {
    return (b.n1 - b.n0) * (b.ty1 - b.ty0) * tg.TW;
}

// Floats of the padded copy of a block's input bands: (images, 4 rows + 2, 4 TW + 2),
// plus kBandSpare floats a transform may read (never use) past the last band.
constexpr int64_t kBandSpare = 32;
static inline int64_t band_floats(int64_t images, int64_t rows, const TileGrid& tg) {
    return images * (4 * rows + 2) * (4 * tg.TW + 2) + kBandSpare;
}

// One path's transforms. work: kTileWorkFloats floats (tiles) or 27 * C
// (weights); bands: band_floats(...) of the block (any transform's band buffers fit).
struct TileKernels {
    // U (36, K, C) = G w G^T of w (K, C, 3, 3).
    void (*weights)(float* U, const float* w, int64_t K, int64_t C, float* work);
    // dw (K, C, 3, 3) = G^T dU G of dU (36, K, C).
    void (*weight_gradient)(float* dw, const float* dU, int64_t K, int64_t C, float* work);
    // V (36, C, ld): B^T d B of the block's tiles, d the 6x6 input patches of
    // x (N, C, H, W) (0 outside the image).
    void (*input)(float* V, int64_t ld, const float* x, int64_t C, const TileGrid& tg,
                  const Block& blk, float* work, float* bands);
    // z[i] (K, OH, OW), the target of the block's i-th image: its tiles of
    // A^T M A + b (b may be null) from M (36, K, ld). False if a value is not finite.
    bool (*output)(float* const* z, const float* M, int64_t ld, int64_t K, const float* b,
                   const TileGrid& tg, const Block& blk, float* work, float* bands);
    // Z (36, K, ld): A dz A^T of the block's 4x4 tiles of dz[i] (K, OH, OW), 0 outside.
    void (*output_grad)(float* Z, int64_t ld, const float* const* dz, int64_t K,
                        const TileGrid& tg, const Block& blk, float* work, float* bands);
    // dx (N, C, H, W) += B dV B^T of the block's tiles from dV (36, C, ld), inside
    // the image only. False if a value is not finite.
    bool (*input_grad)(float* dx, const float* dV, int64_t ld, int64_t C, const TileGrid& tg,
                       const Block& blk, float* work, float* bands);
};

TileKernels tile_kernels_generic();
#if FASTCNN_HAVE_AVX2_BUILD
TileKernels tile_kernels_avx2();
#endif
#if FASTCNN_HAVE_AVX512_BUILD
TileKernels tile_kernels_avx512();
#endif
// The table of the SIMD path in use (winograd.cpp).
TileKernels tile_kernels();

}  // namespace wino
}  // namespace fastcnn

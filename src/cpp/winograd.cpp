// winograd.cpp -- which convolutions take the Winograd passes (winograd.h),
// the setting that overrides it (FASTCNN_CONV, set_conv_algo), and the plan
// of a Winograd call (tiles, blocks, groups).
//
// Size letters: as in winograd.h.
//
// The rule ("auto"): a 3x3 stride-1 convolution with at least kMinChannels
// input and output channels and at least kMinTiles 4x4 output tiles in the
// batch. Measured on this library's layer shapes (bench/bench_conv3x3.py,
// docs/performance.md, section Winograd): from 16 channels on, the 36 GEMMs
// do 4x fewer flops than im2col's one and are big enough to run near the
// GEMM's speed, and forward + backward take 1.3-2x less time than im2col's;
// first layers (1 or 3 input channels) spend their time in the transforms
// (1.5x slower than im2col for 3->32 on 32x32), and on few tiles (a
// mini-batch of 10 on 10x10 outputs: 90 tiles) the weight gradient's GEMMs
// are too short (0.9x). With 8 channels, forward alone is about as fast either
// way. The forward pass alone also takes Winograd on fewer tiles when each
// image has at least kMinImageTilesForward of them (a batch of one 32x32
// image, 64 tiles: forward of 32 -> 32 1.63x im2col's; on 16x16 images, 16
// tiles, 0.8-0.93x; bench_conv3x3.py --batch 1 --split, docs/performance.md).
#include <cstdlib>
#include <cstring>

#include "common.h"
#include "gemm/gemm_internal.h"
#include "winograd.h"

namespace fastcnn {

namespace {

enum class Algo { automatic, im2col, winograd };
std::atomic<int> g_algo{static_cast<int>(Algo::automatic)};

constexpr int64_t kMinChannels = 16;
constexpr int64_t kMinTiles = 256;
constexpr int64_t kMinImageTilesForward = 64;

const char* algo_name(Algo a) {
    switch (a) {
        case Algo::automatic: return "auto";
        case Algo::im2col: return "im2col";
        case Algo::winograd: return "winograd";
    }
    return "";
}

bool parse_algo(const char* name, Algo* out) {
    for (Algo a : {Algo::automatic, Algo::im2col, Algo::winograd}) {
        if (std::strcmp(name, algo_name(a)) == 0) {
            *out = a;
            return true;
        }
    }
    return false;
}

}  // namespace

std::string set_conv_algo(const char* name) {
    Algo a;
    if (!parse_algo(name, &a)) {
        return std::string("unknown convolution algorithm '") + name +
               "' (auto, im2col or winograd)";
    }
    g_algo.store(static_cast<int>(a));
    return "";
}

const char* conv_algo() { return algo_name(static_cast<Algo>(g_algo.load())); }

std::string init_conv_algo() {
    const char* env = std::getenv("FASTCNN_CONV");
    if (env == nullptr || env[0] == '\0') return set_conv_algo("auto");
    const std::string err = set_conv_algo(env);
    return err.empty() ? err : "FASTCNN_CONV: " + err;
}

const char* conv_path(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t KH,
                      int64_t KW, int64_t SH, int64_t SW, int64_t PH, int64_t PW) {
    const conv::Shape s = conv::make_shape(N, C, H, W, K, KH, KW, SH, SW, PH, PW);
    return wino::choose_forward(s) ? "winograd" : "im2col";
}

namespace wino {

TileKernels tile_kernels() {
    switch (gemm::active_isa_id()) {  // 0 generic, 1 avx2, 2 avx512 (gemm_internal.h)
#if FASTCNN_HAVE_AVX512_BUILD
        case 2: return tile_kernels_avx512();
#endif
#if FASTCNN_HAVE_AVX2_BUILD
        case 1: return tile_kernels_avx2();
#endif
        default: return tile_kernels_generic();
    }
}

bool applicable(const conv::Shape& s) {
    return s.KH == 3 && s.KW == 3 && s.SH == 1 && s.SW == 1;
}

bool choose(const conv::Shape& s) {
    switch (static_cast<Algo>(g_algo.load())) {
        case Algo::im2col: return false;
        case Algo::winograd: return applicable(s);
        case Algo::automatic: break;
    }
    const int64_t tiles = s.N * ceil_div(s.OH, 4) * ceil_div(s.OW, 4);
    return applicable(s) && s.C >= kMinChannels && s.K >= kMinChannels && tiles >= kMinTiles;
}

bool choose_forward(const conv::Shape& s) {
    if (choose(s)) return true;
    if (static_cast<Algo>(g_algo.load()) != Algo::automatic) return false;
    const int64_t per_image = ceil_div(s.OH, 4) * ceil_div(s.OW, 4);
    return applicable(s) && s.C >= kMinChannels && s.K >= kMinChannels &&
           per_image >= kMinImageTilesForward;
}

TileGrid tile_grid(const conv::Shape& s) {
    return TileGrid{s.H, s.W, s.OH, s.OW, s.PH, s.PW, ceil_div(s.OH, 4), ceil_div(s.OW, 4)};
}

Plan make_plan(const conv::Shape& s, bool backward) {
    Plan p{};
    p.tg = tile_grid(s);
    const int64_t TH = p.tg.TH, TW = p.tg.TW, per_image = TH * TW;
    // Tiles per block: the scratch budget, in whole 32-column GEMM panels where it allows.
    int64_t target = kBlockBytes / (36 * static_cast<int64_t>(sizeof(float)) * (s.C + s.K));
    target = min64(kMaxBlockTiles, max64(kMinBlockTiles, target / 32 * 32));
    if (backward) {
        // dw slots: at most kMaxGroups, at most kPartsBytes (as conv_passes.cpp).
        const int64_t slot = s.K * s.C * 9 * static_cast<int64_t>(sizeof(float));
        // And groups of at least kMinBlockTiles tiles where there are few
        // (small images), but still 4 to share among threads.
        const int64_t by_tiles = max64(4, s.N * per_image / kMinBlockTiles);
        const int64_t max_groups =
            max64(1, min64(min64(conv::kMaxGroups, by_tiles), conv::kPartsBytes / slot));
        p.G = ceil_div(s.N, min64(s.N, max_groups));
    }
    if (per_image <= target) {
        p.images_per_block = min64(min64(kMaxBlockImages, target / per_image), s.N);
        if (backward) p.images_per_block = min64(p.images_per_block, p.G);
        p.rows_per_block = TH;
    } else {
        p.images_per_block = 1;
        p.rows_per_block = min64(TH, max64(1, target / TW));
    }
    p.Tb = p.images_per_block * p.rows_per_block * TW;
    if (!backward) p.G = p.images_per_block;
    p.groups = ceil_div(s.N, p.G);
    p.threads = static_cast<int>(min64(get_num_threads(), p.groups));
    return p;
}

}  // namespace wino
}  // namespace fastcnn

// winograd_tiles.cpp -- the Winograd tile transforms (winograd_tiles_impl.h)
// compiled for the portable path (baseline x86-64 or whatever the compiler targets).
//
// Size letters: none here (see winograd_tiles.h).
#include "winograd_tiles_impl.h"

namespace fastcnn {
namespace wino {

TileKernels tile_kernels_generic() { return kTileKernels; }

}  // namespace wino
}  // namespace fastcnn

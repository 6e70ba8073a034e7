// memory.cpp -- how glibc's malloc hands memory back to the OS, set once at import.
//
// A training step allocates and frees the same few arrays (activations,
// gradients: NumPy outputs of up to tens of MB) every mini-batch. With glibc's
// defaults (a dynamic mmap threshold, a trim threshold twice that), whether
// those blocks are kept for the next step or returned to the OS and faulted
// in again (every 4 KiB page zeroed by the kernel) depends on the order of
// the frees, so a harmless change in which layer keeps which array alive can
// multiply a run's page faults and slow it down. Fixed thresholds make the
// steady state stable:
// blocks below 64 MiB come from the heap and are reused, and the heap is
// trimmed only when 256 MiB at its top are free. The cost is that a process
// keeps up to that much freed memory for later reuse.
//
// Not done when the user set either threshold (MALLOC_MMAP_THRESHOLD_,
// MALLOC_TRIM_THRESHOLD_) or FASTCNN_MALLOC_TUNING=0, and not on other C
// libraries. build_info()["malloc_tuned"] says whether it was done.
//
// Size letters: none (no buffers here).
#include "fastcnn.h"

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace fastcnn {

namespace {
bool g_tuned = false;
constexpr int kMmapThreshold = 64 << 20;   // bytes
constexpr int kTrimThreshold = 256 << 20;  // bytes
}  // namespace

bool tune_malloc() {
#if defined(__GLIBC__)
    const char* opt_out = std::getenv("FASTCNN_MALLOC_TUNING");
    if (opt_out && std::strcmp(opt_out, "0") == 0) return false;
    if (std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("MALLOC_TRIM_THRESHOLD_")) {
        return false;
    }
    g_tuned = mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1 &&
              mallopt(M_TRIM_THRESHOLD, kTrimThreshold) == 1;
#endif
    return g_tuned;
}

bool malloc_tuned() { return g_tuned; }

}  // namespace fastcnn

// threads.cpp -- the OpenMP thread count, as fastcnn.set_num_threads() sees it.
// Maps straight onto the OpenMP runtime so OMP_NUM_THREADS and threadpoolctl
// agree with fastcnn about it. Without OpenMP everything is single-threaded.
//
// Size letters: none (no buffers here).
#include "fastcnn.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fastcnn {

void set_num_threads(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n < 1 ? 1 : n);
#else
    (void)n;
#endif
}

int get_num_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

bool openmp_enabled() {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
}

}  // namespace fastcnn

// threads.cpp -- the OpenMP thread count, as fastcnn.set_num_threads() sees it.
// Maps straight onto the OpenMP runtime so OMP_NUM_THREADS and threadpoolctl
// agree with fastcnn about it. Without OpenMP everything is single-threaded.
#include "fastcnn.h"

#include <cstdlib>  // defines __GLIBC__ on glibc systems

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__GLIBC__)
#include <malloc.h>
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

bool tune_malloc(long mmap_threshold, long trim_threshold) {
#if defined(__GLIBC__)
    // Setting either disables glibc's dynamic adjustment of both, by design.
    return mallopt(M_MMAP_THRESHOLD, static_cast<int>(mmap_threshold)) == 1 &&
           mallopt(M_TRIM_THRESHOLD, static_cast<int>(trim_threshold)) == 1;
#else
    (void)mmap_threshold;
    (void)trim_threshold;
    return false;
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

// threads.cpp -- fastcnn's thread count: how many threads the kernels'
// parallel loops use (threadpool.h), as fastcnn.set_num_threads() sees it.
//
// The count starts, at first use (the import calls get_num_threads), from the
// environment the way an OpenMP runtime reads it, so OMP_NUM_THREADS keeps
// its meaning for fastcnn without linking one:
//   OMP_NUM_THREADS  the first entry of its comma-separated list of positive
//                    integers ("4" or "4,2": 4); a value that is not such a
//                    list is ignored;
//   otherwise        the CPUs this process may run on (its affinity mask on
//                    Linux, std::thread::hardware_concurrency elsewhere);
//   OMP_THREAD_LIMIT a positive integer: the count never exceeds it, also
//                    after set_num_threads; ignored when not one.
// Every count is kept within [1, kMaxThreads]. threadpoolctl reads and sets it
// through the C functions of bindings/module.cpp.
//
// Size letters: none (no buffers here).
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <thread>

#include "fastcnn.h"

#if defined(__linux__)
#include <sched.h>
#endif

namespace fastcnn {
namespace {

// Parses one positive decimal integer starting at s (leading and trailing
// blanks allowed), as OpenMP runtimes read their variables; *end is set past
// it. Returns 0 when there is none (no digits, a sign, zero) and clamps huge
// values to kMaxThreads.
long parse_positive(const char* s, const char** end) {
    while (*s == ' ' || *s == '\t') ++s;
    if (*s < '0' || *s > '9') return 0;
    char* after = nullptr;
    const unsigned long long v = std::strtoull(s, &after, 10);   // ULLONG_MAX if huge
    s = after;
    while (*s == ' ' || *s == '\t') ++s;
    *end = s;
    if (v > static_cast<unsigned long long>(kMaxThreads)) return kMaxThreads;
    return static_cast<long>(v);
}

// OMP_NUM_THREADS's first entry, or 0 when unset or not a list of positive
// integers.
int env_num_threads() {
    const char* s = std::getenv("OMP_NUM_THREADS");
    if (!s) return 0;
    const char* end = s;
    const long first = parse_positive(s, &end);
    if (first == 0) return 0;
    while (*end == ',') {
        if (parse_positive(end + 1, &end) == 0) return 0;
    }
    return *end == '\0' ? static_cast<int>(first) : 0;
}

// OMP_THREAD_LIMIT, or kMaxThreads when unset or not a positive integer.
int env_thread_limit() {
    const char* s = std::getenv("OMP_THREAD_LIMIT");
    if (!s) return kMaxThreads;
    const char* end = s;
    const long v = parse_positive(s, &end);
    return v > 0 && *end == '\0' ? static_cast<int>(v) : kMaxThreads;
}

// The CPUs this process may run on.
int usable_cpus() {
#if defined(__linux__)
    // The mask may be larger than a cpu_set_t (machines with over 1024 CPUs):
    // grow it until the kernel accepts it.
    for (int cpus = 1024; cpus <= (1 << 20); cpus *= 2) {
        cpu_set_t* set = CPU_ALLOC(cpus);
        if (!set) break;
        const size_t bytes = CPU_ALLOC_SIZE(cpus);
        CPU_ZERO_S(bytes, set);
        const int rc = sched_getaffinity(0, bytes, set);
        const int count = rc == 0 ? CPU_COUNT_S(bytes, set) : 0;
        CPU_FREE(set);
        if (rc == 0) return count;
        if (errno != EINVAL) break;
    }
#endif
    return static_cast<int>(std::thread::hardware_concurrency());
}

int clamp_count(int n, int limit) {
    if (n > limit) n = limit;
    if (n > kMaxThreads) n = kMaxThreads;
    return n < 1 ? 1 : n;
}

int initial_count(int limit) {
    const int n = env_num_threads();
    return clamp_count(n > 0 ? n : usable_cpus(), limit);
}

struct Setting {
    const int limit = env_thread_limit();
    std::atomic<int> count{initial_count(limit)};
};

// Made at first use (thread-safe: a function-local static).
Setting& setting() {
    static Setting s;
    return s;
}

}  // namespace

void set_num_threads(int n) {
    Setting& s = setting();
    s.count.store(clamp_count(n, s.limit), std::memory_order_relaxed);
}

int get_num_threads() { return setting().count.load(std::memory_order_relaxed); }

}  // namespace fastcnn

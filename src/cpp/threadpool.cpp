// threadpool.cpp -- the worker threads behind pool::run (see threadpool.h for why).
//
// Size letters: none (parts = the pieces of one job, at most 255).
//
// One job at a time. The caller publishes the job (function, part count),
// then `claim` = (sequence number << 16 | 0) and a new `ticket` = (sequence
// number << 8 | parts) that wakes the workers. The caller and every worker
// then take parts one at a time from `claim` (a compare-and-swap that also
// checks the sequence number, so a worker that wakes late can never take a
// part of the next job) until none is left, and count down `pending` for each
// part they finish; the caller returns when pending reaches 0. Which thread
// runs which part does not change what a part computes (the split into parts
// is fixed by the part count), so results stay independent of the timing.
// Parts are claimed rather than assigned because a worker whose core is
// taken by another process may not run for milliseconds: the caller then
// runs that part itself instead of waiting for it (with a fixed assignment,
// one busy process on a core would hold up every 2-thread training step).
//
// Waiting workers spin (with the pause hint) for spin_ns, then sleep on a
// condition variable; the caller wakes sleepers only when there are any.
#include "threadpool.h"

#include <chrono>
#include <condition_variable>
#include <thread>
#include <vector>

#include <pthread.h>

#include "fastcnn.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FASTCNN_PAUSE() _mm_pause()
#else
#define FASTCNN_PAUSE() ((void)0)
#endif

namespace fastcnn {
namespace pool {
namespace {

// Idle workers spin this long before they sleep. Long: a training step's ops
// follow each other within tens of microseconds (Python between them), and a
// sleeping worker takes ~10 us to wake. Short: NumPy's BLAS threads get the
// cores between fastcnn's ops (bench/bench_dropin.py).
constexpr int64_t kLongSpinNs = 2'000'000;
constexpr int64_t kShortSpinNs = 20'000;

// initial-exec: a plain load, not a __tls_get_addr call, for these few bytes.
#if defined(__GNUC__)
#define FASTCNN_TLS __attribute__((tls_model("initial-exec")))
#else
#define FASTCNN_TLS
#endif
thread_local int tl_part FASTCNN_TLS = 0;
thread_local bool tl_inside FASTCNN_TLS = false;

int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

struct Pool {
    std::mutex caller;                   // one job at a time
    std::atomic<uint64_t> ticket{0};     // seq << 8 | parts
    std::atomic<uint64_t> claim{0};      // seq << 16 | parts taken so far
    std::atomic<int> pending{0};         // parts not yet finished
    std::atomic<int> sleepers{0};
    std::atomic<int64_t> spin_ns{kShortSpinNs};
    std::atomic<bool> busy_wait{false};
    const PartFn* job = nullptr;
    std::exception_ptr error;
    std::mutex error_lock;
    std::mutex sleep_lock;
    std::condition_variable wake;
    std::vector<std::thread> workers;

    void record(std::exception_ptr e) {
        std::lock_guard<std::mutex> g(error_lock);
        if (!error) error = e;
    }

    // Take the next part of job `seq` (of `parts`), or -1 when none is left or
    // that job is over.
    int take(uint64_t seq, int parts) {
        seq &= (uint64_t(1) << 48) - 1;   // what claim's upper 48 bits hold
        uint64_t c = claim.load(std::memory_order_acquire);
        for (;;) {
            if ((c >> 16) != seq) return -1;
            const int next = static_cast<int>(c & 0xFFFF);
            if (next >= parts) return -1;
            if (claim.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel,
                                            std::memory_order_acquire)) {
                return next;
            }
        }
    }

    // Run parts of job `seq` until none is left; returns when this thread has
    // no more to take (others may still be running theirs).
    void take_and_run(uint64_t seq, int parts) {
        for (int part; (part = take(seq, parts)) >= 0;) {
            tl_part = part;
            tl_inside = true;
            try {
                (*job)(part);
            } catch (...) {
                record(std::current_exception());
            }
            tl_inside = false;
            tl_part = 0;
            pending.fetch_sub(1, std::memory_order_acq_rel);
        }
    }

    // seen: the ticket when the worker was made (before the job it is made for).
    void worker(int w, uint64_t seen) {
        for (;;) {
            uint64_t t = ticket.load(std::memory_order_acquire);
            if (t == seen) {
                const int64_t until = now_ns() + spin_ns.load(std::memory_order_relaxed);
                for (int i = 0; (t = ticket.load(std::memory_order_acquire)) == seen; ++i) {
                    FASTCNN_PAUSE();
                    if ((i & 63) == 63 && now_ns() > until) break;
                }
            }
            if (t == seen) {
                std::unique_lock<std::mutex> lk(sleep_lock);
                sleepers.fetch_add(1, std::memory_order_seq_cst);
                wake.wait(lk, [&] {
                    t = ticket.load(std::memory_order_seq_cst);
                    return t != seen;
                });
                sleepers.fetch_sub(1, std::memory_order_relaxed);
            }
            seen = t;
            const int parts = static_cast<int>(t & 0xFF);
            if (w + 1 >= parts) continue;   // more workers than this job has parts
            take_and_run(t >> 8, parts);
        }
    }

    void grow(int n_workers) {
        while (static_cast<int>(workers.size()) < n_workers) {
            const int w = static_cast<int>(workers.size());
            const uint64_t now = ticket.load(std::memory_order_relaxed);
            workers.emplace_back([this, w, now] { worker(w, now); });
            workers.back().detach();
        }
    }
};

// Leaked on purpose: detached workers may still be waiting in it at exit.
Pool* the_pool = new Pool;

// A forked child has the memory but not the threads: start over there.
void after_fork_in_child() { the_pool = new Pool; }
const int registered = pthread_atfork(nullptr, nullptr, after_fork_in_child);

void serially(int parts, const PartFn& fn) {
    const bool was_inside = tl_inside;
    const int was_part = tl_part;
    tl_inside = true;
    for (int t = 0; t < parts; ++t) {
        tl_part = t;
        fn(t);
    }
    tl_inside = was_inside;
    tl_part = was_part;
}

}  // namespace

int max_threads() {
    const int n = get_num_threads();
    return n > 255 ? 255 : n;
}

bool in_parallel() { return tl_inside; }

int thread_num() { return tl_part; }

void set_busy_wait(bool on) {
    (void)registered;
    Pool& p = *the_pool;
    p.busy_wait.store(on);
    p.spin_ns.store(on ? kLongSpinNs : kShortSpinNs, std::memory_order_relaxed);
}

bool busy_wait() { return the_pool->busy_wait.load(); }

void run(int parts, PartFn fn) {
    if (parts > 255) parts = 255;
    Pool& p = *the_pool;
    if (parts <= 1 || tl_inside) {
        serially(parts, fn);
        return;
    }
    std::unique_lock<std::mutex> lk(p.caller, std::try_to_lock);
    if (!lk.owns_lock()) {   // another thread's job is running: do this one here
        serially(parts, fn);
        return;
    }
    p.grow(parts - 1);
    p.job = &fn;
    p.error = nullptr;
    p.pending.store(parts, std::memory_order_relaxed);
    const uint64_t seq = (p.ticket.load(std::memory_order_relaxed) >> 8) + 1;
    p.claim.store(seq << 16, std::memory_order_release);
    p.ticket.store(seq << 8 | static_cast<uint64_t>(parts), std::memory_order_seq_cst);
    if (p.sleepers.load(std::memory_order_seq_cst) > 0) {
        std::lock_guard<std::mutex> g(p.sleep_lock);
        p.wake.notify_all();
    }
    p.take_and_run(seq, parts);
    // Wait for the parts other threads took: spin briefly, then give the core
    // away while such a worker is descheduled (another process on this core).
    const int64_t start = now_ns();
    for (int i = 0; p.pending.load(std::memory_order_acquire) > 0; ++i) {
        FASTCNN_PAUSE();
        if ((i & 63) == 63 && now_ns() - start > 50'000) std::this_thread::yield();
    }
    std::exception_ptr e = p.error;
    p.error = nullptr;
    lk.unlock();
    if (e) std::rethrow_exception(e);
}

}  // namespace pool
}  // namespace fastcnn

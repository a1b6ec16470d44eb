// The parallel region behind `training.thread_split: batch` (thread_split.rs): `n` shares of a
// batch trained side by side on libtorch's own OpenMP threads, one region a step.
//
// Inside the region every libtorch operation sees omp_in_parallel() and runs inline on the thread
// that called it (ATen's parallel_for, MKL's and oneDNN's products alike), so each share is
// computed by one thread, start to finish, with no barrier between its operations and no second
// thread pool. Compiled with the kernels (build.rs), against libtorch's OpenMP runtime; without
// OpenMP the shares run one after the other on the calling thread.

#ifdef _OPENMP
#include <omp.h>
#endif

extern "C" {

// Calls job(context, i) for every i in [0, n), at once on up to n threads; returns how many
// threads ran (1 without OpenMP, or when called inside another parallel region). A thread that
// the runtime withholds leaves its shares to the others, so every share runs exactly once.
// `job` must not throw (thread_split.rs catches Rust panics inside it).
int gptbuild_thread_split(int n, void (*job)(void*, int), void* context) {
#ifdef _OPENMP
  int team = 1;
#pragma omp parallel num_threads(n)
  {
    const int size = omp_get_num_threads();
    const int me = omp_get_thread_num();
    if (me == 0) team = size;
    for (int i = me; i < n; i += size) job(context, i);
  }
  return team;
#else
  for (int i = 0; i < n; ++i) job(context, i);
  return 1;
#endif
}

}  // extern "C"

// membw measures memory-read bandwidth: T threads each stream their share of a buffer much larger
// than the last-level cache, summing it with wide loads; the best of R passes is reported as GB/s
// (10^9 bytes per second) on stdout, as JSON.
//
//   cc -O3 -march=native -pthread -o membw membw.c && ./membw [MiB=4096] [threads=2] [passes=8]
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  const uint64_t *p;
  size_t n;
  uint64_t sum;
  pthread_barrier_t *start, *end;
  int passes;
} job;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// sum_range reads n words as STREAMS interleaved sequential streams (one per quarter of the range):
// several streams in flight per thread keep more cache-line fills outstanding than one, which is
// what a GEMV over weight panels does too. Independent accumulators let the compiler use wide loads.
#define STREAMS 4
#ifdef __AVX512F__
#include <immintrin.h>
static uint64_t sum_range(const uint64_t *p, size_t n) {
  // Per stream, 256 bytes (four cache lines) per iteration into four accumulators.
  __m512i x0 = _mm512_setzero_si512(), x1 = x0, x2 = x0, x3 = x0;
  size_t sub = n / STREAMS / 32 * 32;
  for (size_t i = 0; i < sub; i += 32)
    for (int s = 0; s < STREAMS; s++) {
      const uint64_t *q = p + s * sub + i;
      x0 = _mm512_add_epi64(x0, _mm512_load_si512(q));
      x1 = _mm512_add_epi64(x1, _mm512_load_si512(q + 8));
      x2 = _mm512_add_epi64(x2, _mm512_load_si512(q + 16));
      x3 = _mm512_add_epi64(x3, _mm512_load_si512(q + 24));
    }
  return _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(x0, x1), _mm512_add_epi64(x2, x3)));
}
#else
static uint64_t sum_range(const uint64_t *p, size_t n) {
  uint64_t a[STREAMS][8] = {{0}};
  size_t sub = n / STREAMS / 8 * 8;
  for (size_t i = 0; i < sub; i += 8)
    for (int s = 0; s < STREAMS; s++)
      for (int k = 0; k < 8; k++) a[s][k] += p[s * sub + i + k];
  uint64_t t = 0;
  for (int s = 0; s < STREAMS; s++)
    for (int k = 0; k < 8; k++) t += a[s][k];
  return t;
}
#endif

static void *worker(void *arg) {
  job *j = arg;
  for (int r = 0; r < j->passes; r++) {
    pthread_barrier_wait(j->start);
    j->sum += sum_range(j->p, j->n);
    pthread_barrier_wait(j->end);
  }
  return NULL;
}

int main(int argc, char **argv) {
  size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 4096;
  int threads = argc > 2 ? atoi(argv[2]) : 2;
  int passes = argc > 3 ? atoi(argv[3]) : 8;
  size_t bytes = mib << 20, words = bytes / 8;
  uint64_t *buf = aligned_alloc(64, bytes);
  if (!buf) { fprintf(stderr, "membw: cannot allocate %zu MiB\n", mib); return 1; }
  for (size_t i = 0; i < words; i++) buf[i] = i; // touch every page
  pthread_barrier_t start, end;
  pthread_barrier_init(&start, NULL, threads + 1);
  pthread_barrier_init(&end, NULL, threads + 1);
  job *jobs = calloc(threads, sizeof(job));
  pthread_t *tids = calloc(threads, sizeof(pthread_t));
  size_t share = words / threads / (32 * STREAMS) * (32 * STREAMS);
  for (int t = 0; t < threads; t++) {
    jobs[t] = (job){buf + t * share, share, 0, &start, &end, passes};
    pthread_create(&tids[t], NULL, worker, &jobs[t]);
  }
  double best = 1e30, total = 0;
  for (int r = 0; r < passes; r++) {
    pthread_barrier_wait(&start);
    double t0 = now();
    pthread_barrier_wait(&end);
    double dt = now() - t0;
    total += dt;
    if (dt < best) best = dt;
  }
  uint64_t check = 0;
  for (int t = 0; t < threads; t++) { pthread_join(tids[t], NULL); check += jobs[t].sum; }
  double read = (double)share * 8 * threads;
  printf("{\"buffer_mib\": %zu, \"threads\": %d, \"passes\": %d, \"best_gb_per_s\": %.2f, \"mean_gb_per_s\": %.2f, \"checksum\": %llu}\n",
         mib, threads, passes, read / best / 1e9, read * passes / total / 1e9, (unsigned long long)check);
  return 0;
}

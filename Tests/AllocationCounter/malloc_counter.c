// malloc_counter.so: counts a process's heap allocations, for the
// allocation guards of `make test` (allocation_guard.py beside it).
//
//   LD_PRELOAD=.build-alloc/malloc_counter.so MALLOC_COUNTER_FILE=counts.txt program ...
//
// Every malloc, calloc, realloc of a new block, posix_memalign,
// aligned_alloc, memalign and valloc adds one to a counter; glibc's own
// allocator does the work (its `__libc_*` entry points). The total is
// written to MALLOC_COUNTER_FILE when the program exits; a program reads it
// while it runs through `malloc_counter_allocations()`, found with dlsym.
// Not for use under the sanitizers, which bring their own allocator.
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);

static atomic_ulong allocations;
static atomic_ulong frees;

unsigned long malloc_counter_allocations(void) { return atomic_load_explicit(&allocations, memory_order_relaxed); }

static inline void counted(void) { atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed); }

void *malloc(size_t size) { counted(); return __libc_malloc(size); }
void *calloc(size_t count, size_t size) { counted(); return __libc_calloc(count, size); }
void *realloc(void *pointer, size_t size) {
    if (pointer == NULL) counted();
    return __libc_realloc(pointer, size);
}
void free(void *pointer) {
    if (pointer != NULL) atomic_fetch_add_explicit(&frees, 1, memory_order_relaxed);
    __libc_free(pointer);
}
void *memalign(size_t alignment, size_t size) { counted(); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { counted(); return __libc_memalign(alignment, size); }
void *valloc(size_t size) { counted(); return __libc_valloc(size); }
int posix_memalign(void **result, size_t alignment, size_t size) {
    counted();
    void *pointer = __libc_memalign(alignment, size);
    if (pointer == NULL) return 12; // ENOMEM
    *result = pointer;
    return 0;
}

__attribute__((destructor)) static void report(void) {
    const char *path = getenv("MALLOC_COUNTER_FILE");
    if (path == NULL) return;
    FILE *file = fopen(path, "w");
    if (file == NULL) return;
    fprintf(file, "allocations %lu\nfrees %lu\n", malloc_counter_allocations(),
            atomic_load_explicit(&frees, memory_order_relaxed));
    fclose(file);
}

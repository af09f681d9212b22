/* Preloaded (before the sanitizer runtimes) into a Python process whose Jittor operators are
   built with -fsanitize=address,undefined: see bench/sanitize.py.  Two of Jittor's habits stop
   AddressSanitizer, and this library undoes them:

   1. Jittor opens its core and every operator library with RTLD_DEEPBIND, which the sanitizer
      runtimes refuse (google/sanitizers issue 611): dlopen without it.
   2. With Jittor's own memory pools off (use_sfrl_allocator=0, use_temp_allocator=0: a pool
      hides an overflow from ASan), every Var is an aligned_alloc whose size need not be a
      multiple of the alignment, which C11 forbids and ASan reports as an error: round the size
      up (an overflow into those few padding bytes goes unseen) and allocate with
      posix_memalign, which ASan intercepts too. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>

void *dlopen(const char *file, int mode) {
    static void *(*real)(const char *, int) = NULL;
    if (real == NULL) real = (void *(*)(const char *, int))dlsym(RTLD_NEXT, "dlopen");
    return real(file, mode & ~RTLD_DEEPBIND);
}

void *aligned_alloc(size_t alignment, size_t size) {
    void *p = NULL;
    size_t rounded = (size + alignment - 1) / alignment * alignment;
    return posix_memalign(&p, alignment, rounded ? rounded : alignment) == 0 ? p : NULL;
}

#include "allocator.h"

#include <malloc.h>

void layersweep_keep_freed_memory(void) {
    mallopt(M_MMAP_THRESHOLD, 512 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

// glibc allocator tuning, which Swift's Glibc module does not expose (malloc.h).
#ifndef LAYERSWEEP_ALLOCATOR_H
#define LAYERSWEEP_ALLOCATOR_H

/// Keeps large freed blocks in the heap instead of returning them to the system, so the
/// megabyte-sized activations of every batch reuse memory whose pages are already mapped, in
/// at most two heaps.
void layersweep_keep_freed_memory(void);

#endif

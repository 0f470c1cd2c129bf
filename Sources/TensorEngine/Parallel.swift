import CBLAS
import CDNNL
import Foundation
import Synchronization

/// How many threads the engine's kernels use, and the one way they fan out.
///
/// Work is always cut into chunks whose boundaries depend only on the problem size, never on the
/// thread count, and partial results are combined in chunk order. So a computation gives
/// bit-identical results with 1 or 32 threads: a sweep's numbers do not depend on how many ranks
/// share a node. BLAS itself always runs single-threaded inside each chunk (OpenBLAS's own threads
/// are slower on the small per-image GEMMs of these networks).
public enum Parallel {
    nonisolated(unsafe) private static var _threads = 1

    /// The number of worker threads kernels use.
    public static var threads: Int { _threads }

    /// Sets the engine's thread count (at least 1) and pins BLAS to one thread per call.
    public static func configure(threads: Int) {
        _threads = max(1, threads)
        openblas_set_num_threads(1)
        // Activations are megabytes; glibc would mmap and unmap each one, faulting its pages in
        // again every batch. Keep freed blocks in the heap for reuse instead.
        layersweep_keep_freed_memory()
    }

    /// The cores this process may run on (its CPU affinity mask), which under `mpirun` binding
    /// or a Slurm allocation is fewer than the machine's.
    public static var availableCores: Int {
        // Linux reports the affinity mask in /proc/self/status ("Cpus_allowed: ff,ffffffff").
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed:") }) {
            let hex = line.dropFirst("Cpus_allowed:".count).filter { $0.isHexDigit }
            let n = hex.reduce(0) { $0 + (Int(String($1), radix: 16) ?? 0).nonzeroBitCount }
            if n > 0 { return min(n, ProcessInfo.processInfo.activeProcessorCount) }
        }
        return ProcessInfo.processInfo.activeProcessorCount
    }

    /// The most threads (or local workers) a process may ask for: far more than is useful, far
    /// fewer than would exhaust the machine.
    public static var maxThreads: Int { max(256, 4 * ProcessInfo.processInfo.activeProcessorCount) }

    /// Runs `body(chunk)` for chunk in 0..<chunks, spread over the configured threads.
    /// Each chunk runs once, on whichever worker claims it first; each must write disjoint memory.
    public static func forEach(_ chunks: Int, _ body: (Int) -> Void) {
        let workers = isSerial ? 1 : min(_threads, chunks)
        if workers <= 1 {
            for i in 0..<chunks { body(i) }
            return
        }
        // One pool per thread count: loops with fewer chunks leave some helpers idle. Workers
        // claim chunks one at a time, so a thread slowed by a neighbour's load takes fewer.
        let pool = WorkerPool.forCurrentThread(helpers: _threads - 1)
        let next = Atomic<Int>(0)
        pool.run { w in
            guard w < workers else { return }
            while true {
                let i = next.add(1, ordering: .relaxed).oldValue
                if i >= chunks { return }
                body(i)
            }
        }
    }

    /// Whether this thread is inside `serially`: its loops run inline, and a batch it hands a
    /// layer is one image group already (`imageGroups`).
    public static var isSerial: Bool { pthread_getspecific(serialKey) != nil }

    /// Runs `body` with every `forEach` on this thread inline: for work that is itself one chunk
    /// of a parallel loop (an image group taken through several layers).
    public static func serially<T>(_ body: () -> T) -> T {
        let outer = pthread_getspecific(serialKey)
        pthread_setspecific(serialKey, UnsafeRawPointer(bitPattern: 1))
        defer { pthread_setspecific(serialKey, outer) }
        return body()
    }

    nonisolated(unsafe) private static let serialKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Splits 0..<total into ranges of `grain` elements (the last may be shorter).
    public static func ranges(_ total: Int, grain: Int) -> [Range<Int>] {
        guard total > 0 else { return [] }
        let g = max(1, grain)
        return stride(from: 0, to: total, by: g).map { $0..<min($0 + g, total) }
    }
}

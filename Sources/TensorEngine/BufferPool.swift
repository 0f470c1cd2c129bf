import Foundation

/// Large tensor buffers kept for reuse instead of returned to the system.
///
/// Evaluation and training allocate the same few activation sizes batch after batch. A buffer
/// that malloc hands back freshly mapped costs a page fault per 4 KB on its first write: for a
/// batch of 128 images that was 30-40% of a convolution's time (a 3.2 MB output, measured with
/// and without a fresh buffer per call). Buffers of at least `minimumBytes` are therefore kept,
/// a few per exact size and at most `limitBytes` in all, and handed out again.
enum BufferPool {
    /// Smaller buffers come from malloc's own free lists, which already reuse them.
    static let minimumBytes = 1 << 18
    /// Idle buffers kept per size: a forward pass holds about three activations of a size at once.
    static let perSize = 4
    /// The most idle bytes kept, so that the pool never holds much more than a pass's working set.
    static let limitBytes = 96 << 20

    nonisolated(unsafe) private static var idle: [Int: [UnsafeMutableRawPointer]] = [:]
    nonisolated(unsafe) private static var idleBytes = 0
    private static let lock = NSLock()

    /// A 64-byte aligned buffer of `bytes`, reused when one of that size is idle.
    static func take(bytes: Int) -> UnsafeMutableRawPointer {
        if bytes >= minimumBytes {
            lock.lock()
            if let pointer = idle[bytes]?.popLast() {
                idleBytes -= bytes
                lock.unlock()
                return pointer
            }
            lock.unlock()
        }
        return .allocate(byteCount: bytes, alignment: 64)
    }

    /// Takes back a buffer from `take`: kept when there is room, freed otherwise.
    static func give(_ pointer: UnsafeMutableRawPointer, bytes: Int) {
        if bytes >= minimumBytes {
            lock.lock()
            if idleBytes + bytes <= limitBytes, idle[bytes, default: []].count < perSize {
                idle[bytes, default: []].append(pointer)
                idleBytes += bytes
                lock.unlock()
                return
            }
            lock.unlock()
        }
        pointer.deallocate()
    }
}

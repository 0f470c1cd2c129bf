/// Reductions written with explicit SIMD accumulators: Swift does not reassociate floating-point
/// adds, so a plain `for` loop sum runs one dependent add per element.
enum VectorMath {
    /// Σ p[i].
    @inline(__always)
    static func sum(_ p: UnsafePointer<Float>, _ count: Int) -> Float {
        var a = SIMD8<Float>(), b = SIMD8<Float>()
        var i = 0
        let raw = UnsafeRawPointer(p)
        while i + 16 <= count {
            a += raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
            b += raw.loadUnaligned(fromByteOffset: 4 * i + 32, as: SIMD8<Float>.self)
            i += 16
        }
        var s = (a + b).sum()
        while i < count { s += p[i]; i += 1 }
        return s
    }

    /// (Σ (p[i] − shift), Σ (p[i] − shift)²): one pass for a mean and variance; the shift (any
    /// sample of the data) keeps the variance accurate when the mean is large.
    @inline(__always)
    static func shiftedMoments(_ p: UnsafePointer<Float>, _ count: Int, shift: Float) -> (Float, Float) {
        var s = SIMD8<Float>(), q = SIMD8<Float>()
        let k = SIMD8<Float>(repeating: shift)
        var i = 0
        let raw = UnsafeRawPointer(p)
        while i + 8 <= count {
            let d = raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self) - k
            s += d
            q += d * d
            i += 8
        }
        var (ss, qq) = (s.sum(), q.sum())
        while i < count { let d = p[i] - shift; ss += d; qq += d * d; i += 1 }
        return (ss, qq)
    }

    /// (Σ a[i], Σ a[i]·b[i]).
    @inline(__always)
    static func sumAndDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> (Float, Float) {
        var s = SIMD8<Float>(), d = SIMD8<Float>()
        var i = 0
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        while i + 8 <= count {
            let x = ra.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
            s += x
            d += x * rb.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
            i += 8
        }
        var (ss, dd) = (s.sum(), d.sum())
        while i < count { ss += a[i]; dd += a[i] * b[i]; i += 1 }
        return (ss, dd)
    }
}

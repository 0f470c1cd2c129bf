import CBLAS

/// Row-major single-precision matrix multiply through OpenBLAS:
/// `C (m×n) = alpha · op(A) · op(B) + beta · C`, with op(A) m×k and op(B) k×n.
/// Leading dimensions are those of the stored (untransposed) row-major matrices.
@inline(__always)
public func gemm(
    transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
    alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    guard m > 0, n > 0 else { return }
    if k == 0 {
        for r in 0..<m { let row = c + r * ldc; for j in 0..<n { row[j] *= beta } }
        return
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

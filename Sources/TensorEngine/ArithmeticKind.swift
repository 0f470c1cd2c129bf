import CDNNL
import Foundation

/// Which instruction sets this process's kernels run on. The engine's results are the same bits
/// on any two machines of one kind, but may differ in the last bits between kinds (an AVX-512
/// machine's oneDNN and Winograd kernels block 16 channels where an AVX2 one blocks 8 and sums in
/// another order): whatever is keyed by bits (the training store) keys this too.
public enum ArithmeticKind {
    /// "openblas haswell, onednn avx2, block 8" and the like.
    public static let current: String = {
        let isa = cdnnl_cpu_isa().map { String(cString: $0) } ?? "unknown"
        return "openblas \(BLASKernels.core.lowercased()), onednn \(isa), block \(cdnnl_block_size())"
    }()
}

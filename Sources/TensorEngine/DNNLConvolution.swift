import CDNNL
import Foundation

/// Which convolution kernels the engine runs.
public enum ConvolutionKernel: String, Sendable {
    /// oneDNN's JIT kernels in their blocked layouts (about 2x faster here), converted from and
    /// to NCHW inside each call unless the caller's tensors are blocked already.
    case oneDNN
    /// im2col + OpenBLAS sgemm: plain, portable, and the reference the tests compare against.
    case reference

    /// The process-wide choice: oneDNN unless `LAYERSWEEP_CONV=reference`.
    nonisolated(unsafe) public static var current: ConvolutionKernel =
        ProcessInfo.processInfo.environment["LAYERSWEEP_CONV"] == "reference" ? .reference : .oneDNN
}

/// oneDNN primitives for one convolution shape (a chunk of `batch` images), called on one
/// thread at a time per chunk; see Sources/CDNNL.
final class DNNLConvolution {
    private let handle: OpaquePointer

    /// `inputBlocked` / `outputBlocked`: the activations (and their gradients) the caller passes
    /// are in `BlockedLayout`'s order rather than NCHW.
    init?(batch: Int, inChannels: Int, height: Int, width: Int, outChannels: Int, kernel: Int, stride: Int,
          padding: Int, bias: Bool, inputBlocked: Bool = false, outputBlocked: Bool = false) {
        guard let h = cdnnl_conv_create(Int32(batch), Int32(inChannels), Int32(height), Int32(width), Int32(outChannels),
                                        Int32(kernel), Int32(stride), Int32(padding), bias ? 1 : 0,
                                        inputBlocked ? 1 : 0, outputBlocked ? 1 : 0) else { return nil }
        handle = h
    }

    deinit { cdnnl_conv_destroy(handle) }

    func setWeights(_ weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?) {
        check(cdnnl_conv_set_weights(handle, weights, bias), "set_weights")
    }

    func forward(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>) {
        check(cdnnl_conv_forward(handle, src, dst), "forward")
    }

    func backwardData(_ diffDst: UnsafePointer<Float>, _ diffSrc: UnsafeMutablePointer<Float>) {
        check(cdnnl_conv_backward_data(handle, diffDst, diffSrc), "backward_data")
    }

    func backwardWeights(_ src: UnsafePointer<Float>, _ diffDst: UnsafePointer<Float>,
                         _ diffWeights: UnsafeMutablePointer<Float>, _ diffBias: UnsafeMutablePointer<Float>?) {
        check(cdnnl_conv_backward_weights(handle, src, diffDst, diffWeights, diffBias), "backward_weights")
    }

    private func check(_ status: Int32, _ what: String) {
        precondition(status == 0, "oneDNN convolution \(what) failed")
    }
}

import CWinograd
import Foundation

/// Winograd F(4x4, 3x3) convolutions (Sources/CWinograd): 3x3, stride 1, padding 1, blocked
/// activations, a quarter of the direct convolution's multiplications. Evaluation runs them fused
/// with its folded batch norms; training runs its forward, backward-data and backward-weights
/// passes on them (`Conv2d`).
///
/// The results differ from the direct convolution by rounding only, within the bound that
/// `WinogradTests` derives and checks; they are the same bits for any thread count and for
/// either vector width (AVX2 or AVX-512). `LAYERSWEEP_CONV=direct` keeps oneDNN's direct
/// kernels for every layer, `LAYERSWEEP_CONV=reference` the plain path.
public enum Winograd {
    /// The process-wide switch, read once from `LAYERSWEEP_CONV`.
    nonisolated(unsafe) public static var enabled: Bool =
        !["direct", "reference"].contains(ProcessInfo.processInfo.environment["LAYERSWEEP_CONV"] ?? "")

    /// Whether a convolution of this shape runs on the Winograd kernels here.
    public static func applies(inChannels: Int, outChannels: Int, kernelSize: Int, stride: Int, padding: Int) -> Bool {
        enabled && kernelSize == 3 && stride == 1 && padding == 1 && BlockedLayout.holds(channels: inChannels)
            && BlockedLayout.holds(channels: outChannels) && winograd_available(Int32(BlockedLayout.block)) != 0
    }

    /// OIHW 3x3 weights transformed for the kernels (G g Gᵀ per kernel, in their layout), one
    /// block of output channels per task (training transforms every layer's weights each step).
    public static func transform(_ weights: [Float], inChannels: Int, outChannels: Int) -> [Float] {
        let b = BlockedLayout.block
        return [Float](unsafeUninitializedCapacity: winograd_weights_count(Int32(inChannels), Int32(outChannels))) { u, count in
            let up = u.baseAddress!
            weights.withUnsafeBufferPointer { w in
                let wp = w.baseAddress!
                Parallel.forEach((outChannels + b - 1) / b) { ob in
                    winograd_transform_weights_blocks(Int32(b), Int32(inChannels), Int32(outChannels), wp, up, Int32(ob), 1)
                }
            }
            count = u.count
        }
    }

    /// dst = relu?(conv(src) + bias [+ skip]) for a batch of blocked images of (h, w), with
    /// `weights` from `transform`: one kernel call per fixed image group, one thread each.
    static func forward(groups: [Range<Int>], inChannels: Int, outChannels: Int, height: Int, width: Int,
                        source: UnsafePointer<Float>, weights: [Float], bias: [Float],
                        skip: UnsafePointer<Float>?, relu: Bool, destination: UnsafeMutablePointer<Float>) {
        let (inSize, outSize, block) = (inChannels * height * width, outChannels * height * width, Int32(BlockedLayout.block))
        weights.withUnsafeBufferPointer { u in
            bias.withUnsafeBufferPointer { b in
                let (up, bp) = (u.baseAddress!, b.baseAddress!)
                Parallel.forEach(groups.count) { g in
                    let r = groups[g]
                    let status = winograd_forward(block, Int32(r.count), Int32(inChannels), Int32(outChannels), Int32(height),
                                                  Int32(width), source + r.lowerBound * inSize, up, bp,
                                                  skip.map { $0 + r.lowerBound * outSize }, relu ? 1 : 0,
                                                  destination + r.lowerBound * outSize)
                    precondition(status == 0, "Winograd convolution failed: its kernels or scratch memory are unavailable")
                }
            }
        }
    }

    /// The weight gradient (OIHW, overwritten into `destination`) of a 3x3 stride-1 convolution
    /// over `images` blocked images of (h, w): its input `source` and its output's gradient
    /// `gradient`, on one thread.
    static func weightGradient(images: Int, inChannels: Int, outChannels: Int, height: Int, width: Int,
                               source: UnsafePointer<Float>, gradient: UnsafePointer<Float>,
                               destination: UnsafeMutablePointer<Float>) {
        let status = winograd_weight_gradient(Int32(BlockedLayout.block), Int32(images), Int32(inChannels), Int32(outChannels),
                                              Int32(height), Int32(width), source, gradient, destination)
        precondition(status == 0, "Winograd weight gradient failed: its kernels or scratch memory are unavailable")
    }
}

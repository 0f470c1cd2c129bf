import CWinograd
import Foundation

/// A dense convolution whose output map has few positions (a network's last stages on small
/// images: 2x2, 1x1), computed per output position as one matrix product over the taps that land
/// inside the input, with the images of the whole batch as its rows.
///
/// Why: oneDNN's direct kernel, given one image group of 8 at a time, computes all nine taps of
/// a padded 3x3 kernel (on a 1x1 map eight of them read padding) and re-reads the weights for
/// every group; on a ResNet-18 at 28x28 the 2x2 and 1x1 stages took half of the evaluation.
/// Each output is the sum of its products in a fixed (tap, channel) order, so an image gets the
/// same bits in any batch, image group, chunk or thread count.
final class SmallMapConvolution {
    let inChannels, outChannels, kernelSize, stride, padding: Int
    private let weights: [Float]
    /// The bias, one value per output channel padded to whole blocks.
    private let bias: [Float]
    private let block = BlockedLayout.block
    private var plans: [[Int]: Plan] = [:]
    private let lock = NSLock()

    /// Output maps of at most this many positions take this kernel.
    static let largestMap = 4

    /// Whether a convolution of this shape on an `h` by `w` input takes this kernel on this CPU.
    static func applies(kernelSize: Int, stride: Int, padding: Int, height h: Int, width w: Int) -> Bool {
        let block = BlockedLayout.block
        guard block > 0, winograd_available(Int32(block)) == 1, kernelSize >= 1, stride >= 1 else { return false }
        let (oh, ow) = ((h + 2 * padding - kernelSize) / stride + 1, (w + 2 * padding - kernelSize) / stride + 1)
        return oh >= 1 && ow >= 1 && oh * ow <= largestMap
    }

    /// `weights` OIHW (BN folded in), `bias` one per output channel.
    init(inChannels: Int, outChannels: Int, kernelSize: Int, stride: Int, padding: Int, weights: [Float], bias: [Float]) {
        (self.inChannels, self.outChannels, self.kernelSize, self.stride, self.padding) = (inChannels, outChannels, kernelSize, stride, padding)
        self.weights = weights
        let padded = (outChannels + block - 1) / block * block
        self.bias = bias + [Float](repeating: 0, count: padded - outChannels)
    }

    /// The output positions of one input size, grouped by the taps that land inside the input
    /// (positions with the same taps share their packed weights).
    private final class Plan {
        struct Taps {
            /// Each tap's pixel offset from a position's base pixel (ky * w + kx).
            let offsets: [Int32]
            let packed: [Float]
        }
        struct Position {
            let outPixel, inBase: Int32
            let taps: Int
        }
        let outHeight, outWidth: Int
        let taps: [Taps]
        let positions: [Position]

        init(_ conv: SmallMapConvolution, height h: Int, width w: Int) {
            let k = conv.kernelSize
            (outHeight, outWidth) = ((h + 2 * conv.padding - k) / conv.stride + 1, (w + 2 * conv.padding - k) / conv.stride + 1)
            var byTaps: [[Int]: Int] = [:]
            var taps: [Taps] = []
            var positions: [Position] = []
            for oy in 0..<outHeight {
                for ox in 0..<outWidth {
                    let (y0, x0) = (oy * conv.stride - conv.padding, ox * conv.stride - conv.padding)
                    let inside = (0..<(k * k)).filter { t in (0..<h).contains(y0 + t / k) && (0..<w).contains(x0 + t % k) }
                    if byTaps[inside] == nil {
                        byTaps[inside] = taps.count
                        let block = conv.block
                        var packed = [Float](repeating: 0, count: tapgemm_packed_count(Int32(block), Int32(conv.inChannels),
                                                                                       Int32(conv.outChannels), Int32(inside.count)))
                        inside.map(Int32.init).withUnsafeBufferPointer { index in
                            packed.withUnsafeMutableBufferPointer { p in
                                tapgemm_pack(Int32(block), Int32(conv.inChannels), Int32(conv.outChannels), Int32(k), Int32(k),
                                             Int32(inside.count), index.baseAddress!, conv.weights, p.baseAddress!)
                            }
                        }
                        taps.append(Taps(offsets: inside.map { Int32($0 / k * w + $0 % k) }, packed: packed))
                    }
                    positions.append(Position(outPixel: Int32(oy * outWidth + ox), inBase: Int32(y0 * w + x0), taps: byTaps[inside]!))
                }
            }
            (self.taps, self.positions) = (taps, positions)
        }
    }

    /// min(max(conv(x) + bias [+ skip], low), high), blocked; `x` blocked, `skip` blocked in the
    /// output's shape.
    func forward(_ x: LayoutTensor, adding skip: LayoutTensor?, low: Float, high: Float) -> LayoutTensor {
        precondition(x.blocked && x.shape.count == 4 && x.shape[1] == inChannels, "a small-map convolution given \(x.shape)")
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        let plan = lock.withLock {
            if let p = plans[[h, w]] { return p }
            let p = Plan(self, height: h, width: w)
            plans[[h, w]] = p
            return p
        }
        let y = LayoutTensor.uninitializedBlocked([n, outChannels, plan.outHeight, plan.outWidth])
        if let skip { precondition(skip.blocked && skip.shape == y.shape, "residual \(skip.shape) for an output of \(y.shape)") }
        let panels = ((outChannels + block - 1) / block + 1) / 2
        // Chunks of images for the threads (any split gives the same bits): multiples of 24
        // images, whole tiles of the kernel's 6 or 12 rows, so that only the last is short.
        let chunk = Parallel.isSerial ? n : 24 * max(1, (n + 95) / 96)
        let chunks = (n + chunk - 1) / chunk
        let items = plan.positions.count * panels * chunks
        let (xp, yp, sp) = (UnsafePointer(x.storage.data), y.storage.data, skip.map { UnsafePointer($0.storage.data) })
        let (hw, ohw) = (Int32(h * w), Int32(plan.outHeight * plan.outWidth))
        bias.withUnsafeBufferPointer { b in
            Parallel.forEach(items) { item in
                let (position, rest) = (plan.positions[item / (panels * chunks)], item % (panels * chunks))
                let (panel, first) = (rest / chunks, rest % chunks * chunk)
                let taps = plan.taps[position.taps]
                let status = taps.offsets.withUnsafeBufferPointer { offsets in
                    taps.packed.withUnsafeBufferPointer { packed in
                        tapgemm_forward(Int32(block), Int32(inChannels), Int32(outChannels), hw, ohw, Int32(offsets.count), offsets.baseAddress!,
                                        position.inBase, position.outPixel, xp, packed.baseAddress!, b.baseAddress!, sp, low, high, yp,
                                        Int32(panel), Int32(first), Int32(min(chunk, n - first)))
                    }
                }
                precondition(status == 0, "small-map convolution failed")
            }
        }
        return y
    }
}

import CDNNL

/// An activation on the evaluation path: plain NCHW, or channel-blocked the way oneDNN's fast
/// kernels read and write it (n, c / B, h, w, c % B, with B = `BlockedLayout.block`, 16 with
/// AVX-512 and 8 with AVX2), so that consecutive convolutions never convert layouts. A blocked
/// activation whose channels do not fill whole blocks (24 of a MobileNetV2 stage, in blocks of
/// 16) is stored with its last block padded by zero channels, as oneDNN lays such tensors out;
/// `storage` then holds more values than the plain one, and the kernels that read it either know
/// the padding or refuse it.
public struct LayoutTensor: @unchecked Sendable {
    /// The values in the layout: (N, C, H, W) plain, or (N, C rounded up to whole blocks, H, W)
    /// blocked.
    public let storage: Tensor
    /// The logical shape: (N, C, H, W), or (N, F) for a plain flat one.
    public let shape: [Int]
    public let blocked: Bool

    /// Whether this is blocked with zero channels after the real ones.
    public var padded: Bool { blocked && storage.shape[1] != shape[1] }

    public init(plain: Tensor) {
        storage = plain
        shape = plain.shape
        blocked = false
    }

    init(blocked storage: Tensor, shape: [Int]) {
        self.storage = storage
        self.shape = shape
        blocked = true
    }

    /// A blocked activation of `shape` whose values the caller writes (a padded one's zero
    /// channels included).
    static func uninitializedBlocked(_ shape: [Int]) -> LayoutTensor {
        LayoutTensor(blocked: Tensor.uninitialized(BlockedLayout.storageShape(shape)), shape: shape)
    }

    public var bytes: Int { storage.count * MemoryLayout<Float>.stride }

    /// A copy of images `range` (images are contiguous in either layout).
    public func images(_ range: Range<Int>) -> LayoutTensor {
        let perImage = storage.count / max(shape[0], 1)
        let part = Tensor.uninitialized([range.count] + storage.shape.dropFirst())
        part.data.update(from: storage.data + range.lowerBound * perImage, count: range.count * perImage)
        return blocked ? LayoutTensor(blocked: part, shape: [range.count] + shape.dropFirst()) : LayoutTensor(plain: part)
    }

    /// An activation of `images` images shaped and laid out like `part` (one image group of
    /// it), whose values the caller writes with `write(_:at:)`.
    public static func uninitialized(images: Int, like part: LayoutTensor) -> LayoutTensor {
        let shape = [images] + part.shape.dropFirst()
        return part.blocked ? uninitializedBlocked(shape) : LayoutTensor(plain: Tensor.uninitialized(shape))
    }

    /// Copies `part` into this activation's images from `first` on.
    public func write(_ part: LayoutTensor, at first: Int) {
        precondition(part.blocked == blocked && Array(part.shape.dropFirst()) == Array(shape.dropFirst())
                     && Array(part.storage.shape.dropFirst()) == Array(storage.shape.dropFirst()) && first >= 0
                     && first + part.shape[0] <= shape[0], "an image group of \(part.shape) written into \(shape) at \(first)")
        let perImage = storage.count / max(shape[0], 1)
        (storage.data + first * perImage).update(from: part.storage.data, count: part.storage.count)
    }

    /// The same values in NCHW order (no copy when already plain).
    public var plain: Tensor {
        guard blocked else { return storage }
        let y = Tensor.uninitialized(shape)
        BlockedLayout.reorder(shape, plain: y.data, blocked: storage.data, toBlocked: false)
        return y
    }

    /// The same values blocked, for channel counts the blocked kernels take (whole blocks, or
    /// padded ones: `BlockedLayout.pads`).
    public static func blocked(from x: Tensor) -> LayoutTensor {
        let y = uninitializedBlocked(x.shape)
        BlockedLayout.reorder(x.shape, plain: x.data, blocked: y.storage.data, toBlocked: true)
        return y
    }

    /// A training tensor as an evaluation activation, keeping its layout.
    public init(tagged x: Tensor) {
        storage = x
        shape = x.shape
        blocked = x.blocked
    }
}

extension BlockedLayout {
    /// Copies between the NCHW and blocked orders of an (N, C, H, W) activation (`shape`, the
    /// logical one), image by image; the blocked side's padding channels are written as zeros.
    static func reorder(_ shape: [Int], plain: UnsafeMutablePointer<Float>, blocked: UnsafeMutablePointer<Float>,
                        toBlocked: Bool) {
        let (n, c, plane, b) = (shape[0], shape[1], shape[2] * shape[3], BlockedLayout.block)
        let stored = storageShape(shape)[1]
        Parallel.forEach(n) { i in
            for cb in 0..<(stored / b) {
                let chunk = blocked + (i * stored + cb * b) * plane
                let real = min(b, c - cb * b)  // channels of this block that exist
                for p in 0..<plane {
                    for j in 0..<real {
                        let at = (i * c + cb * b + j) * plane + p
                        if toBlocked { chunk[p * b + j] = plain[at] } else { plain[at] = chunk[p * b + j] }
                    }
                    if toBlocked { for j in real..<b { chunk[p * b + j] = 0 } }
                }
            }
        }
    }

    /// The storage shape of a blocked activation of logical `shape`: channels rounded up to
    /// whole blocks.
    static func storageShape(_ shape: [Int]) -> [Int] {
        guard shape.count == 4, block > 0 else { return shape }
        return [shape[0], (shape[1] + block - 1) / block * block, shape[2], shape[3]]
    }
}

/// The blocked layout's block size and the few non-convolution kernels a ResNet's evaluation
/// needs in it (the shortcut, a disabled branch's ReLU, the global average pool).
public enum BlockedLayout {
    /// What oneDNN's direct kernels want on this CPU (asked once): blocks of 16 channels with
    /// AVX-512, of 8 with AVX2; 0 when there is no blocked path.
    public static let block = Int(cdnnl_block_size())

    /// Whether evaluation may use blocked activations of `channels` channels: oneDNN is the
    /// selected kernel and the channels fill whole blocks.
    public static func holds(channels: Int) -> Bool {
        ConvolutionKernel.current == .oneDNN && block > 0 && channels % block == 0
    }

    /// Whether an imported graph's convolutions may keep activations of `channels` channels
    /// blocked with a zero-padded last block: more than one block's worth that does not fill
    /// whole blocks (24 channels in blocks of 16 cost a third more work, and run several times
    /// faster than on the plain path; 8 in blocks of 16 would double it).
    public static func pads(channels: Int) -> Bool {
        ConvolutionKernel.current == .oneDNN && block > 0 && channels > block && channels % block != 0
    }

    /// Whether activations of `channels` channels are kept blocked: whole blocks, or (`padding`)
    /// a zero-padded last block.
    public static func keeps(channels: Int, padding: Bool) -> Bool {
        holds(channels: channels) || padding && pads(channels: channels)
    }

    /// The option-A shortcut on a blocked input: y[:, pad + c] = x[:, c, ::s, ::s], other
    /// channels zero, with pad = (outChannels - C) / 2 (the strided pick, then the zero channels).
    public static func paddedIdentity(_ x: LayoutTensor, outChannels: Int, stride: Int) -> LayoutTensor {
        let (c, h, w) = (x.shape[1], x.shape[2], x.shape[3])
        let pad = (outChannels - c) / 2
        let picked = stride == 1 ? x : x.spatialSlice(begin: (0, 0), step: (stride, stride), count: ((h + stride - 1) / stride, (w + stride - 1) / stride))
        guard let picked, let y = picked.channelsPadded(before: pad, after: outChannels - c - pad, value: 0) else {
            preconditionFailure("option-A shortcut of \(x.shape) to \(outChannels) channels, stride \(stride), on a blocked layout")
        }
        return y
    }

    /// max(x, 0), in the same layout.
    public static func relu(_ x: LayoutTensor) -> LayoutTensor {
        let y = LayoutTensor(blocked: Tensor.uninitialized(x.storage.shape), shape: x.shape)
        let (xp, yp) = (x.storage.data, y.storage.data)
        let chunks = elementChunks(x.storage.count)
        Parallel.forEach(chunks.count) { r in
            for i in chunks[r] { yp[i] = max(xp[i], 0) }
        }
        return y
    }

    /// (N, C, H, W) blocked -> (N, C) plain: each channel's mean over its H·W positions, summed
    /// in position order as `GlobalAvgPool` does.
    public static func globalAveragePool(_ x: LayoutTensor) -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let b = block
        precondition(c % b == 0, "a global average of \(x.shape) in blocks of \(b)")
        let y = Tensor.uninitialized([n, c])
        let (src, dst, plane) = (x.storage.data, y.data, h * w)
        let scale = 1 / Float(plane)
        Parallel.forEach(n) { i in
            for cb in 0..<(c / b) {
                let s = src + (i * c + cb * b) * plane
                for j in 0..<b {
                    var sum: Float = 0
                    for p in 0..<plane { sum += s[p * b + j] }
                    dst[i * c + cb * b + j] = sum * scale
                }
            }
        }
        return y
    }
}

/// An activation kept for later in less memory, exactly: a bit per value says whether its bits
/// are all zero, and only the other values are stored. After a ReLU many values are zero
/// (ResNet-20's block outputs on Fashion-MNIST take 58-74% of their plain size), so a prefix
/// cache holds more layers in the same budget; the values come back bit for bit (a negative
/// zero is stored like any other value).
public struct CompactActivation: @unchecked Sendable {
    public let shape: [Int]
    public let blocked: Bool
    /// The layout's shape (a padded blocked activation's channels rounded up).
    private let storageShape: [Int]
    /// Bit j of word k: value 64k + j is stored (its bits are not all zero).
    private let present: [UInt64]
    private let values: [Float]

    public init(_ x: LayoutTensor) {
        shape = x.shape
        blocked = x.blocked
        storageShape = x.storage.shape
        let source = x.storage.data
        let present = CompactActivation.presence(x)
        var values = [Float](repeating: 0, count: present.reduce(0) { $0 + $1.nonzeroBitCount })
        values.withUnsafeMutableBufferPointer { out in
            CompactActivation.forEachStored(present) { index, v in out[v] = source[index] }
        }
        (self.present, self.values) = (present, values)
    }

    /// The bytes `CompactActivation(x)` would hold, without building it.
    public static func bytes(of x: LayoutTensor) -> Int {
        let present = presence(x)
        return present.count * 8 + present.reduce(0) { $0 + $1.nonzeroBitCount } * MemoryLayout<Float>.stride
    }

    /// Bytes held.
    public var bytes: Int { present.count * 8 + values.count * MemoryLayout<Float>.stride }

    /// The storage's values in order (`expanded.storage.array`, without the tensor between).
    public var storedValues: [Float] {
        var y = [Float](repeating: 0, count: storageShape.reduce(1, *))
        y.withUnsafeMutableBufferPointer { out in
            values.withUnsafeBufferPointer { stored in CompactActivation.forEachStored(present) { index, v in out[index] = stored[v] } }
        }
        return y
    }

    /// The activation, as it was.
    public var expanded: LayoutTensor {
        let y = Tensor(shape: storageShape)   // zero-filled; the stored values go on top
        values.withUnsafeBufferPointer { stored in
            CompactActivation.forEachStored(present) { index, v in y.data[index] = stored[v] }
        }
        return blocked ? LayoutTensor(blocked: y, shape: shape) : LayoutTensor(plain: y)
    }

    /// One bit per value of `x`: set where the value's bits are not all zero.
    private static func presence(_ x: LayoutTensor) -> [UInt64] {
        let (source, count) = (x.storage.data, x.storage.count)
        var present = [UInt64](repeating: 0, count: (count + 63) / 64)
        present.withUnsafeMutableBufferPointer { words in
            source.withMemoryRebound(to: UInt32.self, capacity: count) { bits in
                for k in words.indices {
                    var word: UInt64 = 0
                    for j in 0..<min(64, count - 64 * k) { word |= UInt64(bits[64 * k + j] != 0 ? 1 : 0) << UInt64(j) }
                    words[k] = word
                }
            }
        }
        return present
    }

    /// Calls `body` with (index in the activation, index among the stored values) of every
    /// stored value, in order.
    private static func forEachStored(_ present: [UInt64], _ body: (Int, Int) -> Void) {
        var v = 0
        for (k, word) in present.enumerated() {
            var w = word
            while w != 0 {
                body(64 * k + w.trailingZeroBitCount, v)
                v += 1
                w &= w - 1
            }
        }
    }
}

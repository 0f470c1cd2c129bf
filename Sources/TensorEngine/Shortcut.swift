/// The CIFAR ResNet "option A" shortcut: subsample by `stride` and zero-pad channels equally on
/// both sides, so the identity path needs no parameters when a stage widens.
public final class PaddedIdentity: Layer {
    public let inChannels: Int
    public let outChannels: Int
    public let stride: Int
    private var inputShape: [Int] = []
    private var inputBlocked = false

    public init(_ inChannels: Int, _ outChannels: Int, stride: Int) {
        precondition((outChannels - inChannels) % 2 == 0 && outChannels >= inChannels,
                     "option-A shortcut pads channels evenly: \(inChannels) -> \(outChannels)")
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.stride = stride
    }

    private var padBefore: Int { (outChannels - inChannels) / 2 }

    // x: (N, C, H, W) -> y: (N, C', ceil(H/s), ceil(W/s)), y[:, pad + c] = x[:, c, ::s, ::s], in x's layout
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        inputShape = x.shape
        inputBlocked = x.blocked
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        let ho = (h + stride - 1) / stride, wo = (w + stride - 1) / stride
        let y = Tensor.zeros([n, outChannels, ho, wo], blocked: x.blocked)
        let (from, to) = (ImageIndex(x), ImageIndex(y))
        let (src, dst, pad, s) = (x.data, y.data, padBefore, stride)
        Parallel.forEach(n) { b in
            for c in 0..<self.inChannels {
                for oy in 0..<ho {
                    for ox in 0..<wo { dst[to(b, c + pad, oy, ox)] = src[from(b, c, oy * s, ox * s)] }
                }
            }
        }
        return y
    }

    // dy: (N, C', Ho, Wo) -> dx: (N, C, H, W), zero where the subsampling skipped
    public func backward(_ dy: Tensor) -> Tensor {
        let dy = dy.inLayout(blocked: inputBlocked)
        let dx = Tensor.zeros(inputShape, blocked: inputBlocked)
        let (ho, wo) = (dy.shape[2], dy.shape[3])
        let (from, to) = (ImageIndex(dy), ImageIndex(dx))
        let (src, dst, pad, s) = (dy.data, dx.data, padBefore, stride)
        Parallel.forEach(inputShape[0]) { b in
            for c in 0..<self.inChannels {
                for oy in 0..<ho {
                    for ox in 0..<wo { dst[to(b, c, oy * s, ox * s)] = src[from(b, c + pad, oy, ox)] }
                }
            }
        }
        return dx
    }
}

/// Where value (image, channel, row, column) of an (N, C, H, W) tensor sits in its storage,
/// plain or blocked.
struct ImageIndex {
    let channels, height, width, block: Int

    init(_ t: Tensor) {
        (channels, height, width) = (t.shape[1], t.shape[2], t.shape[3])
        block = t.blocked ? BlockedLayout.block : 1
    }

    @inline(__always) func callAsFunction(_ i: Int, _ c: Int, _ y: Int, _ x: Int) -> Int {
        (i * channels + c - c % block) * height * width + (y * width + x) * block + c % block
    }
}

/// Elementwise sum of two equal-shaped tensors (the residual join); its backward is the identity
/// on both inputs, so callers route `dy` to both branches themselves.
public func add(_ a: Tensor, _ b: Tensor) -> Tensor {
    precondition(a.shape == b.shape, "add: \(a.shape) vs \(b.shape)")
    let b = b.inLayout(blocked: a.blocked)
    let y = Tensor.uninitialized(like: a)
    let (ap, bp, yp) = (a.data, b.data, y.data)
    let chunks = elementChunks(a.count)
    Parallel.forEach(chunks.count) { r in
        for i in chunks[r] { yp[i] = ap[i] + bp[i] }
    }
    return y
}

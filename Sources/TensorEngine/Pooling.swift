/// Max pooling with a square window, no padding (floor output size).
public final class MaxPool2d: Layer {
    public let kernelSize: Int
    public let stride: Int
    private var inputShape: [Int] = []
    private var argmax: [Int32] = []

    public init(kernelSize: Int, stride: Int? = nil) {
        self.kernelSize = kernelSize
        self.stride = stride ?? kernelSize
    }

    // x: (N, C, H, W) -> y: (N, C, Ho, Wo), Ho = (H - k) / s + 1
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let x = x.plain
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let ho = (h - kernelSize) / stride + 1, wo = (w - kernelSize) / stride + 1
        let y = Tensor(shape: [n, c, ho, wo])
        inputShape = x.shape
        argmax = [Int32](repeating: 0, count: y.count)
        let (xp, yp, k, s) = (x.data, y.data, kernelSize, stride)
        argmax.withUnsafeMutableBufferPointer { am in
            let amp = am.baseAddress!
            Parallel.forEach(n * c) { plane in
                let xpl = xp + plane * h * w
                let base = plane * ho * wo
                for oy in 0..<ho {
                    for ox in 0..<wo {
                        var best = -Float.infinity, bestIndex = 0
                        for ki in 0..<k {
                            for kj in 0..<k {
                                let idx = (oy * s + ki) * w + ox * s + kj
                                if xpl[idx] > best || (ki == 0 && kj == 0) { best = xpl[idx]; bestIndex = idx }
                            }
                        }
                        yp[base + oy * wo + ox] = best
                        amp[base + oy * wo + ox] = Int32(bestIndex)
                    }
                }
            }
        }
        return y
    }

    // dy: (N, C, Ho, Wo) -> dx: (N, C, H, W), gradient routed to each window's maximum
    public func backward(_ dy: Tensor) -> Tensor {
        let dx = Tensor(shape: inputShape)
        let plane = inputShape[2] * inputShape[3]
        let outPlane = dy.shape[2] * dy.shape[3]
        let (dyp, dxp) = (dy.data, dx.data)
        argmax.withUnsafeBufferPointer { am in
            let amp = am.baseAddress!
            Parallel.forEach(inputShape[0] * inputShape[1]) { p in
                for i in 0..<outPlane {
                    dxp[p * plane + Int(amp[p * outPlane + i])] += dyp[p * outPlane + i]
                }
            }
        }
        return dx
    }
}

/// Average pooling with a square window, no padding (floor output size).
public final class AvgPool2d: Layer {
    public let kernelSize: Int
    public let stride: Int
    private var inputShape: [Int] = []

    public init(kernelSize: Int, stride: Int? = nil) {
        self.kernelSize = kernelSize
        self.stride = stride ?? kernelSize
    }

    // x: (N, C, H, W) -> y: (N, C, Ho, Wo)
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let x = x.plain
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let ho = (h - kernelSize) / stride + 1, wo = (w - kernelSize) / stride + 1
        let y = Tensor(shape: [n, c, ho, wo])
        inputShape = x.shape
        let (xp, yp, k, s) = (x.data, y.data, kernelSize, stride)
        let scale = 1 / Float(k * k)
        Parallel.forEach(n * c) { p in
            let xpl = xp + p * h * w
            for oy in 0..<ho {
                for ox in 0..<wo {
                    var sum: Float = 0
                    for ki in 0..<k { for kj in 0..<k { sum += xpl[(oy * s + ki) * w + ox * s + kj] } }
                    yp[(p * ho + oy) * wo + ox] = sum * scale
                }
            }
        }
        return y
    }

    // dy: (N, C, Ho, Wo) -> dx: (N, C, H, W), each window's gradient spread evenly
    public func backward(_ dy: Tensor) -> Tensor {
        let dx = Tensor(shape: inputShape)
        let (h, w) = (inputShape[2], inputShape[3])
        let (ho, wo) = (dy.shape[2], dy.shape[3])
        let (dyp, dxp, k, s) = (dy.data, dx.data, kernelSize, stride)
        let scale = 1 / Float(k * k)
        Parallel.forEach(inputShape[0] * inputShape[1]) { p in
            let dpl = dxp + p * h * w
            for oy in 0..<ho {
                for ox in 0..<wo {
                    let g = dyp[(p * ho + oy) * wo + ox] * scale
                    for ki in 0..<k { for kj in 0..<k { dpl[(oy * s + ki) * w + ox * s + kj] += g } }
                }
            }
        }
        return dx
    }
}

/// Global average pooling: the mean of each channel's plane.
public final class GlobalAvgPool: Layer {
    private var inputShape: [Int] = []
    private var inputBlocked = false

    public init() {}

    // x: (N, C, H, W), plain or blocked -> y: (N, C), positions summed in order either way
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        (inputShape, inputBlocked) = (x.shape, x.blocked)
        if x.blocked { return BlockedLayout.globalAveragePool(LayoutTensor(tagged: x)) }
        let (n, c) = (x.shape[0], x.shape[1])
        let plane = x.count / max(n * c, 1)
        let y = Tensor(shape: [n, c])
        let scale = 1 / Float(plane)
        for p in 0..<(n * c) {
            let row = x.data + p * plane
            var s: Float = 0
            for j in 0..<plane { s += row[j] }
            y.data[p] = s * scale
        }
        return y
    }

    // dy: (N, C) -> dx: (N, C, H, W) in the input's layout
    public func backward(_ dy: Tensor) -> Tensor {
        let dx = Tensor.uninitialized(inputShape, blocked: inputBlocked)
        let plane = dx.count / max(dy.count, 1)
        let scale = 1 / Float(plane)
        let index = ImageIndex(dx)
        let (channels, dyp, dxp) = (inputShape[1], dy.data, dx.data)
        Parallel.forEach(inputShape[0]) { i in
            for c in 0..<channels {
                let g = dyp[i * channels + c] * scale
                for p in 0..<plane { dxp[index(i, c, 0, p)] = g }
            }
        }
        return dx
    }
}

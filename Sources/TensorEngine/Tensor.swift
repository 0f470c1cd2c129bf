import Foundation

/// Reference-counted, 64-byte aligned Float32 storage shared by tensors that view it; large
/// ones are recycled through `BufferPool`.
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    init(count: Int, zeroed: Bool = true) {
        self.count = count
        let raw = BufferPool.take(bytes: max(count, 1) * MemoryLayout<Float>.stride)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        if zeroed { pointer.initialize(repeating: 0, count: max(count, 1)) }
    }

    deinit { BufferPool.give(UnsafeMutableRawPointer(pointer), bytes: max(count, 1) * MemoryLayout<Float>.stride) }
}

/// A dense Float32 tensor in row-major (NCHW for images) order, or, when `blocked`, an
/// (N, C, H, W) activation in the channel-blocked order of `BlockedLayout` (training keeps a
/// ResNet's activations blocked from convolution to convolution, so oneDNN converts nothing).
///
/// Tensors have reference semantics like PyTorch's: `reshaped` shares storage, `copy()` does not.
/// Layers read and write through `data` with plain loops the optimiser can vectorise.
public struct Tensor: @unchecked Sendable {
    /// The logical shape (NCHW for images, whatever the storage order).
    public let shape: [Int]
    public let storage: TensorStorage
    /// True when the values are stored channel-blocked (n, c / B, h, w, c % B); C is then a
    /// multiple of B, so the tensor holds as many values as a plain one.
    public let blocked: Bool

    /// A zero-filled tensor of the given shape.
    public init(shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.storage = TensorStorage(count: shape.reduce(1, *))
        blocked = false
    }

    /// A tensor holding `values` (row-major) with the given shape.
    public init(shape: [Int], values: [Float]) {
        self.init(shape: shape)
        precondition(values.count == count, "\(values.count) values for shape \(shape)")
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
    }

    /// A tensor whose values are unspecified, for outputs a kernel overwrites entirely (saves a
    /// pass over megabytes of memory per layer).
    public static func uninitialized(_ shape: [Int], blocked: Bool = false) -> Tensor {
        Tensor(shape: shape, storage: TensorStorage(count: shape.reduce(1, *), zeroed: false), blocked: blocked)
    }

    /// A zero-filled tensor of `shape` in the given layout.
    public static func zeros(_ shape: [Int], blocked: Bool) -> Tensor {
        Tensor(shape: shape, storage: TensorStorage(count: shape.reduce(1, *)), blocked: blocked)
    }

    /// An uninitialised tensor shaped and laid out like `other`.
    public static func uninitialized(like other: Tensor) -> Tensor { uninitialized(other.shape, blocked: other.blocked) }

    private init(shape: [Int], storage: TensorStorage, blocked: Bool) {
        precondition(!blocked || (shape.count == 4 && BlockedLayout.block > 0 && shape[1] % BlockedLayout.block == 0),
                     "a blocked tensor needs (N, C, H, W) with C a multiple of \(BlockedLayout.block), got \(shape)")
        self.shape = shape
        self.storage = storage
        self.blocked = blocked
    }

    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }
    public var data: UnsafeMutablePointer<Float> { storage.pointer }
    public var buffer: UnsafeMutableBufferPointer<Float> { .init(start: data, count: count) }
    public var array: [Float] { Array(buffer) }

    /// The same storage seen with another shape of equal element count (a blocked tensor is
    /// made plain first: its storage order is not row-major).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        return Tensor(shape: newShape, storage: plain.storage, blocked: false)
    }

    /// A deep copy, in the same layout.
    public func copy() -> Tensor {
        let t = Tensor.uninitialized(like: self)
        t.data.update(from: data, count: count)
        return t
    }

    /// The same values in NCHW order (self when already plain).
    public var plain: Tensor {
        guard blocked else { return self }
        let y = Tensor.uninitialized(shape)
        BlockedLayout.reorder(shape, plain: y.data, blocked: data, toBlocked: false)
        return y
    }

    /// The same values blocked or plain (self when already so): what a layer does to a
    /// gradient that arrives in another layout than its output's.
    public func inLayout(blocked wanted: Bool) -> Tensor {
        if blocked == wanted { return self }
        if !wanted { return plain }
        let y = Tensor.uninitialized(shape, blocked: true)
        BlockedLayout.reorder(shape, plain: data, blocked: y.data, toBlocked: true)
        return y
    }

    public func fill(_ value: Float) { data.update(repeating: value, count: count) }

    /// Copies `other`'s values into this tensor (shapes must hold the same count).
    public func assign(_ other: Tensor) {
        precondition(other.count == count, "assign \(other.shape) into \(shape)")
        data.update(from: other.data, count: count)
    }

    public subscript(i: Int) -> Float {
        get { data[i] }
        nonmutating set { data[i] = newValue }
    }

    /// True when every element is finite (no NaN or infinity).
    public var isFinite: Bool {
        for i in 0..<count where !data[i].isFinite { return false }
        return true
    }

    /// Sum of squares, in Double for stability.
    public var sumOfSquares: Double {
        var s = 0.0
        for i in 0..<count { s += Double(data[i]) * Double(data[i]) }
        return s
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = buffer.prefix(8).map { String(format: "%.4g", $0) }.joined(separator: ", ")
        return "Tensor\(shape)[\(head)\(count > 8 ? ", ..." : "")]"
    }
}

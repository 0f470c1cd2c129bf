import Foundation

/// An ONNX model as its file holds it (the fields of onnx.proto a CNN needs): the graph, the
/// operator sets it was written for, and who wrote it.
public struct ONNXModel {
    public var irVersion: Int64 = 0
    public var producer = ""
    /// Operator set version by domain ("" is the default domain, ai.onnx).
    public var opsets: [String: Int64] = [:]
    public var graph = ONNXGraph()
    public var metadata: [String: String] = [:]

    /// Decodes a ModelProto.
    public init(_ data: Data) throws {
        var r = WireReader(data)
        var sawGraph = false
        while let (number, wire) = try r.field() {
            switch (number, wire) {
            case (1, .varint): irVersion = try r.int64()
            case (2, .lengthDelimited): producer = try r.string()
            case (7, .lengthDelimited): graph = try ONNXGraph(try r.message()); sawGraph = true
            case (8, .lengthDelimited):
                var m = try r.message()
                var domain = "", version: Int64 = 0
                while let (n, w) = try m.field() {
                    switch (n, w) {
                    case (1, .lengthDelimited): domain = try m.string()
                    case (2, .varint): version = try m.int64()
                    default: try m.skip(w)
                    }
                }
                opsets[domain == "ai.onnx" ? "" : domain] = version
            case (14, .lengthDelimited):
                let (k, v) = try ONNXModel.entry(try r.message())
                metadata[k] = v
            default: try r.skip(wire)
            }
        }
        guard sawGraph else { throw ProtobufError(message: "no graph (not an ONNX model?)") }
    }

    public init() {}

    /// A StringStringEntryProto.
    static func entry(_ reader: WireReader) throws -> (String, String) {
        var m = reader
        var key = "", value = ""
        while let (n, w) = try m.field() {
            switch (n, w) {
            case (1, .lengthDelimited): key = try m.string()
            case (2, .lengthDelimited): value = try m.string()
            default: try m.skip(w)
            }
        }
        return (key, value)
    }
}

/// A GraphProto: nodes in order, the weights, and the graph's inputs and outputs.
public struct ONNXGraph {
    public var name = ""
    public var nodes: [ONNXNode] = []
    public var initializers: [ONNXTensorProto] = []
    public var inputs: [ONNXValueInfo] = []
    public var outputs: [ONNXValueInfo] = []

    public init() {}

    init(_ reader: WireReader) throws {
        var r = reader
        while let (number, wire) = try r.field() {
            switch (number, wire) {
            case (1, .lengthDelimited): nodes.append(try ONNXNode(try r.message()))
            case (2, .lengthDelimited): name = try r.string()
            case (5, .lengthDelimited): initializers.append(try ONNXTensorProto(try r.message()))
            case (11, .lengthDelimited): inputs.append(try ONNXValueInfo(try r.message()))
            case (12, .lengthDelimited): outputs.append(try ONNXValueInfo(try r.message()))
            case (15, .lengthDelimited): throw ProtobufError(message: "sparse initializers are not supported")
            default: try r.skip(wire)
            }
        }
    }
}

/// A NodeProto: one operator application.
public struct ONNXNode {
    public var name = ""
    public var opType = ""
    public var domain = ""
    /// Input value names; "" marks an omitted optional input.
    public var inputs: [String] = []
    public var outputs: [String] = []
    public var attributes: [String: ONNXAttribute] = [:]
    /// The exporter's notes on the node (PyTorch's default exporter writes the module scope
    /// under `namespace`).
    public var metadata: [String: String] = [:]

    public init(name: String = "", opType: String, inputs: [String], outputs: [String], attributes: [String: ONNXAttribute] = [:]) {
        self.name = name
        self.opType = opType
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
    }

    init(_ reader: WireReader) throws {
        var r = reader
        while let (number, wire) = try r.field() {
            switch (number, wire) {
            case (1, .lengthDelimited): inputs.append(try r.string())
            case (2, .lengthDelimited): outputs.append(try r.string())
            case (3, .lengthDelimited): name = try r.string()
            case (4, .lengthDelimited): opType = try r.string()
            case (7, .lengthDelimited): domain = try r.string()
            case (5, .lengthDelimited):
                let (key, value) = try ONNXAttribute.decode(try r.message())
                attributes[key] = value
            case (9, .lengthDelimited):
                let (key, value) = try ONNXModel.entry(try r.message())
                metadata[key] = value
            default: try r.skip(wire)
            }
        }
    }
}

/// An AttributeProto's value.
public enum ONNXAttribute {
    case float(Float)
    case int(Int64)
    case string(String)
    case tensor(ONNXTensorProto)
    case graph(ONNXGraph)
    case floats([Float])
    case ints([Int64])
    case strings([String])
    /// A kind no supported operator takes (a type proto, sparse tensors, graphs lists): kept so
    /// that the error names the operator, not the attribute.
    case other(Int64)

    static func decode(_ reader: WireReader) throws -> (String, ONNXAttribute) {
        var r = reader
        var name = ""
        var type: Int64 = 0
        var f: Float = 0, i: Int64 = 0, s = ""
        var t: ONNXTensorProto?, g: ONNXGraph?
        var floats: [Float] = [], ints: [Int64] = [], strings: [String] = []
        while let (number, wire) = try r.field() {
            switch (number, wire) {
            case (1, .lengthDelimited): name = try r.string()
            case (20, .varint): type = try r.int64()
            case (2, .fixed32): f = try r.float()
            case (3, .varint): i = try r.int64()
            case (4, .lengthDelimited): s = try r.string()
            case (5, .lengthDelimited): t = try ONNXTensorProto(try r.message())
            case (6, .lengthDelimited): g = try ONNXGraph(try r.message())
            case (7, _): try r.floats(wire, into: &floats)
            case (8, _): try r.int64s(wire, into: &ints)
            case (9, .lengthDelimited): strings.append(try r.string())
            case (21, .lengthDelimited): throw ProtobufError(message: "attribute \(name) refers to a function's attribute (functions are not supported)")
            default: try r.skip(wire)
            }
        }
        switch type {
        case 1: return (name, .float(f))
        case 2: return (name, .int(i))
        case 3: return (name, .string(s))
        case 4: return (name, .tensor(t ?? ONNXTensorProto()))
        case 5: return (name, .graph(g ?? ONNXGraph()))
        case 6: return (name, .floats(floats))
        case 7: return (name, .ints(ints))
        case 8: return (name, .strings(strings))
        default: return (name, .other(type))
        }
    }
}

/// A ValueInfoProto: a graph input's or output's name, element type and shape (a dimension
/// may be a name, like the batch `N`, or unknown: nil).
public struct ONNXValueInfo {
    public var name = ""
    public var elementType: Int64 = 0
    public var shape: [Int64?]?

    /// A float value (element type 1) of `shape`, for graphs built in code.
    public init(name: String, shape: [Int64?]?) {
        (self.name, elementType, self.shape) = (name, 1, shape)
    }

    init(_ reader: WireReader) throws {
        var r = reader
        while let (number, wire) = try r.field() {
            switch (number, wire) {
            case (1, .lengthDelimited): name = try r.string()
            case (2, .lengthDelimited):
                var type = try r.message()
                while let (n, w) = try type.field() {
                    guard n == 1, w == .lengthDelimited else { try type.skip(w); continue }
                    var tensor = try type.message()
                    while let (tn, tw) = try tensor.field() {
                        switch (tn, tw) {
                        case (1, .varint): elementType = try tensor.int64()
                        case (2, .lengthDelimited):
                            var dims: [Int64?] = []
                            var shape = try tensor.message()
                            while let (sn, sw) = try shape.field() {
                                guard sn == 1, sw == .lengthDelimited else { try shape.skip(sw); continue }
                                var dim = try shape.message()
                                var value: Int64?
                                while let (dn, dw) = try dim.field() {
                                    if dn == 1, dw == .varint { value = try dim.int64() } else { try dim.skip(dw) }
                                }
                                dims.append(value)
                            }
                            self.shape = dims
                        default: try tensor.skip(tw)
                        }
                    }
                }
            default: try r.skip(wire)
            }
        }
    }
}

import Foundation
import SweepCore
import SweepFile
import SweepPlan
import SweepRecords

/// The coordinator-worker protocol. Workers say hello, get the sweep once, then receive tasks
/// (with any checkpoints they lack attached) and answer each with a result, until told to stop.
public enum Message: Equatable, Sendable {
    /// `engine` is the worker's `ArithmeticKind`: the training store files what it trains
    /// under the kind that trained it.
    case hello(host: String, threads: Int, engine: String = "")
    /// The sweep file's text, the content hashes of its imported checkpoints and the summaries
    /// of its imported graphs, sent once: workers need no shared filesystem. (They read the
    /// sweep's settings from it; their tasks come one by one, planned by rank 0.)
    /// `datasets` carries what rank 0 found in the sweep's own-data files (`DatasetSummary`).
    case configure(specText: String, checkpointHashes: [String: String] = [:], graphs: [String: GraphSummary] = [:],
                   datasets: [String: DatasetSummary] = [:])
    /// A worker that cannot read a dataset's files (or whose copy differs) asks for rank 0's
    /// decoded bytes, by fingerprint; it waits for `data` before running its task.
    case needData(fingerprint: String)
    case data(fingerprint: String, bytes: Data)
    /// A task of rank 0's plan, whole: workers run what they are sent and never expand the
    /// sweep. `inputs` maps dependency keys to the hashes of their artifacts; `attachments` carries the
    /// ones the worker lacks; `release` lists artifacts no remaining task needs.
    /// `resume` is the latest epoch snapshot of a training that an earlier session left unfinished.
    /// With `gang`, every member gets the same task and trains it together; the first member
    /// answers with the result, the others with `gangDone`.
    case task(WireTask, inputs: [String: String], attachments: [String: Data], release: [String], resume: Data?,
              gang: GangAssignment? = nil)
    /// A gang member other than the first has finished its part of a training.
    case gangDone(key: String)
    /// How a running task is getting on (a training's epoch line), for the coordinator to show.
    case progress(key: String, text: String)
    /// A running training's epoch snapshot, kept by the coordinator until the task finishes.
    case snapshot(key: String, data: Data)
    case result(key: String, outcome: TaskOutcome, checkpoint: Data?)
    case stop
}

/// The ranks (worker ids) that train one network together, in member order; `id` tells
/// concurrent gangs apart.
public struct GangAssignment: Codable, Equatable, Sendable {
    public let id: Int
    public let members: [Int]

    public init(id: Int, members: [Int]) {
        self.id = id
        self.members = members
    }

    /// The member that reports the training's result (and sends its epoch snapshots).
    public var leader: Int { members[0] }
}

/// Binary framing: a 4-byte little-endian header length, a JSON header, then raw blobs
/// (artifacts) whose names and sizes the header lists, so megabytes never pass through JSON.
enum MessageCodec {
    private struct Blob: Codable { var name: String; var size: Int }
    private struct Header: Codable {
        var type: String
        var host: String?
        var threads: Int?
        var engine: String?
        var specText: String?
        var checkpointHashes: [String: String]?
        var graphs: [String: GraphSummary]?
        var datasets: [String: DatasetSummary]?
        var fingerprint: String?
        var inputs: [String: String]?
        var release: [String]?
        var key: String?
        var task: WireTask?
        var outcome: TaskOutcome?
        var resume: Bool?
        var gang: GangAssignment?
        var text: String?
        var blobs: [Blob] = []
    }

    static func encode(_ message: Message) throws -> Data {
        var header: Header
        var blobs: [(String, Data)] = []
        switch message {
        case let .hello(host, threads, engine):
            header = Header(type: "hello", host: host, threads: threads)
            header.engine = engine
        case let .configure(text, hashes, graphs, datasets):
            header = Header(type: "configure", specText: text)
            header.datasets = datasets.isEmpty ? nil : datasets
            header.graphs = graphs.isEmpty ? nil : graphs
            header.checkpointHashes = hashes.isEmpty ? nil : hashes
        case let .task(task, inputs, attachments, release, resume, gang):
            header = Header(type: "task", inputs: inputs.isEmpty ? nil : inputs, release: release.isEmpty ? nil : release, key: task.key)
            header.task = task
            header.gang = gang
            blobs = attachments.sorted { $0.key < $1.key }
            if let resume { header.resume = true; blobs.append(("resume", resume)) }
        case let .snapshot(key, data):
            header = Header(type: "snapshot", key: key)
            blobs = [("snapshot", data)]
        case let .result(key, outcome, checkpoint):
            header = Header(type: "result", key: key, outcome: outcome)
            if let checkpoint { blobs = [("checkpoint", checkpoint)] }
        case let .gangDone(key): header = Header(type: "gangDone", key: key)
        case let .progress(key, text):
            header = Header(type: "progress", key: key)
            header.text = text
        case let .needData(fingerprint):
            header = Header(type: "needData")
            header.fingerprint = fingerprint
        case let .data(fingerprint, bytes):
            header = Header(type: "data")
            header.fingerprint = fingerprint
            blobs = [("data", bytes)]
        case .stop: header = Header(type: "stop")
        }
        header.blobs = blobs.map { Blob(name: $0.0, size: $0.1.count) }
        let json = try SweepJSON.encoder.encode(header)
        var out = Data(capacity: 4 + json.count + blobs.reduce(0) { $0 + $1.1.count })
        withUnsafeBytes(of: UInt32(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for (_, blob) in blobs { out.append(blob) }
        return out
    }

    static func decode(_ data: Data) throws -> Message {
        guard data.count >= 4 else { throw CodecError.malformed("message of \(data.count) bytes") }
        let bytes = [UInt8](data.prefix(4))
        let length = Int(bytes[0]) | Int(bytes[1]) << 8 | Int(bytes[2]) << 16 | Int(bytes[3]) << 24
        guard 4 + length <= data.count else { throw CodecError.malformed("header of \(length) bytes in \(data.count)") }
        let start = data.startIndex
        let header = try SweepJSON.decoder.decode(Header.self, from: data.subdata(in: (start + 4)..<(start + 4 + length)))
        var offset = start + 4 + length
        var blobs: [String: Data] = [:]
        for blob in header.blobs {
            guard blob.size >= 0, blob.size <= data.endIndex - offset else { throw CodecError.malformed("blob \(blob.name) of \(blob.size) bytes does not fit") }
            blobs[blob.name] = data.subdata(in: offset..<(offset + blob.size))
            offset += blob.size
        }
        switch header.type {
        case "hello": return .hello(host: header.host ?? "?", threads: min(max(header.threads ?? 1, 1), 4096), engine: header.engine ?? "")
        case "configure": return .configure(specText: header.specText ?? "", checkpointHashes: header.checkpointHashes ?? [:], graphs: header.graphs ?? [:],
                                            datasets: header.datasets ?? [:])
        case "needData":
            guard let fingerprint = header.fingerprint else { throw CodecError.malformed("needData without a fingerprint") }
            return .needData(fingerprint: fingerprint)
        case "data":
            guard let fingerprint = header.fingerprint, let data = blobs["data"] else { throw CodecError.malformed("data without fingerprint or bytes") }
            return .data(fingerprint: fingerprint, bytes: data)
        case "task":
            guard let task = header.task else { throw CodecError.malformed("task message without its task") }
            let key = task.key
            if let gang = header.gang, gang.members.isEmpty || gang.members.contains(where: { $0 < 0 }) || Set(gang.members).count != gang.members.count {
                throw CodecError.malformed("task \(key) names a gang of ranks \(gang.members)")
            }
            var attachments = blobs
            let resume = header.resume == true ? attachments.removeValue(forKey: "resume") : nil
            return .task(task, inputs: header.inputs ?? [:], attachments: attachments, release: header.release ?? [], resume: resume,
                         gang: header.gang)
        case "snapshot":
            guard let key = header.key, let data = blobs["snapshot"] else { throw CodecError.malformed("snapshot without key or data") }
            return .snapshot(key: key, data: data)
        case "result":
            guard let key = header.key, let outcome = header.outcome else { throw CodecError.malformed("result without key or outcome") }
            return .result(key: key, outcome: outcome, checkpoint: blobs["checkpoint"])
        case "progress":
            guard let key = header.key else { throw CodecError.malformed("progress without key") }
            return .progress(key: key, text: header.text ?? "")
        case "gangDone":
            guard let key = header.key else { throw CodecError.malformed("gangDone without key") }
            return .gangDone(key: key)
        case "stop": return .stop
        default: throw CodecError.malformed("unknown message type \(header.type)")
        }
    }
}

enum CodecError: Error, CustomStringConvertible {
    case malformed(String)
    var description: String {
        switch self { case let .malformed(m): return "malformed message: \(m)" }
    }
}

import Datasets
import Foundation
@testable import SweepCore
import StudyTestSupport
import SweepFile
@testable import SweepPlan
@testable import SweepRecords
@testable import SweepStore
import XCTest

/// The training store on its own: what names a training (its identity), and every way an entry
/// can be damaged, each caught when read.
final class TrainingStoreTests: StudyTestCase {
    var dir: URL!
    var store: TrainingStore!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        store = TrainingStore(root: dir.appendingPathComponent("store"))
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    /// A record and checkpoint bytes for `key` (the bytes differ per key).
    func entry(_ key: String, size: Int = 4096) -> (StoredTraining, Data) {
        let bytes = Data((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(key.prefix(2), radix: 16)!) })
        var outcome = TaskOutcome(status: .ok, seconds: 12.5)
        outcome.testAccuracy = 0.875
        outcome.testLoss = 0.4
        outcome.trainLoss = 0.3
        outcome.trainAccuracy = 0.9
        outcome.checkpoint = contentHash(bytes)
        let record = StoredTraining(key: key, checksum: contentHash(bytes), bytes: bytes.count, bitsVersion: TrainingIdentity.bitsVersion,
                                    engine: TrainingIdentity.engine, task: "synthetic/resnet8/seed0/train", dataset: "synthetic",
                                    model: "resnet8", seedIndex: 0, training: TrainingSection().settingsText, sweep: "s", run: "/runs/s",
                                    host: "node1", created: Date(timeIntervalSince1970: 1_800_000_000), outcome: outcome)
        return (record, bytes)
    }

    let keyA = String(repeating: "a", count: 32)
    let keyB = String(repeating: "b", count: 32)

    func checkpointURL(_ key: String) -> URL { store.entryURL(key).appendingPathComponent(TrainingStore.checkpointName) }
    func recordURL(_ key: String) -> URL { store.entryURL(key).appendingPathComponent(TrainingStore.recordName) }

    /// The lookup's result as text: "hit", "miss" or the damage line.
    func look(_ key: String) -> String {
        switch store.lookup(key) {
        case .hit: return "hit"
        case .miss: return "miss"
        case let .damaged(why): return why
        }
    }

    func testAStoredTrainingComesBackWithItsOutcome() throws {
        let (record, bytes) = entry(keyA)
        XCTAssertEqual(look(keyA), "miss")
        try store.store(record, checkpoint: bytes)
        guard case let .hit(found, data) = store.lookup(keyA) else { return XCTFail("not found") }
        XCTAssertEqual(data, bytes)
        XCTAssertEqual(found.outcome, record.outcome)
        XCTAssertEqual(found.origin, "store aaaaaaaaaaaa, trained by sweep s in /runs/s on node1, 2027-01-15T08:00:00Z")
        XCTAssertEqual(StoredTraining.runOf(found.origin), "sweep s in /runs/s")
        // A second store of the same training (another sweep, at the same time) keeps the first.
        try store.store(record, checkpoint: bytes)
        XCTAssertEqual(store.list().map(\.key), [keyA])
        XCTAssertTrue(try FileManager.default.contentsOfDirectory(atPath: store.temporaryURL.path).isEmpty, "no staging copy is left behind")
    }

    func testATruncatedCheckpointIsDroppedWithOneLine() throws {
        let (record, bytes) = entry(keyA)
        try store.store(record, checkpoint: bytes)
        try bytes.prefix(1000).write(to: checkpointURL(keyA))
        let line = look(keyA)
        XCTAssertTrue(line.contains("is damaged") && line.contains("1000 bytes where 4096 were stored") && line.contains("trained again"), line)
        XCTAssertFalse(line.contains("\n"))
        XCTAssertEqual(look(keyA), "miss", "the damaged entry was removed")
    }

    func testSwappedCheckpointsAreCaughtByTheirHash() throws {
        for key in [keyA, keyB] {
            let (record, bytes) = entry(key)
            try store.store(record, checkpoint: bytes)
        }
        let a = try Data(contentsOf: checkpointURL(keyA)), b = try Data(contentsOf: checkpointURL(keyB))
        try b.write(to: checkpointURL(keyA))
        try a.write(to: checkpointURL(keyB))
        for key in [keyA, keyB] { XCTAssertTrue(look(key).contains("do not have their recorded hash"), key) }
        XCTAssertTrue(store.list().isEmpty)
    }

    func testAnEntryUnderAnotherKeysNameIsRefused() throws {
        let (record, bytes) = entry(keyA)
        try store.store(record, checkpoint: bytes)
        try FileManager.default.moveItem(at: store.entryURL(keyA), to: store.entryURL(keyB))
        XCTAssertTrue(look(keyB).contains("its record names key aaaaaaaaaaaa"))
    }

    func testAnotherEnginesEntryIsNotServed() throws {
        var (record, bytes) = entry(keyA)
        record.engine = "openblas skylakex, onednn cpu_isa_avx512_core, block 16 (not this machine)"
        try store.store(record, checkpoint: bytes)
        XCTAssertTrue(look(keyA).contains("made by another engine"))
        (record, bytes) = entry(keyA)
        record.bitsVersion = TrainingIdentity.bitsVersion + 1
        try store.store(record, checkpoint: bytes)
        XCTAssertTrue(look(keyA).contains("made by another engine"))
    }

    func testHostileRecordsAreDamageNotCrashes() throws {
        let (record, bytes) = entry(keyA)
        let good = try JSONEncoder.store.encode(record)
        let cases: [(String, Data)] = [
            ("garbage", Data("{not json".utf8)),
            ("empty", Data()),
            ("negative size", Data(String(decoding: good, as: UTF8.self).replacingOccurrences(of: "\"bytes\" : 4096", with: "\"bytes\" : -5").utf8)),
            ("accuracy above 1", Data(String(decoding: good, as: UTF8.self).replacingOccurrences(of: "0.875", with: "7.5").utf8)),
            ("path as key", Data(String(decoding: good, as: UTF8.self).replacingOccurrences(of: keyA, with: "../../etc").utf8)),
            ("huge", Data(repeating: 0x20, count: TrainingStore.maxRecordBytes + 1)),
        ]
        for (name, text) in cases {
            try store.store(record, checkpoint: bytes)
            try text.write(to: recordURL(keyA))
            let line = look(keyA)
            XCTAssertTrue(line.contains("is damaged"), "\(name): \(line)")
            XCTAssertFalse(line.contains("\n"), name)
            XCTAssertEqual(look(keyA), "miss", name)
        }
        XCTAssertEqual(look("../" + keyA), "miss", "a key that is not one never reaches a path")
    }

    func testAStoreThatCannotBeWrittenThrowsOneLine() throws {
        // Where the store's directories should be, a file: nothing can be created under it.
        try FileManager.default.createDirectory(at: store.root, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: store.entriesURL)
        let (record, bytes) = entry(keyA)
        XCTAssertThrowsError(try store.store(record, checkpoint: bytes)) { error in XCTAssertFalse("\(error)".contains("\n")) }
        var wrong = record
        wrong.checksum = keyB
        XCTAssertThrowsError(try TrainingStore(root: dir.appendingPathComponent("other")).store(wrong, checkpoint: bytes), "a record must describe its bytes")
    }

    func testPruneGoesByAgeThenLeastRecentlyUsed() throws {
        let keys = ["1", "2", "3", "4"].map { String(repeating: $0, count: 32) }
        let now = Date()
        for (i, key) in keys.enumerated() {
            let (record, bytes) = entry(key, size: 1000)
            try store.store(record, checkpoint: bytes)
            // Last used i days ago.
            try FileManager.default.setAttributes([.modificationDate: now.addingTimeInterval(-Double(i) * 86_400 - 60)], ofItemAtPath: store.entryURL(key).path)
        }
        let size = store.list()[0].bytes
        XCTAssertGreaterThan(size, 1000)
        XCTAssertEqual(store.list().map(\.key), keys, "most recently used first")
        var (removed, freed) = try store.prune(olderThan: 2.5 * 86_400, maxBytes: nil, now: now)
        XCTAssertEqual(removed.map(\.key), [keys[3]])
        XCTAssertEqual(freed, size)
        (removed, _) = try store.prune(olderThan: nil, maxBytes: 2 * size, now: now)
        XCTAssertEqual(removed.map(\.key), [keys[2]])
        // A hit marks its entry as used: the oldest becomes the newest.
        guard case .hit = store.lookup(keys[1]) else { return XCTFail("stored") }
        (removed, _) = try store.prune(olderThan: nil, maxBytes: size, now: Date())
        XCTAssertEqual(removed.map(\.key), [keys[0]])
        XCTAssertEqual(try store.remove(prefixes: [String(keys[1].prefix(6))]), [keys[1]])
        XCTAssertThrowsError(try store.remove(prefixes: ["abcd"]))
    }

    func testTheStoreIsChosenFlagThenFileThenEnvironment() {
        let env = ["HOME": "/home/u", "LAYERSWEEP_CACHE": "/scratch/store"]
        XCTAssertNil(TrainingStore.resolve(disabled: true, setting: "/x", environment: env))
        XCTAssertEqual(TrainingStore.resolve(disabled: false, setting: "/x", environment: env)?.root.path, "/x")
        XCTAssertNil(TrainingStore.resolve(disabled: false, setting: "off", environment: env))
        XCTAssertEqual(TrainingStore.resolve(disabled: false, setting: nil, environment: env)?.root.path, "/scratch/store")
        XCTAssertNil(TrainingStore.resolve(disabled: false, setting: nil, environment: ["LAYERSWEEP_CACHE": "off"]))
        XCTAssertEqual(TrainingStore.resolve(disabled: false, setting: nil, environment: ["HOME": "/home/u"])?.root.path, "/home/u/.cache/layersweep")
        XCTAssertEqual(TrainingStore.resolve(disabled: false, setting: nil, environment: ["HOME": "/home/u", "XDG_CACHE_HOME": "/c"])?.root.path, "/c/layersweep")
    }

    func testTheSweepFilesCacheFieldTakesADirectoryOrFalse() throws {
        func cache(_ value: String) throws -> String? { try SpecLoader.parse("name: t\ndatasets: [synthetic]\nmodels: [resnet8]\ncache: \(value)\n", file: "t.yaml").cache }
        XCTAssertEqual(try cache("false"), "off")
        XCTAssertEqual(try cache("off"), "off")
        XCTAssertEqual(try cache("/scratch/store"), "/scratch/store")
        XCTAssertNil(try cache("true"), "true: the default store")
        XCTAssertThrowsError(try cache("''")) { XCTAssertTrue("\($0)".contains("cache"), "\($0)") }
        XCTAssertNil(try SpecLoader.parse("name: t\ndatasets: [synthetic]\nmodels: [resnet8]\n", file: "t.yaml").cache)
    }

    // MARK: - Identity

    func identities(_ text: String) throws -> [String: String] {
        var spec = try SpecLoader.parse(text, file: "s.yaml")
        try ImportedDatasets.read(&spec)
        return try TrainingIdentity.of(try Plan.expand(spec)).mapValues(\.key)
    }

    let zeroing = """
    name: a
    study: zeroing
    seed: 3
    datasets: [{name: synthetic, train_limit: 64, test_limit: 32}]
    models: [resnet8]
    seeds: 2
    training: {epochs: 2, batch_size: 16, learning_rate: 0.05}
    """

    func testTheSameTrainingHasOneKeyWhateverTheFileAroundIt() throws {
        let base = try identities(zeroing)
        XCTAssertEqual(base.count, 2)
        XCTAssertEqual(Set(base.values).count, 2, "two seeds, two trainings")
        let reordered = try identities("""
        training: {learning_rate: 0.05, batch_size: 16, epochs: 2}
        models: [resnet8]
        seeds: 2
        datasets: [{test_limit: 32, train_limit: 64, name: synthetic}]
        study: sensitivity
        seed: 3
        name: another-name
        output: elsewhere
        """)
        XCTAssertEqual(reordered, base, "another study, name and key order: the same trainings")
        XCTAssertEqual(try identities(zeroing + "\nmasks: [randomInit]\nlayers: [fc]"), base, "masks and layers do not touch the training")
    }

    func testEveryInputOfATrainingChangesItsKey() throws {
        let base = try identities(zeroing)
        let key = "synthetic/resnet8/seed0/train"
        for (change, text) in [
            ("one training field", zeroing.replacingOccurrences(of: "epochs: 2", with: "epochs: 3")),
            ("the sweep seed", zeroing.replacingOccurrences(of: "seed: 3", with: "seed: 4")),
            ("the dataset's size", zeroing.replacingOccurrences(of: "train_limit: 64", with: "train_limit: 65")),
            ("the test batch", zeroing + "\nevaluation: {batch_size: 100}"),
            ("the model", zeroing.replacingOccurrences(of: "[resnet8]", with: "[resnet14]").replacingOccurrences(of: "resnet8", with: "resnet14")),
            ("the model's normalization", zeroing.replacingOccurrences(of: "[resnet8]", with: "[{name: resnet8, normalization: {mean: [0.5], std: [0.25]}}]")),
        ] {
            let other = try identities(text)
            XCTAssertNotEqual(other[key] ?? other.values.first, base[key], change)
        }
        let teacher = try identities(zeroing.replacingOccurrences(of: "study: zeroing", with: "study: distill")
                                     + "\ndistillation: {conv_layers: [1], budgets: [100000], teacher_training: {epochs: 5, batch_size: 16, learning_rate: 0.05}}")
        XCTAssertNotEqual(teacher[key], base[key], "a teacher trained longer")
    }

    /// The dataset is named by what its files hold: one byte changes the key.
    func testOneChangedByteOfADatasetFileChangesTheKey() throws {
        let data = dir.appendingPathComponent("tiny")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        func write(pixel: UInt8) throws {
            var train = (0..<(40 * 64)).map { UInt8(truncatingIfNeeded: $0 &* 13) }
            train[5] = pixel
            try IDX.write(data.appendingPathComponent("train-images-idx3-ubyte").path, dimensions: [40, 8, 8], bytes: train)
            try IDX.write(data.appendingPathComponent("train-labels-idx1-ubyte").path, dimensions: [40], bytes: (0..<40).map { UInt8($0 % 2) })
            try IDX.write(data.appendingPathComponent("t10k-images-idx3-ubyte").path, dimensions: [10, 8, 8], bytes: (0..<640).map { UInt8($0 % 256) })
            try IDX.write(data.appendingPathComponent("t10k-labels-idx1-ubyte").path, dimensions: [10], bytes: (0..<10).map { UInt8($0 % 2) })
        }
        let text = """
        name: t
        datasets: [{name: tiny, format: idx, train: \(data.path)}]
        models: [fcn-16]
        training: {epochs: 1, batch_size: 8}
        """
        try write(pixel: 1)
        let first = try identities(text)
        XCTAssertEqual(try identities(text), first)
        try write(pixel: 2)
        let changed = try identities(text)
        XCTAssertEqual(first.count, 1)
        XCTAssertNotEqual(Set(first.values), Set(changed.values))
    }
}

import Datasets
import Foundation
@testable import SweepCore
import StudyTestSupport
import SweepFile
@testable import SweepPlan
import XCTest

/// Own-data entries in sweep files: every field decoded, every mistake named on one line, and
/// task keys that carry the data's fingerprint.
final class OwnDataSpecTests: StudyTestCase {
    func parse(_ text: String) throws -> SweepSpec { try SpecLoader.parse(text, file: "own.yaml") }

    func error(_ datasets: String, line: UInt = #line) -> String {
        do {
            _ = try parse("name: t\ndatasets:\n\(datasets)\nmodels: [resnet20]\n")
            XCTFail("expected an error", line: line)
            return ""
        } catch {
            let message = "\(error)"
            XCTAssertFalse(message.contains("\n"), message, line: line)
            return message
        }
    }

    func testEveryOwnDataFieldIsRead() throws {
        let spec = try parse("""
        name: t
        datasets:
          - {name: pets, format: imagefolder, train: data/train, test: data/val, resize: 36, center_crop: [32, 30], channels: 3,
             normalization: {mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]},
             augment: {random_crop: {size: 32, padding: 4}, horizontal_flip: true}}
          - {name: arrays, format: npy, train: [x.npy, y.npy], test: [xt.npy, yt.npy], layout: nhwc}
          - {name: keras, format: npz, train: m.npz, test: m.npz, x_key: images, y_key: labels}
          - {name: c100, format: cifar100, data_dir: cifar-100-binary, labels: coarse}
          - {name: pets-two, base: pets, classes: [0, 1]}
        models: [resnet20]
        """)
        let pets = try XCTUnwrap(spec.datasets[0].declaredSource)
        XCTAssertEqual(pets.format, .imagefolder)
        XCTAssertEqual(pets.train, ["data/train"])
        XCTAssertEqual(pets.test, ["data/val"])
        XCTAssertEqual(pets.preprocessing, Preprocessing(resize: [36], centerCrop: [32, 30]))
        XCTAssertEqual(pets.channels, 3)
        XCTAssertEqual(spec.datasets[0].augment, Augmentation(randomCrop: .init(size: 32, padding: 4), horizontalFlip: true))
        XCTAssertEqual(spec.datasets[1].declaredSource?.train, ["x.npy", "y.npy"])
        XCTAssertEqual(spec.datasets[1].declaredSource?.layout, .nhwc)
        XCTAssertEqual(spec.datasets[2].declaredSource?.imagesKey, "images")
        XCTAssertEqual(spec.datasets[3].declaredSource?.train, ["cifar-100-binary"])
        XCTAssertEqual(spec.datasets[3].declaredSource?.labels, .coarse)
        XCTAssertEqual(spec.sourceEntry(of: spec.datasets[4])?.name, "pets", "a derived entry reads its base's files")
    }

    func testMistakesNameTheirField() {
        XCTAssertTrue(error("  - {name: a, format: imagefolder, train: t}").contains("datasets[0].test"))
        XCTAssertTrue(error("  - {name: a, format: imagefolder, train: t}").contains("is required"))
        XCTAssertTrue(error("  - {name: a, format: imagefolder, train: t, test: v, channels: 4}").contains("channels must be 1 or 3"))
        XCTAssertTrue(error("  - {name: a, format: npz, train: t.npz, test: v.npz, labels: coarse}").contains("labels applies to cifar100 only"))
        XCTAssertTrue(error("  - {name: a, format: npy, train: x.npy, test: [a.npy, b.npy]}").contains("train lists the image and label .npy files"))
        XCTAssertTrue(error("  - {name: a, format: imagefolder, train: t, test: v, x_key: x}").contains("x_key applies to npz only"))
        XCTAssertTrue(error("  - {name: a, format: imagefolder, train: t, test: v, resize: 0}").contains("resize is a size N or [height, width]"))
        XCTAssertTrue(error("  - {name: a, format: imagefolder, train: t, test: v, base: fashion-mnist}").contains("cannot both be given"))
        XCTAssertTrue(error("  - {name: a, train: t}").contains("train needs format:"))
        XCTAssertTrue(error("  - {name: a, format: imagefolder, train: t, test: v}\n  - {name: b, base: a, resize: 10}").contains("belongs on the dataset a"))
        XCTAssertTrue(error("  - {name: a, format: imagefolder, train: t, test: v, normalization: {mean: [0.5], std: [0]}}").contains("normalization is mean and std"))
        XCTAssertTrue(error("  - {name: a, format: imagefolder, train: t, test: v, augment: {random_crop: {size: 32, padding: 40}}}").contains("augment random_crop"))
        XCTAssertTrue(error("  - {name: a, format: tfrecord, train: t, test: v}").contains("datasets[0].format"))
    }

    func testKeysCarryTheFingerprintOfOwnDataOnly() throws {
        var spec = try parse("""
        name: t
        datasets: [{name: mine, format: npz, train: a.npz, test: b.npz}, {name: part, base: mine, classes: [0, 1]}, synthetic]
        models: [resnet20]
        seeds: 1
        masks: [zeroKernel]
        """)
        let summary = DatasetSummary(fingerprint: String(repeating: "ab", count: 16), shape: [3, 8, 8], classes: 4, train: 40, test: 20)
        spec.datasetSummaries = ["mine": summary, "part": summary]
        let plan = try Plan.expand(spec)
        XCTAssertTrue(plan.tasks.filter { $0.dataset == "mine" }.allSatisfy { $0.key.hasPrefix("mine@abababababab/") })
        XCTAssertTrue(plan.tasks.filter { $0.dataset == "part" }.allSatisfy { $0.key.hasPrefix("part@abababababab/") })
        XCTAssertTrue(plan.tasks.filter { $0.dataset == "synthetic" }.allSatisfy { $0.key.hasPrefix("synthetic/") }, "built-in data keeps its keys")
        let train = try XCTUnwrap(plan.tasks.first { $0.dataset == "mine" && $0.kind == .train })
        XCTAssertEqual(train.cost, Plan.trainingCost(macs: try Plan.measure("resnet20", on: spec.datasets[0]).0, on: spec.datasets[0].description, epochs: spec.training.epochs))
        XCTAssertEqual(spec.datasets[1].description.classes, 2)
        XCTAssertEqual(spec.datasets[0].description.shape, [3, 8, 8], "costs use the shape the coordinator found")
    }
}

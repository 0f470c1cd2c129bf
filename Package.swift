// swift-tools-version:6.0
import PackageDescription

/// Numeric code is built for AVX2 + FMA (any x86-64 cluster node of the last decade); without a
/// target CPU, Swift lowers SIMD FMAs to a libm call per lane.
#if arch(x86_64)
let numericFlags: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"])]
#else
let numericFlags: [SwiftSetting] = []
#endif

let package = Package(
    name: "layersweep",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "sweep", targets: ["sweep"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
    ],
    targets: [
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev"])]),
        .target(name: "CDNNL", linkerSettings: [.linkedLibrary("dnnl"), .linkedLibrary("gomp")]),
        .target(name: "CImageCodecs", linkerSettings: [.linkedLibrary("png16"), .linkedLibrary("jpeg")]),
        .target(name: "CWinograd", exclude: ["kernel.inc", "depthwise.inc", "tapgemm.inc"]),
        .target(name: "TensorEngine", dependencies: ["CBLAS", "CDNNL", "CWinograd"], exclude: ["README.md"],
                swiftSettings: numericFlags),
        .target(name: "Models", dependencies: ["TensorEngine", "Yams"], exclude: ["README.md"], swiftSettings: numericFlags),
        .target(name: "Datasets", dependencies: ["TensorEngine", "CZlib", "CImageCodecs"], exclude: ["README.md"],
                swiftSettings: numericFlags),
        .target(name: "ONNX", dependencies: ["TensorEngine"], exclude: ["README.md"], swiftSettings: numericFlags),
        .target(name: "Rendering", exclude: ["README.md"]),
        .target(name: "PairedStatistics", dependencies: ["Rendering"], exclude: ["README.md"]),
        .target(name: "Procedures", dependencies: ["TensorEngine", "Models", "Datasets", "ONNX"],
                exclude: ["README.md"], swiftSettings: numericFlags),
        .target(name: "SweepFile", dependencies: [
            "Procedures", "PairedStatistics", "Rendering", "Models", "Datasets", "TensorEngine", "ONNX", "Yams",
        ], exclude: ["README.md"], swiftSettings: numericFlags),
        .target(name: "SweepPlan", dependencies: [
            "SweepFile", "Procedures", "PairedStatistics", "Rendering", "Models", "Datasets", "TensorEngine", "ONNX",
            .product(name: "HeapModule", package: "swift-collections"),
        ], exclude: ["README.md"], swiftSettings: numericFlags),
        .target(name: "SweepRecords", dependencies: [
            "SweepPlan", "SweepFile", "Procedures", "PairedStatistics", "Rendering", "Models", "Datasets", "TensorEngine", "ONNX",
        ], exclude: ["README.md"], swiftSettings: numericFlags),
        .target(name: "SweepCore", dependencies: [
            "SweepRecords", "SweepPlan", "SweepFile",
            "Procedures", "PairedStatistics", "Rendering", "Models", "Datasets", "TensorEngine", "ONNX", "Yams",
            .product(name: "HeapModule", package: "swift-collections"),
        ], exclude: ["README.md"], swiftSettings: numericFlags),
        .target(name: "SweepStore", dependencies: ["SweepRecords", "SweepPlan", "SweepCore", "SweepFile", "Rendering", "Procedures", "Models", "TensorEngine"],
                exclude: ["README.md"], swiftSettings: numericFlags),
        .target(name: "SweepReport", dependencies: ["SweepRecords", "SweepPlan", "SweepStore", "SweepCore", "SweepFile", "Rendering", "Procedures"],
                exclude: ["README.md"]),
        .target(name: "Studies", dependencies: ["SweepRecords", "SweepPlan", "SweepReport", "SweepCore", "SweepFile", "PairedStatistics", "Rendering", "Procedures",
                                                "Models", "Datasets", "TensorEngine", "ONNX"],
                exclude: ["README.md"], swiftSettings: numericFlags),
        .target(name: "Cluster", dependencies: ["SweepRecords", "SweepPlan", "SweepReport", "SweepStore", "SweepCore", "SweepFile", "Rendering", "CMPI", "TensorEngine"],
                exclude: ["README.md"]),
        .executableTarget(name: "sweep", dependencies: [
            "TensorEngine", "Models", "Datasets", "Procedures", "PairedStatistics", "Rendering", "SweepFile", "SweepPlan",
            "SweepRecords", "SweepCore", "SweepStore", "SweepReport", "Studies", "Cluster", "ONNX",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], exclude: ["README.md"], swiftSettings: numericFlags),
        .target(name: "EngineTestSupport", dependencies: ["TensorEngine"], path: "Tests/EngineTestSupport"),
        .target(name: "StudyTestSupport", dependencies: ["Studies", "SweepFile", "SweepRecords", "SweepPlan"], path: "Tests/StudyTestSupport"),
        .testTarget(name: "TensorEngineTests", dependencies: ["TensorEngine", "CWinograd", "EngineTestSupport"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "TensorEngine", "EngineTestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "TensorEngine", "EngineTestSupport"],
                    exclude: ["Fixtures/make_resize_fixtures.py", "Fixtures/make_image_fixtures.py"],
                    resources: [.copy("Fixtures/images"), .copy("Fixtures/resize_fixtures.json")]),
        .testTarget(name: "ONNXTests", dependencies: ["ONNX", "TensorEngine", "Datasets", "EngineTestSupport"],
                    exclude: ["Fixtures/make_onnx_fixtures.py"], resources: [.copy("Fixtures/exports")]),
        .testTarget(name: "ProceduresTests", dependencies: ["Procedures", "Models", "Datasets", "TensorEngine", "EngineTestSupport"],
                    exclude: ["Fixtures/pytorch_resnet.py"]),   // run from its path by the tests
        .testTarget(name: "SweepCoreTests", dependencies: ["Studies", "SweepCore", "SweepRecords", "SweepPlan",
                                                           "SweepFile", "PairedStatistics", "Rendering",
                                                           "Procedures", "TensorEngine", "StudyTestSupport",
                                                           "EngineTestSupport"]),
        .testTarget(name: "PairedStatisticsTests", dependencies: ["SweepCore", "SweepFile", "PairedStatistics",
                                                                  "StudyTestSupport"]),
        .testTarget(name: "SweepFileTests", dependencies: ["Studies", "SweepCore", "SweepPlan", "SweepFile",
                                                           "Procedures", "Datasets", "StudyTestSupport"]),
        .testTarget(name: "SweepStoreTests", dependencies: ["SweepStore", "SweepCore", "SweepRecords", "SweepPlan",
                                                            "SweepFile", "Datasets", "StudyTestSupport"]),
        .testTarget(name: "StudiesTests", dependencies: ["Studies", "SweepReport", "SweepCore", "SweepRecords",
                                                         "SweepPlan", "SweepFile", "Rendering", "Procedures",
                                                         "Datasets", "Models", "TensorEngine", "StudyTestSupport"]),
        .testTarget(name: "ClusterTests", dependencies: ["Cluster", "Studies", "SweepStore", "SweepCore",
                                                         "SweepRecords", "SweepPlan", "SweepFile", "TensorEngine",
                                                         "StudyTestSupport"]),
        .testTarget(name: "sweepTests", dependencies: ["sweep", "Studies", "SweepStore", "SweepCore", "SweepFile",
                                                       "Procedures", "Datasets", "Models", "TensorEngine",
                                                       "StudyTestSupport"],
                    exclude: ["Fixtures/fashion_formats.py"]),   // run from its path by the tests
    ],
    swiftLanguageModes: [.v5]
)

import Foundation

/// The JSON every file and message of a run is written in: sorted keys, ISO-8601 dates and
/// non-finite numbers as strings ("inf", "nan"), so a journal line or a results file reads back
/// into the same values.
public enum SweepJSON {
    /// Shared coders (JSON with ISO-8601 dates and non-finite numbers as strings).
    public static let encoder = makeEncoder()
    public static let decoder = makeDecoder()

    public static func makeEncoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .iso8601
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }

    public static func makeDecoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }
}

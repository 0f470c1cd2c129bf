import Foundation

/// One field of a sweep-file section: its key and the property it fills. The property's own
/// declaration (with its doc comment and default value) is the other half; decoding, encoding
/// and the keys a section accepts all follow from the section's list of settings, so a new
/// field is a property and one line.
public struct Setting<Section>: @unchecked Sendable {
    public let key: String
    let decode: (inout Section, KeyedDecodingContainer<SettingKey>) throws -> Void
    let encode: (Section, inout KeyedEncodingContainer<SettingKey>) throws -> Void

    public init<Value: Codable>(_ key: String, _ path: WritableKeyPath<Section, Value>) {
        self.key = key
        let codingKey = SettingKey(key)
        decode = { section, c in
            // An absent key keeps the property's declared default.
            if let value = try c.decodeIfPresent(Value.self, forKey: codingKey) { section[keyPath: path] = value }
        }
        encode = { section, c in
            // An optional without a value is left out, as Swift's own encoding does.
            let value = section[keyPath: path]
            if let optional = value as? OptionalSetting, optional.isNone { return }
            try c.encode(value, forKey: codingKey)
        }
    }
}

extension Setting {
    /// A list that may also be written as its one element (`train: a.npz` or `train: [a.npz, b.npz]`).
    public init<Element: Codable>(_ key: String, oneOrMany path: WritableKeyPath<Section, [Element]?>) {
        self.key = key
        let codingKey = SettingKey(key)
        decode = { section, c in
            if let one = try? c.decodeIfPresent(Element.self, forKey: codingKey) {
                section[keyPath: path] = [one]
            } else if let many = try c.decodeIfPresent([Element].self, forKey: codingKey) {
                section[keyPath: path] = many
            }
        }
        encode = { section, c in try c.encodeIfPresent(section[keyPath: path], forKey: codingKey) }
    }
}

/// Lets `Setting` see whether an optional property holds a value.
protocol OptionalSetting { var isNone: Bool { get } }
extension Optional: OptionalSetting { var isNone: Bool { self == nil } }

/// A sweep-file key (snake_case, as users write it): a setting's, or a study section's.
public struct SettingKey: CodingKey {
    public let stringValue: String
    public init(_ key: String) { stringValue = key }
    public init?(stringValue: String) { self.stringValue = stringValue }
    public var intValue: Int? { nil }
    public init?(intValue: Int) { nil }
}

/// A section whose fields are declared once as properties with defaults, and listed in
/// `settings` with their keys.
public protocol SettingsSection: Codable {
    init()
    static var settings: [Setting<Self>] { get }
}

extension SettingsSection {
    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: SettingKey.self)
        for setting in Self.settings { try setting.decode(&self, c) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: SettingKey.self)
        for setting in Self.settings { try setting.encode(self, &c) }
    }

    /// The keys the section accepts, in declaration order (unknown ones are errors).
    public static var keys: [String] { settings.map(\.key) }
}

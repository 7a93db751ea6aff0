/// A reversible rewrite of a build's JSON that lets deflate see what Buildkite's GraphQL ids repeat.
///
/// Every build, job and pipeline object carries a `graphql_id`, the base64 of `Kind---{uuid}` ("Job---…"):
/// fifty-odd characters that deflate cannot relate to the same UUID in `id` just before them, so in a
/// compressed build they cost about as much as everything else of the job. Packed, such a value is written
/// as a NUL byte and the decoded text (`"graphql_id":"\0Job---{uuid}"`), which deflate then mostly refers back
/// to. JSON never holds a raw NUL byte (strings must escape control characters), so unpacking finds exactly
/// what packing wrote; JSON that holds one anyway is not packed.
enum GraphQLIDs {
  private static let key = Array(#""graphql_id":""#.utf8)
  private static let spacedKey = Array(#""graphql_id": ""#.utf8)
  private static let marker: UInt8 = 0

  /// The JSON with each canonical base64 `graphql_id` that decodes to printable ASCII packed, or nil when
  /// nothing was packed.
  static func pack(_ json: [UInt8]) -> [UInt8]? {
    guard !json.contains(marker) else { return nil }
    var output: [UInt8] = []
    output.reserveCapacity(json.count)
    var index = 0
    var packed = false
    while index < json.count {
      guard let start = valueStart(json, at: index) else {
        output.append(json[index])
        index += 1
        continue
      }
      output.append(contentsOf: json[index..<start])
      index = start
      guard let end = json[start...].firstIndex(of: UInt8(ascii: "\"")),
        let decoded = Base64.decode(json[start..<end]),
        decoded.allSatisfy({ $0 >= 0x20 && $0 < 0x7f && $0 != 0x22 && $0 != 0x5c }),
        Base64.encode(decoded) == Array(json[start..<end])
      else { continue }
      output.append(marker)
      output.append(contentsOf: decoded)
      index = end
      packed = true
    }
    return packed ? output : nil
  }

  /// The JSON `pack` was given.
  static func unpack(_ packed: [UInt8]) -> [UInt8] {
    var output: [UInt8] = []
    output.reserveCapacity(packed.count + packed.count / 4)
    var index = 0
    while index < packed.count {
      if packed[index] == marker, let end = packed[(index + 1)...].firstIndex(of: UInt8(ascii: "\"")) {
        output.append(contentsOf: Base64.encode(Array(packed[(index + 1)..<end])))
        index = end
      } else {
        output.append(packed[index])
        index += 1
      }
    }
    return output
  }

  /// Where a `graphql_id` string value starts, when the key (with or without a space after its colon) starts at
  /// `index`.
  private static func valueStart(_ json: [UInt8], at index: Int) -> Int? {
    guard json[index] == UInt8(ascii: "\"") else { return nil }
    for candidate in [key, spacedKey] where json[index...].starts(with: candidate) {
      return index + candidate.count
    }
    return nil
  }
}

/// Standard base64 (RFC 4648, with `=` padding), only as much as `GraphQLIDs` needs.
enum Base64 {
  private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
  private static let values: [UInt8] = {
    var table = [UInt8](repeating: 0xff, count: 256)
    for (value, character) in alphabet.enumerated() { table[Int(character)] = UInt8(value) }
    return table
  }()

  static func encode(_ bytes: [UInt8]) -> [UInt8] {
    var output: [UInt8] = []
    output.reserveCapacity((bytes.count + 2) / 3 * 4)
    var index = 0
    while index < bytes.count {
      let count = min(3, bytes.count - index)
      var group: UInt32 = 0
      for offset in 0..<3 { group = group << 8 | UInt32(offset < count ? bytes[index + offset] : 0) }
      for offset in 0..<4 {
        output.append(offset <= count ? alphabet[Int(group >> (18 - 6 * UInt32(offset)) & 0x3f)] : UInt8(ascii: "="))
      }
      index += 3
    }
    return output
  }

  /// The bytes, or nil for text that is not base64 with its padding.
  static func decode(_ text: ArraySlice<UInt8>) -> [UInt8]? {
    guard !text.isEmpty, text.count % 4 == 0 else { return nil }
    let padding = text.reversed().prefix { $0 == UInt8(ascii: "=") }.count
    guard padding <= 2 else { return nil }
    var output: [UInt8] = []
    output.reserveCapacity(text.count / 4 * 3)
    var group: UInt32 = 0
    var bits = 0
    for character in text.dropLast(padding) {
      let value = values[Int(character)]
      guard value != 0xff else { return nil }
      group = group << 6 | UInt32(value)
      bits += 6
      if bits >= 8 {
        bits -= 8
        output.append(UInt8(truncatingIfNeeded: group >> UInt32(bits)))
      }
    }
    return output
  }
}

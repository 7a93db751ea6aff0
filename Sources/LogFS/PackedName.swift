import ObjectStore

/// A name as the inode table keeps it. Most names of an archive are UUIDs (an organisation's,
/// pipeline's and build's directories, and `{job}.log` files), which as text take 36 or 40 bytes
/// on the heap besides the string itself: a UUID in its canonical form (lowercase hex, hyphens
/// after the 8th, 12th, 16th and 20th digit), alone or followed by ".log", is kept as its 16 bytes.
/// Any other name is kept as it is. A name packs one way only, so two names are the same bytes
/// exactly when they pack the same.
enum PackedName: Sendable {
  case uuid(UInt64, UInt64)
  case uuidLog(UInt64, UInt64)
  case text(String)

  private static let logSuffix = Array(".log".utf8)
  private static let hexDigits = Array("0123456789abcdef".utf8)

  init(_ name: String) {
    let packed: PackedName?? = name.utf8.withContiguousStorageIfAvailable { Self.pack($0) }
    self = (packed ?? Self.pack(Array(name.utf8))) ?? .text(name)
  }

  private static func pack(_ bytes: some Collection<UInt8>) -> PackedName? {
    let count = bytes.count
    guard count == 36 || count == 40 else { return nil }
    var high: UInt64 = 0
    var low: UInt64 = 0
    var digits = 0
    for (position, byte) in bytes.enumerated() {
      if position >= 36 {
        guard byte == logSuffix[position - 36] else { return nil }
        continue
      }
      if position == 8 || position == 13 || position == 18 || position == 23 {
        guard byte == UInt8(ascii: "-") else { return nil }
        continue
      }
      let digit: UInt8
      switch byte {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
      case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
      default: return nil
      }
      if digits < 16 { high = high << 4 | UInt64(digit) } else { low = low << 4 | UInt64(digit) }
      digits += 1
    }
    return count == 36 ? .uuid(high, low) : .uuidLog(high, low)
  }

  /// Passes the name's bytes to `body`, without making a string of a packed name.
  func withBytes<Result>(_ body: (UnsafeBufferPointer<UInt8>) -> Result) -> Result {
    switch self {
    case .text(let text):
      var text = text
      return text.withUTF8(body)
    case .uuid(let high, let low), .uuidLog(let high, let low):
      let count = isLog ? 40 : 36
      return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 40) { buffer in
        Self.write(high, low, isLog: isLog, into: buffer)
        return body(UnsafeBufferPointer(rebasing: buffer[..<count]))
      }
    }
  }

  private var isLog: Bool {
    if case .uuidLog = self { true } else { false }
  }

  private static func write(_ high: UInt64, _ low: UInt64, isLog: Bool, into buffer: UnsafeMutableBufferPointer<UInt8>)
  {
    var position = 0
    for digit in 0..<32 {
      if position == 8 || position == 13 || position == 18 || position == 23 {
        buffer[position] = UInt8(ascii: "-")
        position += 1
      }
      let half = digit < 16 ? high : low
      let shift = UInt64(60 - 4 * (digit % 16))
      buffer[position] = hexDigits[Int(half >> shift & 0xF)]
      position += 1
    }
    if isLog {
      for (offset, byte) in logSuffix.enumerated() { buffer[36 + offset] = byte }
    }
  }

  var string: String {
    switch self {
    case .text(let text): text
    default: withBytes { String(decoding: $0, as: UTF8.self) }
    }
  }

  /// Whether the two are the same bytes.
  static func same(_ a: PackedName, _ b: PackedName) -> Bool {
    switch (a, b) {
    case (.uuid(let h1, let l1), .uuid(let h2, let l2)), (.uuidLog(let h1, let l1), .uuidLog(let h2, let l2)):
      h1 == h2 && l1 == l2
    case (.text(let x), .text(let y)): sameBytes(x, y)
    default: false
    }
  }

  /// S3's key order (by UTF-8 bytes). Two packed names compare as their numbers do, since hex
  /// digits and the hyphens' places sort that way; a name before the same one with ".log".
  static func precedes(_ a: PackedName, _ b: PackedName) -> Bool {
    switch (a, b) {
    case (.uuid(let h1, let l1), .uuid(let h2, let l2)), (.uuidLog(let h1, let l1), .uuidLog(let h2, let l2)):
      return (h1, l1) < (h2, l2)
    case (.uuid(let h1, let l1), .uuidLog(let h2, let l2)):
      return (h1, l1) <= (h2, l2)
    case (.uuidLog(let h1, let l1), .uuid(let h2, let l2)):
      return (h1, l1) < (h2, l2)
    case (.text(let x), .text(let y)):
      return utf8Less(x, y)
    default:
      return a.withBytes { a in b.withBytes { b in a.lexicographicallyPrecedes(b) } }
    }
  }
}

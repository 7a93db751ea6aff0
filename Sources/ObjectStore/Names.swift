// Keys and names by their bytes, as S3 and the kernel take them.

/// Whether `text` begins with the bytes of `prefix`, as S3 matches a prefix. (`hasPrefix` compares
/// characters: to it "caf\u{E9}" begins with "cafe\u{301}", and "cafe\u{301}" does not begin with "cafe".)
public func hasBytePrefix(_ text: String, _ prefix: String) -> Bool {
  text.utf8.starts(with: prefix.utf8)
}

/// S3's key order: by UTF-8 bytes.
public func utf8Less(_ a: String, _ b: String) -> Bool {
  a.utf8.lexicographicallyPrecedes(b.utf8)
}

/// Whether two names or keys are the same bytes (`==` on `String` is canonical equivalence).
public func sameBytes(_ a: String, _ b: String) -> Bool {
  var a = a
  var b = b
  return a.withUTF8 { a in b.withUTF8 { b in a.elementsEqual(b) } }
}

/// Feeds the string's UTF-8 bytes, then an end marker, to `hasher`: a hash that agrees with `sameBytes`.
public func hashBytes(of string: String, into hasher: inout Hasher) {
  var string = string
  string.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
  hasher.combine(0xFF as UInt8)  // never a byte of UTF-8: ends the string
}

/// A name or key compared and hashed by its UTF-8 bytes. Swift's `String` equality is Unicode
/// canonical equivalence: "caf\u{E9}" == "cafe\u{301}", though S3 and the kernel take them for two
/// different names. Dictionaries of names or keys use this instead, so that one never stands for
/// the other.
public struct ExactName: Hashable, Sendable, CustomStringConvertible {
  public let string: String

  public init(_ string: String) { self.string = string }

  public static func == (a: ExactName, b: ExactName) -> Bool { sameBytes(a.string, b.string) }

  public func hash(into hasher: inout Hasher) { hashBytes(of: string, into: &hasher) }

  public var description: String { string }
}

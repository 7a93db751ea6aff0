import ObjectStore
import Testing

@testable import LogFS

/// `PackedName` keeps a UUID name as 16 bytes: whatever the name, it must give back the same bytes,
/// and compare and match as the bytes do (S3's key order, `sameBytes`).
@Suite struct PackedNameTests {
  static let uuid = "0190f1c2-7a3b-4c5d-8e9f-a0b1c2d3e4f5"

  @Test func uuidNamesArePackedAndOthersKeptAsText() {
    let packed: [String] = [
      Self.uuid, Self.uuid + ".log", "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff.log",
    ]
    for name in packed {
      if case .text = PackedName(name) { Issue.record("\(name) was not packed") }
      #expect(PackedName(name).string == name)
    }
    let text: [String] = [
      Self.uuid.uppercased(), Self.uuid + ".LOG", Self.uuid + ".txt", Self.uuid + ".log.gz",
      "0190f1c2a7a3b-4c5d-8e9f-a0b1c2d3e4f5",
      String(Self.uuid.dropLast()) + "g", String(Self.uuid.dropLast()), "", "build-1", "caf\u{E9}",
    ]
    for name in text {
      guard case .text(let kept) = PackedName(name) else {
        Issue.record("\(name) was packed")
        continue
      }
      #expect(sameBytes(kept, name))
    }
  }

  /// Random names near the packed forms (UUIDs with and without ".log", one byte changed, cut short,
  /// a prefix of another, non-ASCII), against each other.
  @Test(arguments: Array(UInt64(1)...20)) func namesCompareAndMatchAsTheirBytes(seed: UInt64) {
    var random = SeededGenerator(seed: seed)
    let hex = Array("0123456789abcdef")
    func name() -> String {
      var uuid = String((0..<32).map { _ in hex[Int.random(in: 0..<16, using: &random)] })
      if Bool.random(using: &random) { uuid = "0190f1c2" + uuid.dropFirst(8) }  // shared prefixes
      for position in [8, 13, 18, 23] { uuid.insert("-", at: uuid.index(uuid.startIndex, offsetBy: position)) }
      switch Int.random(in: 0..<8, using: &random) {
      case 0: return uuid
      case 1, 2: return uuid + ".log"
      case 3: return String(uuid.prefix(Int.random(in: 0...36, using: &random)))
      case 4: return uuid + [".lo", ".logs", "/", ".log\u{E9}"][Int.random(in: 0..<4, using: &random)]
      case 5:
        var bytes = Array(uuid.utf8)
        bytes[Int.random(in: 0..<bytes.count, using: &random)] =
          [UInt8(ascii: "A"), UInt8(ascii: "-"), 0x7E, 0x2F][Int.random(in: 0..<4, using: &random)]
        return String(decoding: bytes, as: UTF8.self)
      case 6: return "\u{E9}" + uuid.dropFirst()
      default: return String(Int.random(in: 0..<100_000, using: &random))
      }
    }
    let names = (0..<300).map { _ in name() }
    for a in names {
      #expect(sameBytes(PackedName(a).string, a))
      for b in names.prefix(60) {
        let (x, y) = (PackedName(a), PackedName(b))
        #expect(PackedName.precedes(x, y) == utf8Less(a, b), "\(a) < \(b)")
        #expect(PackedName.same(x, y) == sameBytes(a, b), "\(a) == \(b)")
      }
    }
  }
}

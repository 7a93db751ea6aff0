import Digests
import Testing

@Suite struct DigestsTests {
  @Test func sha256OfKnownStrings() {
    #expect(SHA256.hexHash("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    #expect(SHA256.hexHash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
  }

  @Test func hmacMatchesRFC4231Case2() {
    let mac = HMACSHA256.authenticationCode(key: Array("Jefe".utf8), message: "what do ya want for nothing?")
    #expect(hex(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
  }

  @Test func crc32MatchesTheCheckValue() {
    // The standard check value of CRC-32 over "123456789".
    #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
    #if arch(x86_64)
      #expect(CRC32C.isAvailable, "every x86-64 processor since 2008 has SSE 4.2")
    #endif
    if CRC32C.isAvailable {
      // The check value of CRC-32C (RFC 3720), whole and in pieces of every length up to 8 and more.
      #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
      let text = Array("The quick brown fox jumps over the lazy dog, twice over".utf8)
      for split in 0...text.count {
        let first = text[..<split].withUnsafeBytes { CRC32C.checksum($0) }
        let both = text[split...].withUnsafeBytes { CRC32C.checksum($0, continuing: first) }
        #expect(both == CRC32C.checksum(text))
      }
      #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
    }
    let whole = CRC32.checksum(Array("123456789".utf8))
    let first = Array("1234".utf8).withUnsafeBytes { CRC32.checksum($0) }
    let both = Array("56789".utf8).withUnsafeBytes { CRC32.checksum($0, continuing: first) }
    #expect(both == whole)
  }

  /// Buffers long enough for the three-lane path (3 x 8 KiB and more), at lengths around its
  /// boundaries and from unaligned starts, against CRC-32C computed a bit at a time.
  @Test(arguments: [24_575, 24_576, 24_577, 49_152 + 13, 100_003, 1 << 20, (1 << 20) + 7])
  func crc32cOfLongBuffersMatchesTheBitwiseDefinition(length: Int) {
    guard CRC32C.isAvailable else { return }
    var seed: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(length)
    let bytes = (0..<length + 3).map { _ -> UInt8 in
      seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return UInt8(truncatingIfNeeded: seed >> 33)
    }
    for start in [0, 3] {
      let data = Array(bytes[start..<start + length])
      #expect(CRC32C.checksum(data) == bitwiseCRC32C(data), "length \(length) from offset \(start)")
    }
    let split = length / 3 + 5
    let first = bytes[..<split].withUnsafeBytes { CRC32C.checksum($0) }
    let rest = bytes[split..<length].withUnsafeBytes { CRC32C.checksum($0, continuing: first) }
    #expect(rest == bitwiseCRC32C(Array(bytes[..<length])))
  }
}

/// CRC-32C by its definition (reflected polynomial 0x82F63B78), one bit at a time.
private func bitwiseCRC32C(_ bytes: [UInt8]) -> UInt32 {
  var crc: UInt32 = 0xFFFF_FFFF
  for byte in bytes {
    crc ^= UInt32(byte)
    for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
  }
  return ~crc
}

@Suite struct GzipTests {
  /// `printf 'hello, build exports\n' | gzip -n`
  let sample: [UInt8] = [
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0xd7, 0x51, 0x48, 0x2a,
    0xcd, 0xcc, 0x49, 0x51, 0x48, 0xad, 0x28, 0xc8, 0x2f, 0x2a, 0x29, 0xe6, 0x02, 0x00, 0x85, 0x0b, 0xfc, 0xa0, 0x15,
    0x00, 0x00, 0x00,
  ]

  @Test func decompressesAndChecks() throws {
    #expect(Gzip.isGzip(sample))
    #expect(try Gzip.decompress(sample, limit: 1 << 20) == Array("hello, build exports\n".utf8))
  }

  @Test func refusesDamageTruncationAndBombs() {
    #expect(throws: GzipError.self) { try Gzip.decompress(Array(sample.dropLast(5)), limit: 1 << 20) }
    var damaged = sample
    damaged[15] ^= 0xff
    #expect(throws: GzipError.self) { try Gzip.decompress(damaged, limit: 1 << 20) }
    #expect(throws: GzipError.self) { try Gzip.decompress(sample, limit: 5) }
    #expect(throws: GzipError.self) { try Gzip.decompress(Array("not gzip".utf8), limit: 1 << 20) }
  }
}

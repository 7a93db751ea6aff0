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

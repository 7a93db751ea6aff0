import Digests
import Testing

@Suite struct DeflateTests {
  let record = Array(String(repeating: "{\"id\":\"x\",\"type\":\"script\",\"state\":\"passed\"},", count: 40).utf8)

  @Test func roundTripsWithAndWithoutADictionary() throws {
    let dictionary = Array("{\"id\":\"\",\"type\":\"script\",\"state\":\"passed\"}".utf8)
    for dictionary in [[], dictionary] {
      for bytes in [[], record, Array(0...255)] {
        let compressed = Deflate.compress(bytes, dictionary: dictionary)
        #expect(try Deflate.decompress(compressed, dictionary: dictionary, limit: bytes.count) == bytes)
      }
    }
    let plain = Deflate.compress(record).count
    #expect(Deflate.compress(record, dictionary: Array(record.prefix(45))).count < plain)
  }

  @Test func refusesAnotherDictionaryDamageAndBombs() throws {
    let compressed = Deflate.compress(record, dictionary: Array("abc".utf8))
    #expect(throws: GzipError.self) { try Deflate.decompress(compressed, limit: 1 << 20) }
    #expect(throws: GzipError.self) {
      try Deflate.decompress(compressed, dictionary: Array("abd".utf8), limit: 1 << 20)
    }
    let plain = Deflate.compress(record)
    #expect(throws: GzipError.self) { try Deflate.decompress(Array(plain.dropLast(3)), limit: 1 << 20) }
    #expect(throws: GzipError.self) { try Deflate.decompress(plain + [0], limit: 1 << 20) }
    #expect(throws: GzipError.self) { try Deflate.decompress(plain, limit: record.count - 1) }
    #expect(try Deflate.decompress(plain, limit: record.count) == record)
  }
}

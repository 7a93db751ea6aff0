import Digests
import Foundation
import TestSupport
import Testing

/// Build exports are gzip files from a bucket: whatever they hold, `Gzip.decompress` gives the bytes
/// or a `GzipError` in plain words, within its limit (doc/SEMANTICS.md, "Malformed responses").
@Suite struct GzipHostileInputTests {
  func seed(_ name: String) throws -> [UInt8] {
    try #require(try FuzzCorpus.inputs("FuzzGzip").first { $0.name == "seed-\(name)" }).bytes
  }

  @Test func everyKeptFuzzInputIsBytesOrAClearError() throws {
    let inputs = try FuzzCorpus.inputs("FuzzGzip")
    #expect(inputs.count >= 5)
    for (name, bytes) in inputs {
      do throws(GzipError) {
        #expect(try Gzip.decompress(bytes, limit: 1 << 20).count <= 1 << 20, "\(name)")
      } catch {
        #expect(!error.description.isEmpty)
      }
    }
    #expect(try Gzip.decompress(try seed("text.gz"), limit: 1 << 20) == Array("hello, build exports\n".utf8))
    #expect(try Gzip.decompress(try seed("empty.gz"), limit: 0) == [])
    #expect(try Gzip.decompress(try seed("zeros.gz"), limit: 200_000) == [UInt8](repeating: 0, count: 200_000))
  }

  @Test func cutAtEveryByteIsRefusedAndAFlippedByteNeverChangesTheOutput() throws {
    let whole = try seed("build.json.gz")
    let expected = try Gzip.decompress(whole, limit: 1 << 20)
    for length in 0..<whole.count {
      #expect(throws: GzipError.self, "cut to \(length) bytes") {
        try Gzip.decompress(Array(whole[..<length]), limit: 1 << 20)
      }
    }
    // The checksum and length in the trailer catch damage to the data; only header fields zlib
    // does not check (time, flags for the OS) may change without changing the output.
    for index in 0..<whole.count {
      var damaged = whole
      damaged[index] ^= 0x10
      if let output = try? Gzip.decompress(damaged, limit: 1 << 20) {
        #expect(output == expected, "byte \(index) flipped gave other bytes")
      }
    }
  }

  @Test func membersAreReadInTurnAndTrailingBytesAreDamage() throws {
    let two = try seed("two-members.gz")
    #expect(try Gzip.decompress(two, limit: 100) == Array("one\ntwo\n".utf8))
    #expect(throws: GzipError.self) { try Gzip.decompress(two, limit: 7) }
    let text = try seed("text.gz")
    for trailer: [UInt8] in [[0], [0x1f], Array("garbage".utf8), [0x1f, 0x8b]] {
      #expect(throws: GzipError.self, "\(trailer)") { try Gzip.decompress(text + trailer, limit: 1 << 20) }
    }
  }

  @Test func theLimitIsExact() throws {
    let zeros = try seed("zeros.gz")
    #expect(try Gzip.decompress(zeros, limit: 200_000).count == 200_000)
    #expect {
      try Gzip.decompress(zeros, limit: 199_999)
    } throws: { error in
      (error as? GzipError)?.description == "the gzip data expands past 199999 bytes"
    }
  }

  /// 100 MB of zeros compress to about 100 KB: refused at the exports' limit of 64 MiB.
  @Test func aBombIsRefusedAtTheLimit() throws {
    let gzip = Process()
    gzip.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    gzip.arguments = [
      "python3", "-c", "import gzip, sys; sys.stdout.buffer.write(gzip.compress(bytes(100_000_000), 1))",
    ]
    let output = Pipe()
    gzip.standardOutput = output
    try gzip.run()
    let bomb = Array(output.fileHandleForReading.readDataToEndOfFile())
    gzip.waitUntilExit()
    #expect(bomb.count < 1_000_000)
    #expect {
      try Gzip.decompress(bomb, limit: 64 << 20)
    } throws: { error in
      (error as? GzipError)?.description == "the gzip data expands past 67108864 bytes"
    }
  }
}

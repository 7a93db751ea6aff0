import Foundation
import LogText
import TestSupport
import Testing

private func plainBytes(_ log: [UInt8], timestamps: Bool = false) -> [UInt8] {
  PlainTextRenderer.text(of: log, options: PlainTextOptions(timestamps: timestamps))
}

private func plain(_ log: [UInt8], timestamps: Bool = false) -> String {
  String(decoding: plainBytes(log, timestamps: timestamps), as: UTF8.self)
}

private func plain(_ log: String, timestamps: Bool = false) -> String {
  plain(Array(log.utf8), timestamps: timestamps)
}

/// The logs of the shared test data (real logs from terminal-to-html's fixtures), by name.
private func realLogs() throws -> [(name: String, bytes: [UInt8])]? {
  guard let folder = TestData.require("buildkite/logs") else { return nil }
  let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".raw") }.sorted()
  #expect(names.count >= 5, "too few logs in \(folder.path)")
  return try names.map { ($0, Array(try Data(contentsOf: folder.appendingPathComponent($0)))) }
}

@Suite struct PlainTextRendererTests {
  @Test func coloursAndOtherSequencesAreRemoved() {
    #expect(plain("\u{1B}[90m$\u{1B}[0m make\n\u{1B}[1;31mFAIL\u{1B}[0m\n") == "$ make\nFAIL\n")
    // OSC 8 links keep their text; charset selection and private modes show nothing.
    #expect(plain("\u{1B}]8;;https://x\u{07}link\u{1B}]8;;\u{1B}\\ \u{1B}(Bok\u{1B}[?25l\n") == "link ok\n")
    // Other control characters are dropped; tabs stay.
    #expect(plain("a\u{07}b\u{00}c\td\n") == "abc\td\n")
  }

  @Test func crlfEndsALineAsLfDoes() {
    #expect(plain("one\r\ntwo\r\n") == "one\ntwo\n")
  }

  @Test func carriageReturnsShowTheLastStateOfALine() {
    #expect(plain("Downloading  10%\rDownloading  55%\rDownloading 100%\ndone\n") == "Downloading 100%\ndone\n")
    // What is written over only covers as much as it writes.
    #expect(plain("abcdef\rXY\n") == "XYcdef\n")
    // Characters, not bytes, are overwritten.
    #expect(plain("héllo\rX\n") == "Xéllo\n")
    #expect(plain("é\rab\n") == "ab\n")
  }

  @Test func cursorMovesWithinALine() {
    #expect(plain("abc\u{08}X\n") == "abX\n")
    #expect(plain("abcdef\u{1B}[3DX\n") == "abcXef\n")
    #expect(plain("ab\u{1B}[3CX\n") == "ab   X\n")
    #expect(plain("abcdef\u{1B}[2GX\n") == "aXcdef\n")
    #expect(plain("abcdef\u{1B}[3D\u{1B}[K!\n") == "abc!\n")
    #expect(plain("abcdef\u{1B}[3D\u{1B}[1K!\n") == "   !ef\n")
    #expect(plain("abcdef\u{1B}[2KX\n") == "      X\n")
    // Backspace stops at the start.
    #expect(plain("a\u{08}\u{08}\u{08}b\n") == "b\n")
  }

  @Test func sectionMarkersAndTextStayAsWritten() {
    let log = "~~~ Preparing\n--- Running tests\n+++ Failures\n^^^ +++\nplain text: 1 < 2 & 3 > 2\n"
    #expect(plain(log) == log)
  }

  @Test func trailingBlanksAreRemoved() {
    #expect(plain("text   \t\nmore \n") == "text\nmore\n")
  }

  @Test func buildkiteMarkersAreRemovedOrShownAsTimes() {
    let log = "\u{1B}_bk;t=1764924000000\u{07}~~~ Preparing\n\u{1B}_bk;dt=61500\u{07}--- Running\nno marker\n"
    #expect(plain(log) == "~~~ Preparing\n--- Running\nno marker\n")
    #expect(
      plain(log, timestamps: true)
        == "2025-12-05T08:40:00Z ~~~ Preparing\n2025-12-05T08:41:01Z --- Running\nno marker\n")
    // The ST form of the end, and the last marker of a line wins.
    #expect(
      plain("\u{1B}_bk;t=0\u{1B}\\a\u{1B}_bk;t=1000\u{07}b\n", timestamps: true) == "1970-01-01T00:00:01Z ab\n")
  }

  @Test func unfinishedSequencesEndAtTheLine() {
    #expect(plain("a\u{1B}_bk;t=12\nb\n") == "a\nb\n")
    #expect(plain("a\u{1B}]0;title\nb\n") == "a\nb\n")
    #expect(plain("a\u{1B}[12\nb\n") == "a\nb\n")
    #expect(plain("no newline at the end") == "no newline at the end")
  }

  @Test func aLongLineWrapsAt160CharactersAndIsWrittenWhole() {
    let long = String(repeating: "x", count: 3 * PlainTextRenderer.columns + 10) + "\n"
    #expect(plain(long) == long)
    // A move up from the next line reaches the line's last screen line, as in the agent's terminal.
    let end = 3 * PlainTextRenderer.columns
    let expected = String(long.prefix(end)) + "END" + String(long.dropFirst(end + 3))
    #expect(plain(long + "\u{1B}[1A\rEND\n") == expected)
    // Characters, not bytes: 200 two-byte characters wrap once, at 160. A `\n` on a wrapped screen
    // line ends it there, as in terminal-to-html; the log ends with the cursor on the next, so with
    // no `\n`.
    let accents = String(repeating: "é", count: 200)
    #expect(
      plain(accents + "\n\u{1B}[2A\rX\n")
        == "X" + String(repeating: "é", count: 159) + "\n" + String(repeating: "é", count: 40))
    // Bytes that are not UTF-8 are kept.
    #expect(plainBytes([0xFF, 0xC3, 0x28, 0x0A]) == [0xFF, 0xC3, 0x28, 0x0A])
  }

  @Test func movesAcrossLinesRewriteThemWithinTheWindow() {
    // docker pull's display: each layer's line rewritten in place.
    let log =
      "a: Waiting\nb: Waiting\n\u{1B}[2A\u{1B}[2K\ra: Done\n\u{1B}[1B\u{1B}[1A\u{1B}[2K\rb: Done\n"
    #expect(plain(log) == "a: Done\nb: Done\n")
    // Save and restore the cursor.
    #expect(plain("one\u{1B}7\ntwo\n\u{1B}8!\n") == "one!\ntwo")
    // Erase the display below the cursor.
    #expect(plain("one\ntwo\nthree\n\u{1B}[2A\u{1B}[J\n\n") == "one\n\n\n")
    // A line that left the window cannot be rewritten.
    let lines = (0..<150).map { "line \($0)\n" }.joined()
    let text = plain(lines + "\u{1B}[120A\rX\n")
    #expect(text.hasPrefix("line 0\n"))
    #expect(text.contains("Xine 50\n"), "\(text.prefix(600))")
  }

  @Test func realLogsLeaveNoEscapesAndKeepEveryLine() throws {
    guard let logs = try realLogs() else { return }
    for (name, log) in logs {
      let text = plainBytes(log)
      #expect(!text.contains(0x1B), "\(name): an ESC survived")
      #expect(!text.contains(0x0D), "\(name): a carriage return survived")
      // Lines end only where the log has a `\n` (moves to other lines can only remove some).
      #expect(text.filter { $0 == 0x0A }.count <= log.filter { $0 == 0x0A }.count, "\(name)")
    }
    // curl's progress meter, rewritten by \r, shows its last state only.
    if let curl = logs.first(where: { $0.name == "curl.raw" }) {
      let lines = plain(curl.bytes).split(separator: "\n")
      #expect(lines.last?.hasPrefix("100   170  100   170") == true, "\(lines)")
      #expect(lines.count == 4, "\(lines)")
    }
  }
}

@Suite struct PlainTextIndexTests {
  /// The plain text of `log` read through an index with `cursor` reads of `count` bytes from each offset.
  private static func index(_ log: [UInt8], timestamps: Bool) -> PlainTextIndex {
    PlainTextIndex(options: PlainTextOptions(timestamps: timestamps), rawSize: UInt64(log.count)) {
      (offset, count) -> [ArraySlice<UInt8>] in
      // Pieces of uneven sizes, as blocks of a cache come.
      let end = Int(offset) + count
      let middle = min(end, Int(offset) + 1000)
      return [log[Int(offset)..<middle], log[middle..<end]]
    }
  }

  private static func read(_ log: [UInt8]) -> (UInt64, Int) -> [ArraySlice<UInt8>] {
    { offset, count in [log[Int(offset)..<min(log.count, Int(offset) + count)]] }
  }

  @Test func theTextIsTheSameHoweverTheLogIsSplit() throws {
    guard let logs = try realLogs() else { return }
    var random = SystemRandomNumberGenerator()
    for (name, log) in logs {
      let whole = plainBytes(log, timestamps: true)
      var renderer = PlainTextRenderer(options: PlainTextOptions(timestamps: true))
      var output: [UInt8] = []
      var start = 0
      while start < log.count {
        let end = min(log.count, start + Int.random(in: 1...300, using: &random))
        renderer.render(log[start..<end], into: &output)
        start = end
      }
      renderer.finish(into: &output)
      #expect(output == whole, "\(name)")
    }
  }

  @Test func readsAtAnyOffsetReturnTheText() throws {
    guard let logs = try realLogs() else { return }
    // A log long enough for many places: the real logs one after the other, several times.
    var log: [UInt8] = []
    while log.count < 4 * Int(PlainTextIndex.spacing) { log += logs.flatMap(\.bytes) }
    for timestamps in [false, true] {
      let text = plainBytes(log, timestamps: timestamps)
      let index = Self.index(log, timestamps: timestamps)
      #expect(index.size == UInt64(text.count))
      #expect(index.checkpoints.count >= 4, "\(index.checkpoints.count) places")
      #expect(index.heldBytes < 64 * index.checkpoints.count << 10, "\(index.heldBytes) bytes held")
      // Every place renders the text from where it says (the last, to the end).
      for place in index.checkpoints {
        var renderer = PlainTextRenderer(from: place)
        var rest: [UInt8] = []
        let end = min(log.count, Int(place.rawOffset) + 200_000)
        renderer.render(log[Int(place.rawOffset)..<end], into: &rest)
        if end == log.count { renderer.finish(into: &rest) }
        let start = Int(place.plainOffset)
        #expect(!rest.isEmpty && rest[...] == text[start..<start + rest.count], "from \(place.rawOffset)")
      }
      // One cursor reading in order, in kernel-sized reads, then reads here and there.
      var cursor = PlainTextCursor()
      var read: [UInt8] = []
      while read.count < text.count {
        read += cursor.read(index, offset: UInt64(read.count), count: 131_072, read: Self.read(log))
      }
      #expect(read == text)
      #expect(cursor.read(index, offset: UInt64(text.count), count: 10, read: Self.read(log)).isEmpty)
      for offset in [0, 1, text.count / 3, text.count / 2 + 7, text.count - 5, 17, text.count / 3 - 100] {
        let got = cursor.read(index, offset: UInt64(offset), count: 4096, read: Self.read(log))
        #expect(got[...] == text[offset..<min(text.count, offset + 4096)], "at \(offset)")
      }
    }
  }

  @Test func anEmptyLogHasNoText() {
    let index = Self.index([], timestamps: false)
    #expect(index.size == 0)
    var cursor = PlainTextCursor()
    #expect(cursor.read(index, offset: 0, count: 10, read: Self.read([])).isEmpty)
  }
}

// Fuzzes the plain-text renderer that the plain view reads logs through (`PlainTextRenderer`,
// `PlainTextIndex`, `PlainTextCursor`): for any log, the text is the same however the log is split
// between calls, the index's size is the text's, every place it keeps renders the same rest of the
// text, and reads at any offset return the text's bytes there. No escape byte or `\r` survives.
import FuzzDriver
import LogText

runFuzzer { input in
  let log = Array(input)
  for timestamps in [false, true] {
    let options = PlainTextOptions(timestamps: timestamps)
    var whole = PlainTextRenderer(options: options)
    var text: [UInt8] = []
    whole.render(log[...], into: &text)
    whole.finish(into: &text)
    require(!text.contains(0x1B), "an ESC survived")
    require(!text.contains(0x0D), "a carriage return survived")
    require(whole.plainOffset == UInt64(text.count), "plainOffset \(whole.plainOffset) != \(text.count) bytes")

    // Split at a place the input picks: the same text.
    let cut = log.isEmpty ? 0 : Int(log[0]) % (log.count + 1)
    var split = PlainTextRenderer(options: options)
    var pieces: [UInt8] = []
    split.render(log[..<cut], into: &pieces)
    split.render(log[cut...], into: &pieces)
    split.finish(into: &pieces)
    require(pieces == text, "splitting the log at \(cut) changed the text")

    let index = PlainTextIndex(options: options, rawSize: UInt64(log.count)) { (offset, count) -> [ArraySlice<UInt8>] in
      [log[Int(offset)..<Int(offset) + count]]
    }
    require(index.size == UInt64(text.count), "index size \(index.size) != \(text.count)")

    // A read from every few offsets, each with a fresh cursor (so from the index's places).
    var offset = 0
    while offset <= text.count {
      var cursor = PlainTextCursor()
      let got = cursor.read(index, offset: UInt64(offset), count: 7) { (offset, count) -> [ArraySlice<UInt8>] in
        [log[Int(offset)..<min(log.count, Int(offset) + count)]]
      }
      require(got[...] == text[offset..<min(text.count, offset + 7)], "the read at \(offset) differs")
      offset += 1 + text.count / 16
    }
  }
}

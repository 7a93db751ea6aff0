import SystemBase

/// How a log is rendered as plain text.
public struct PlainTextOptions: Sendable, Hashable {
  /// Each line that carried a Buildkite time (`ESC _ bk;t=… BEL`) starts with it, in UTC, as
  /// `2026-12-05T08:58:34Z ` (terminal-to-html's plain text with timestamps).
  public var timestamps: Bool

  public init(timestamps: Bool = false) {
    self.timestamps = timestamps
  }
}

/// A place in a log where rendering can start again: everything the renderer held there (the
/// lines a terminal could still rewrite, the cursor, the last Buildkite time). Its size is that of
/// the renderer's window, a few KiB for most logs.
public struct PlainTextCheckpoint: Sendable {
  fileprivate var state: PlainTextRenderer

  /// Bytes of the log before this place.
  public var rawOffset: UInt64 { state.rawOffset }
  /// Bytes of the plain text before this place.
  public var plainOffset: UInt64 { state.plainOffset }
  /// Roughly the bytes this place holds.
  public var heldBytes: Int { state.windowByteCount + 64 * state.window.count + 128 }
}

/// Renders a Buildkite job log, as its agent wrote it from a terminal, as the text a terminal
/// finally shows, following the rules of Buildkite's own renderer (terminal-to-html), whose screen
/// is the agent's terminal: 160 columns, and a window of the last 100 lines the cursor can reach.
///
/// - Colours and other escape sequences (CSI, OSC, APC, charset selection) are removed. The agent's
///   `ESC _ bk;t=<ms> BEL` (and `bk;dt=`) markers give each line its time
///   (`PlainTextOptions.timestamps`).
/// - `\r`, backspace and the cursor moves (`CSI A B C D E F G H`, `ESC 7`/`ESC 8`, `ESC M`) move the
///   cursor within the window, and what is written after overwrites what was there. A progress
///   line rewritten by `\r`, or a multi-line display redrawn in place (`docker pull`), shows only
///   its last state. Erase in line and in display (`CSI K`, `CSI J`) erase. `\r\n` ends a line as
///   `\n` does.
/// - A line wraps at 160 characters (so moves up count its screen lines, as the terminal did) and
///   is written out whole, with trailing spaces and tabs removed. Other control characters are
///   dropped; bytes that are not UTF-8 are kept as they are.
///
/// A line is written out once it leaves the window, or at the end of the log, so what the renderer
/// holds is bounded (100 lines of at most `lineBytes` bytes each).
///
/// The output depends only on the bytes given and where rendering started (the start of the log, or
/// a `checkpoint`), never on how the bytes were split between calls to `render`.
public struct PlainTextRenderer: Sendable {
  /// The lines the cursor can reach, and the columns of each, as in the agent's terminal.
  public static let windowLines = 100
  public static let columns = 160
  /// The most bytes one screen line holds before it wraps (160 characters of UTF-8 take at most 640).
  public static let lineBytes = 1024
  /// The most bytes of one escape sequence kept (a `bk;` marker is about 20); past this, the rest
  /// of the sequence is dropped unread.
  static let longestSequence = 256

  public let options: PlainTextOptions

  /// Bytes of the log rendered so far, counted from the start of the log.
  public private(set) var rawOffset: UInt64 = 0
  /// Bytes of plain text written so far, counted from the start of the text.
  public private(set) var plainOffset: UInt64 = 0

  private enum Mode: UInt8 {
    case text
    /// After ESC.
    case escape
    /// After ESC and an intermediate byte (`(`, `)`, …): the next byte ends the sequence.
    case escapeIntermediate
    /// In `ESC [ … final`.
    case controlSequence
    /// In `ESC ] …` (OSC) or `ESC P`, `ESC X`, `ESC ^` (strings ended by BEL or `ESC \`).
    case string
    /// ESC seen in a string.
    case stringEscape
    /// In `ESC _ …` (APC: Buildkite's markers).
    case applicationCommand
    /// ESC seen in an APC.
    case applicationCommandEscape
  }

  /// The window's lines, in a ring whose slots keep their buffers: a line leaving the window
  /// costs no move of the others, and a new one no allocation.
  fileprivate struct Window: Sendable {
    private var slots: [Line] = []
    private var head = 0
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    subscript(index: Int) -> Line {
      get { slots[slot(index)] }
      _modify { yield &slots[slot(index)] }
    }

    private func slot(_ index: Int) -> Int {
      let slot = head + index
      return slot < slots.count ? slot : slot - slots.count
    }

    /// Adds an empty line at the end; the window must not be full.
    mutating func append() {
      if slots.count < PlainTextRenderer.windowLines {
        slots.append(Line())
        // Slots are added in order until the ring is whole, so the new slot is the last line.
        count += 1
        return
      }
      count += 1
      let index = slot(count - 1)
      slots[index].bytes.removeAll(keepingCapacity: true)
      slots[index].timestamp = .min
      slots[index].wraps = false
    }

    /// Drops the first line (after the caller has read it).
    mutating func dropFirst() {
      head = head + 1 == slots.count ? 0 : head + 1
      count -= 1
    }
  }

  fileprivate struct Line: Sendable {
    var bytes: [UInt8] = []
    /// Its time, from its markers (the last wins).
    var timestamp = Int64.min
    /// Whether it goes on in the next line (it wrapped), so is written out with no `\n`.
    var wraps = false
  }

  private var mode = Mode.text
  /// The lines the cursor can still reach, oldest first.
  fileprivate var window = Window()
  fileprivate var windowByteCount = 0
  /// The cursor's line in `window`; `window.count` when it is past the last line (after `\n`).
  private var y = 0
  /// Where the cursor is in its line (a byte offset at the start of a character)…
  private var cursor = 0
  /// …and how many columns past the end of its line it is; 0 unless `cursor` is at the end.
  private var beyond = 0
  /// Where `ESC 7` saved the cursor: its column and line.
  private var saved = (column: 0, line: 0)
  /// The bytes of the escape sequence being read (parameters of a CSI, the body of an APC).
  private var sequence: [UInt8] = []
  private var lastTimestamp = Int64.min
  /// Whether the last line written out wrapped: the next goes on with it, so takes no time.
  private var afterWrap = false
  /// Where lines are written out during `render`.
  private var output: [UInt8] = []

  /// A renderer at the start of a log.
  public init(options: PlainTextOptions = PlainTextOptions()) {
    self.options = options
  }

  /// A renderer that goes on from `checkpoint`, as the one that made it did.
  public init(from checkpoint: PlainTextCheckpoint) {
    self = checkpoint.state
  }

  /// Where rendering can start again: here.
  public var checkpoint: PlainTextCheckpoint {
    var state = self
    state.output = []
    return PlainTextCheckpoint(state: state)
  }

  /// Renders `input`, the next bytes of the log, appending the lines that leave the window to `output`.
  public mutating func render(_ input: UnsafeBufferPointer<UInt8>, into output: inout [UInt8]) {
    swap(&self.output, &output)
    defer { swap(&self.output, &output) }
    var index = 0
    let count = input.count
    while index < count {
      let byte = input[index]
      if mode == .text && beyond == 0 && byte >= 0x20 && byte != 0x7F
        && (y == window.count || cursor == window[y].bytes.count)
      {
        // The common case: text written at the end of a line, copied a run at a time, up to where
        // the line wraps (which `write` does).
        if y == window.count { newLineAtCursor() }
        let lineCount = window[y].bytes.count
        var cells = Self.cells(window[y].bytes[...])
        var end = index
        while end < count && lineCount + (end - index) < Self.lineBytes {
          let next = input[end]
          guard next >= 0x20 && next != 0x7F else { break }
          if !Self.isContinuation(next) || (lineCount == 0 && end == index) {
            if cells == Self.columns { break }
            cells += 1
          }
          end += 1
        }
        if end > index {
          window[y].bytes.append(contentsOf: UnsafeBufferPointer(rebasing: input[index..<end]))
          cursor = window[y].bytes.count
          windowByteCount += end - index
          rawOffset += UInt64(end - index)
          index = end
          continue
        }
      }
      if mode == .applicationCommand || mode == .string {
        // The body of a marker (or of another string sequence), up to what may end it, a run at a time.
        var end = index
        while end < count, input[end] != 0x07, input[end] != 0x1B, input[end] != 0x0A { end += 1 }
        if end > index {
          if mode == .applicationCommand {
            let room = max(0, Self.longestSequence - sequence.count)
            sequence.append(contentsOf: UnsafeBufferPointer(rebasing: input[index..<min(end, index + room)]))
          }
          rawOffset += UInt64(end - index)
          index = end
          continue
        }
      }
      rawOffset += 1
      index += 1
      consume(byte)
    }
  }

  /// The plain text of a whole log, rendered at once.
  public static func text(of log: [UInt8], options: PlainTextOptions = PlainTextOptions()) -> [UInt8] {
    var renderer = PlainTextRenderer(options: options)
    var text: [UInt8] = []
    renderer.render(log[...], into: &text)
    renderer.finish(into: &text)
    return text
  }

  /// Renders `input` (an array or a slice of one).
  public mutating func render(_ input: ArraySlice<UInt8>, into output: inout [UInt8]) {
    input.withUnsafeBufferPointer { render($0, into: &output) }
  }

  /// Ends the log: writes out every line of the window. The last has a `\n` only if the log ended
  /// past it.
  public mutating func finish(into output: inout [UInt8]) {
    swap(&self.output, &output)
    defer { swap(&self.output, &output) }
    mode = .text
    let past = y == window.count
    while !window.isEmpty { writeOut(newline: window.count > 1 || past) }
    y = 0
    cursor = 0
    beyond = 0
  }

  private mutating func consume(_ byte: UInt8) {
    switch mode {
    case .text:
      text(byte)
    case .escape:
      escape(byte)
    case .escapeIntermediate:
      mode = .text
      if byte < 0x20 { text(byte) }
    case .controlSequence:
      switch byte {
      case 0x20...0x3F:
        if sequence.count < Self.longestSequence { sequence.append(byte) }
      case 0x40...0x7E:
        mode = .text
        controlSequence(final: byte)
      default:
        // A control character ends the sequence unfinished, and takes effect.
        mode = .text
        text(byte)
      }
    case .string, .stringEscape:
      if byte == 0x07 || (mode == .stringEscape && byte == UInt8(ascii: "\\")) {
        mode = .text
      } else if byte == 0x0A {
        mode = .text
        text(byte)
      } else {
        mode = byte == 0x1B ? .stringEscape : .string
      }
    case .applicationCommand, .applicationCommandEscape:
      if byte == 0x07 || (mode == .applicationCommandEscape && byte == UInt8(ascii: "\\")) {
        mode = .text
        applicationCommand()
      } else if byte == 0x0A {
        mode = .text
        text(byte)
      } else if byte == 0x1B {
        mode = .applicationCommandEscape
      } else {
        if mode == .applicationCommandEscape, sequence.count < Self.longestSequence { sequence.append(0x1B) }
        mode = .applicationCommand
        if sequence.count < Self.longestSequence { sequence.append(byte) }
      }
    }
  }

  /// The byte after an ESC.
  private mutating func escape(_ byte: UInt8) {
    mode = .text
    switch byte {
    case UInt8(ascii: "["):
      sequence.removeAll(keepingCapacity: true)
      mode = .controlSequence
    case UInt8(ascii: "]"), UInt8(ascii: "P"), UInt8(ascii: "X"), UInt8(ascii: "^"):
      mode = .string
    case UInt8(ascii: "_"):
      sequence.removeAll(keepingCapacity: true)
      mode = .applicationCommand
    case 0x20...0x2F:
      mode = .escapeIntermediate
    case UInt8(ascii: "7"):
      saved = (column(), y)
    case UInt8(ascii: "8"):
      y = min(saved.line, window.count)
      moveTo(column: saved.column)
    case UInt8(ascii: "M"):
      moveLines(by: -1, keepColumn: true)
    case 0x30...0x7E:
      // Other two-byte sequences (keypad modes and the like): nothing to show.
      break
    default:
      // Not a sequence: the ESC is dropped and the byte taken as text.
      text(byte)
    }
  }

  /// A byte outside any escape sequence.
  private mutating func text(_ byte: UInt8) {
    switch byte {
    case 0x0A:
      newline()
    case 0x0D:
      cursor = 0
      beyond = 0
    case 0x08:
      moveTo(column: max(0, column() - 1))
    case 0x1B:
      mode = .escape
    case 0x00..<0x20 where byte != 0x09, 0x7F:
      break
    default:
      write(byte)
    }
  }

  private static func isContinuation(_ byte: UInt8) -> Bool { byte & 0xC0 == 0x80 }

  /// The characters of a line: a character starts at its first byte and at each byte that does not
  /// continue a UTF-8 sequence, and takes the continuation bytes that follow.
  private static func cells(_ line: ArraySlice<UInt8>) -> Int {
    var cells = 0
    for index in line.indices where !isContinuation(line[index]) || index == line.startIndex { cells += 1 }
    return cells
  }

  /// The bytes of the character that starts at `offset` of a line.
  private static func characterLength(_ line: [UInt8], at offset: Int) -> Int {
    var end = offset + 1
    while end < line.count && isContinuation(line[end]) { end += 1 }
    return end - offset
  }

  /// Makes the line the cursor is past (after the last) a line of the window, writing out the
  /// oldest line if the window is full.
  private mutating func newLineAtCursor() {
    if window.count == Self.windowLines {
      writeOut(newline: true)
      y -= 1
      saved.line = max(0, saved.line - 1)
    }
    window.append()
  }

  /// Writes one byte at the cursor: the first byte of a character over the character there, a
  /// continuation byte after the character before it.
  private mutating func write(_ byte: UInt8) {
    let startsCharacter = !Self.isContinuation(byte) || cursor == 0
    if y < window.count && beyond == 0 && cursor == window[y].bytes.count
      && (window[y].bytes.count >= Self.lineBytes
        || (startsCharacter && Self.cells(window[y].bytes[...]) >= Self.columns))
    {
      // The line is full: it wraps onto the next.
      window[y].wraps = true
      y += 1
      cursor = 0
    }
    if y == window.count { newLineAtCursor() }
    if beyond > 0 {
      window[y].bytes.append(contentsOf: repeatElement(UInt8(ascii: " "), count: beyond))
      windowByteCount += beyond
      beyond = 0
      cursor = window[y].bytes.count
    }
    if cursor == window[y].bytes.count || !startsCharacter {
      // At the end, or a continuation byte: inserted (unless the line is already far too long).
      guard window[y].bytes.count < 2 * Self.lineBytes else { return }
      window[y].bytes.insert(byte, at: cursor)
      windowByteCount += 1
    } else {
      let old = Self.characterLength(window[y].bytes, at: cursor)
      if old == 1 {
        window[y].bytes[cursor] = byte
      } else {
        window[y].bytes.replaceSubrange(cursor..<cursor + old, with: CollectionOfOne(byte))
        windowByteCount += 1 - old
      }
    }
    cursor += 1
  }

  /// The cursor's column: characters before it in its line, and columns past its end.
  private func column() -> Int {
    guard y < window.count else { return beyond }
    return Self.cells(window[y].bytes[..<cursor]) + beyond
  }

  /// Puts the cursor at a column of its line (past its end if the line is shorter), at most the last.
  private mutating func moveTo(column: Int) {
    let target = min(column, Self.columns - 1)
    var offset = 0
    var characters = 0
    if y < window.count {
      let bytes = window[y].bytes
      while characters < target && offset < bytes.count {
        offset += Self.characterLength(bytes, at: offset)
        characters += 1
      }
    }
    cursor = offset
    beyond = target - characters
  }

  /// `\n`: the cursor goes to the start of the next line.
  private mutating func newline() {
    if y == window.count { newLineAtCursor() }
    window[y].wraps = false
    y += 1
    cursor = 0
    beyond = 0
  }

  /// Moves the cursor `count` lines down (up if negative), within the window.
  private mutating func moveLines(by count: Int, keepColumn: Bool) {
    let column = keepColumn ? self.column() : 0
    let target = max(0, min(y + count, Self.windowLines - 1))
    while window.count < target { window.append() }
    y = target
    moveTo(column: column)
  }

  private mutating func controlSequence(final: UInt8) {
    // Private sequences (`CSI ? …`: the cursor's visibility, modes) show nothing.
    if let first = sequence.first, first >= 0x3C && first <= 0x3F { return }
    // The first two parameters, nil when empty or not a number.
    var values: (Int?, Int?) = (nil, nil)
    var index = 0
    var value: Int? = 0
    var digits = 0
    for position in 0...sequence.count {
      let byte = position < sequence.count ? sequence[position] : UInt8(ascii: ";")
      if byte == UInt8(ascii: ";") {
        let parsed = digits > 0 ? value : nil
        if index == 0 { values.0 = parsed } else { values.1 = parsed }
        index += 1
        if index == 2 { break }
        value = 0
        digits = 0
      } else if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"), let current = value {
        value = min(current * 10 + Int(byte - UInt8(ascii: "0")), 1 << 20)
        digits += 1
      } else {
        value = nil
      }
    }
    func parameter(_ index: Int) -> Int? { index == 0 ? values.0 : values.1 }
    let count = max(1, parameter(0) ?? 1)
    switch final {
    case UInt8(ascii: "A"):
      moveLines(by: -count, keepColumn: true)
    case UInt8(ascii: "B"):
      moveLines(by: count, keepColumn: true)
    case UInt8(ascii: "C"):
      moveTo(column: column() + count)
    case UInt8(ascii: "D"):
      moveTo(column: max(0, column() - count))
    case UInt8(ascii: "E"):
      moveLines(by: count, keepColumn: false)
    case UInt8(ascii: "F"):
      moveLines(by: -count, keepColumn: false)
    case UInt8(ascii: "G"):
      moveTo(column: count - 1)
    case UInt8(ascii: "H"):
      // Which line an absolute row means depends on the agent's terminal size, unknown here: as
      // terminal-to-html does, a row is taken as the next line (if this one has text), keeping
      // this one's time.
      if y < window.count && !window[y].bytes.isEmpty {
        let time = window[y].timestamp
        y += 1
        if time != .min {
          if y == window.count { newLineAtCursor() }
          window[y].timestamp = time
        }
      }
      moveTo(column: max(1, parameter(1) ?? 1) - 1)
    case UInt8(ascii: "J"):
      eraseInDisplay(parameter(0) ?? 0)
    case UInt8(ascii: "K"):
      eraseInLine(parameter(0) ?? 0)
    default:
      // Colours (m) and the rest show nothing.
      break
    }
  }

  private mutating func clearLine(_ index: Int) {
    windowByteCount -= window[index].bytes.count
    window[index].bytes.removeAll(keepingCapacity: true)
    window[index].wraps = false
  }

  private mutating func eraseInLine(_ how: Int) {
    guard y < window.count else { return }
    let target = column()
    switch how {
    case 0:
      // From the cursor to the end.
      guard beyond == 0 else { return }
      windowByteCount -= window[y].bytes.count - cursor
      window[y].bytes.removeSubrange(cursor...)
    case 1:
      // From the start to the cursor, inclusive; at or past the last character, the whole line.
      let bytes = window[y].bytes
      guard beyond == 0 && cursor < bytes.count else {
        clearLine(y)
        moveTo(column: target)
        return
      }
      let rest = cursor + Self.characterLength(bytes, at: cursor)
      guard rest < bytes.count else {
        clearLine(y)
        moveTo(column: target)
        return
      }
      window[y].bytes.replaceSubrange(0..<rest, with: repeatElement(UInt8(ascii: " "), count: target + 1))
      windowByteCount += target + 1 - rest
      cursor = target
    case 2:
      clearLine(y)
      moveTo(column: target)
    default:
      break
    }
  }

  private mutating func eraseInDisplay(_ how: Int) {
    switch how {
    case 0:
      eraseInLine(0)
      for index in min(window.count, y + 1)..<window.count { clearLine(index) }
    case 1:
      eraseInLine(1)
      for index in 0..<min(y, window.count) { clearLine(index) }
    case 2, 3:
      let target = column()
      for index in 0..<window.count { clearLine(index) }
      moveTo(column: target)
    default:
      break
    }
  }

  /// A Buildkite marker (`bk;t=<ms>`, `bk;dt=<ms>`, `;`-separated): the line's time.
  private mutating func applicationCommand() {
    guard sequence.count > 3, sequence[0] == UInt8(ascii: "b"), sequence[1] == UInt8(ascii: "k"),
      sequence[2] == UInt8(ascii: ";")
    else { return }
    var start = 3
    while start < sequence.count {
      var end = start
      while end < sequence.count && sequence[end] != UInt8(ascii: ";") { end += 1 }
      marker(sequence[start..<end])
      start = end + 1
    }
  }

  /// One `key=value` of a Buildkite marker: `t` (the time) or `dt` (time since the last).
  private mutating func marker(_ token: ArraySlice<UInt8>) {
    guard let equals = token.firstIndex(of: UInt8(ascii: "=")),
      let value = Self.integer(token[(equals + 1)...])
    else { return }
    let key = token[token.startIndex..<equals]
    if key.count == 1 && key.first == UInt8(ascii: "t") {
      lastTimestamp = value
    } else if key.count == 2 && key.first == UInt8(ascii: "d") && key.last == UInt8(ascii: "t") {
      lastTimestamp = (lastTimestamp == .min ? 0 : lastTimestamp) &+ value
    } else {
      return
    }
    if y == window.count { newLineAtCursor() }
    window[y].timestamp = lastTimestamp
  }

  private static func integer(_ digits: ArraySlice<UInt8>) -> Int64? {
    guard !digits.isEmpty, digits.count <= 18 else { return nil }
    var value: Int64 = 0
    for digit in digits {
      guard digit >= UInt8(ascii: "0") && digit <= UInt8(ascii: "9") else { return nil }
      value = value * 10 + Int64(digit - UInt8(ascii: "0"))
    }
    return value
  }

  /// Writes out the window's first line: its time if asked for (unless it goes on from a line that
  /// wrapped), its text (without trailing blanks unless it wraps), and `\n` unless it wraps or
  /// `newline` is false.
  private mutating func writeOut(newline: Bool) {
    let line = window[0]
    window.dropFirst()
    windowByteCount -= line.bytes.count
    let before = output.count
    if options.timestamps && line.timestamp != .min && !afterWrap {
      output.append(contentsOf: Self.formatted(milliseconds: line.timestamp))
      output.append(UInt8(ascii: " "))
    }
    var end = line.bytes.count
    if !line.wraps {
      while end > 0 && (line.bytes[end - 1] == UInt8(ascii: " ") || line.bytes[end - 1] == 0x09) { end -= 1 }
    }
    output.append(contentsOf: line.bytes[..<end])
    if newline && !line.wraps { output.append(0x0A) }
    afterWrap = line.wraps
    plainOffset += UInt64(output.count - before)
  }

  /// `2026-12-05T08:58:34Z`: a Buildkite time (milliseconds) in UTC, to the second.
  static func formatted(milliseconds: Int64) -> [UInt8] {
    let seconds = milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000
    let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
    let time = seconds - days * 86_400
    let (year, month, day) = civilFromDays(days)
    var text: [UInt8] = []
    text.reserveCapacity(20)
    func digits(_ value: Int64, _ width: Int) {
      var value = value
      var reversed: [UInt8] = []
      for _ in 0..<width {
        reversed.append(UInt8(ascii: "0") + UInt8(value % 10))
        value /= 10
      }
      text.append(contentsOf: reversed.reversed())
    }
    digits(max(0, min(9999, year)), 4)
    text.append(UInt8(ascii: "-"))
    digits(month, 2)
    text.append(UInt8(ascii: "-"))
    digits(day, 2)
    text.append(UInt8(ascii: "T"))
    digits(time / 3600, 2)
    text.append(UInt8(ascii: ":"))
    digits(time % 3600 / 60, 2)
    text.append(UInt8(ascii: ":"))
    digits(time % 60, 2)
    text.append(UInt8(ascii: "Z"))
    return text
  }
}

/// What serves reads of a log's plain text (`PlainTextRenderer`) at any offset: its size, and
/// places where rendering can start again, about every `spacing` bytes of the log. Made by one
/// pass over the whole log. Each place holds the renderer's window, a few KiB for most logs (about
/// 8 MiB for a 1 GiB log of 80-byte lines).
public struct PlainTextIndex: Sendable {
  /// Bytes of log between the places kept, at least (a place is a line's start).
  public static let spacing: UInt64 = 1 << 20
  /// Bytes of log read at a time.
  static let readSize = 1 << 20

  public let options: PlainTextOptions
  /// The log's size.
  public let rawSize: UInt64
  /// The plain text's size.
  public let size: UInt64
  /// Places to start from, in order, the first at the start.
  public let checkpoints: [PlainTextCheckpoint]

  /// Renders the log of `rawSize` bytes, read by `read(offset, count)` (which returns the bytes as
  /// pieces, in order, and fewer only at the end), to learn its plain text's size and places.
  public init<Failure: Error>(
    options: PlainTextOptions, rawSize: UInt64,
    read: (_ offset: UInt64, _ count: Int) throws(Failure) -> [ArraySlice<UInt8>]
  ) throws(Failure) {
    var renderer = PlainTextRenderer(options: options)
    var checkpoints = [renderer.checkpoint]
    var output: [UInt8] = []
    output.reserveCapacity(Self.readSize + 4096)
    var offset: UInt64 = 0
    while offset < rawSize {
      let count = Int(min(UInt64(Self.readSize), rawSize - offset))
      let pieces = try read(offset, count)
      var got = 0
      for piece in pieces {
        // Pieces of at most `spacing` bytes, so that no place more than that apart is missed.
        var start = piece.startIndex
        while start < piece.endIndex {
          let end = min(piece.endIndex, start + Int(Self.spacing / 4))
          renderer.render(piece[start..<end], into: &output)
          output.removeAll(keepingCapacity: true)
          if renderer.rawOffset >= checkpoints[checkpoints.count - 1].rawOffset + Self.spacing {
            checkpoints.append(renderer.checkpoint)
          }
          start = end
        }
        got += piece.count
      }
      // A short read ends the log where it ended.
      offset += UInt64(got)
      if got < count { break }
    }
    renderer.finish(into: &output)
    self.options = options
    self.rawSize = offset
    self.size = renderer.plainOffset
    self.checkpoints = checkpoints
    heldBytes = checkpoints.reduce(0) { $0 + $1.heldBytes }
  }

  /// Roughly the bytes this index holds.
  public let heldBytes: Int

  /// The last place at or before `plainOffset` of the text.
  public func checkpoint(atOrBefore plainOffset: UInt64) -> PlainTextCheckpoint {
    var low = 0
    var high = checkpoints.count - 1
    while low < high {
      let middle = (low + high + 1) / 2
      if checkpoints[middle].plainOffset <= plainOffset { low = middle } else { high = middle - 1 }
    }
    return checkpoints[low]
  }
}

/// One reader's place in a log's plain text: reads that go on where the last one ended render only
/// the bytes they return; others start again from the index's nearest place before them. The text
/// just behind the last read is kept, for reads that come a little out of order.
public struct PlainTextCursor: Sendable {
  /// Text kept behind the last read, at least.
  static let kept = 1 << 20

  private var renderer: PlainTextRenderer?
  private var finished = false
  /// Text rendered so far and kept, and the offset of its first byte.
  private var buffered: [UInt8] = []
  private var bufferedStart: UInt64 = 0

  public init() {}

  /// Up to `count` bytes of the plain text from `offset` (fewer only at its end), rendering the
  /// log read by `read(offset, count)` as `PlainTextIndex.init` does.
  public mutating func read<Failure: Error>(
    _ index: PlainTextIndex, offset: UInt64, count: Int,
    read: (_ offset: UInt64, _ count: Int) throws(Failure) -> [ArraySlice<UInt8>]
  ) throws(Failure) -> [UInt8] {
    guard offset < index.size, count > 0 else { return [] }
    let end = min(index.size, offset + UInt64(count))
    let renderedEnd = bufferedStart + UInt64(buffered.count)
    if renderer == nil || offset < bufferedStart || offset > renderedEnd + PlainTextIndex.spacing {
      let start = index.checkpoint(atOrBefore: offset)
      renderer = PlainTextRenderer(from: start)
      finished = false
      buffered.removeAll(keepingCapacity: true)
      bufferedStart = start.plainOffset
    }
    while bufferedStart + UInt64(buffered.count) < end, !finished, var current = renderer {
      let rawOffset = current.rawOffset
      let want = Int(min(UInt64(PlainTextIndex.readSize), index.rawSize - min(index.rawSize, rawOffset)))
      var got = 0
      if want > 0 {
        for piece in try read(rawOffset, want) {
          current.render(piece, into: &buffered)
          got += piece.count
        }
      }
      if got < want || rawOffset + UInt64(got) >= index.rawSize {
        current.finish(into: &buffered)
        finished = true
      }
      renderer = current
    }
    let from = Int(min(UInt64(buffered.count), offset - bufferedStart))
    let to = Int(min(UInt64(buffered.count), end - bufferedStart))
    let result = Array(buffered[from..<to])
    if to > 2 * Self.kept {
      buffered.removeSubrange(0..<to - Self.kept)
      bufferedStart += UInt64(to - Self.kept)
    }
    return result
  }
}

/// Decides what to fetch ahead of a reader, from the offsets it reads. A pure state machine (no I/O),
/// so its behaviour is tested directly.
///
/// A reader that continues where it left off is sequential: each such read doubles the window of
/// bytes fetched ahead of it, from `initialWindow` up to `maxWindow`, so a `cat` or `grep` soon has
/// several parts in flight while a reader that jumps (`tail`, `less` seeking) gets only what it asked
/// for. The kernel may deliver a sequential reader's requests slightly out of order (its own readahead
/// runs several reads at once), so a read that lands inside the region already requested, or just
/// behind the furthest read, still counts as sequential.
public struct ReadaheadState: Sendable, Hashable {
  public let initialWindow: UInt64
  public let maxWindow: UInt64
  public let fileSize: UInt64

  /// Where the furthest read so far ended.
  public private(set) var furthestEnd: UInt64 = 0
  /// The current window; 0 until the reader has shown itself sequential.
  public private(set) var window: UInt64 = 0
  /// Bytes below this offset have been asked for (by reads or readahead).
  public private(set) var requestedEnd: UInt64 = 0

  public init(initialWindow: UInt64, maxWindow: UInt64, fileSize: UInt64) {
    self.initialWindow = initialWindow
    self.maxWindow = max(initialWindow, maxWindow)
    self.fileSize = fileSize
  }

  /// Records a read of `[offset, end)` and returns the byte range to fetch ahead, if any.
  public mutating func onRead(offset: UInt64, end: UInt64) -> Range<UInt64>? {
    let sequential =
      offset == furthestEnd
      || (offset < max(requestedEnd, furthestEnd) && offset + maxWindow >= furthestEnd)
    furthestEnd = max(furthestEnd, end)
    guard sequential else {
      window = 0
      requestedEnd = end
      return nil
    }
    window = window == 0 ? initialWindow : min(window * 2, maxWindow)
    let target = min(furthestEnd + window, fileSize)
    let start = max(requestedEnd, furthestEnd)
    requestedEnd = max(requestedEnd, target)
    return start < target ? start..<target : nil
  }
}

/// Decides what to fetch ahead of a reader, from the offsets it reads. A pure state machine (no I/O),
/// so its behaviour is tested directly.
///
/// A reader that continues where it left off is sequential: each such read doubles the window of
/// bytes fetched ahead of it, from `initialWindow` up to `maxWindow`, so a `cat` or `grep` soon has
/// several parts in flight while a reader that jumps (`tail`, `less` seeking) gets only what it asked
/// for. The window is topped up once half of it is used, in one run of half a window or more. The
/// kernel may deliver a sequential reader's requests slightly out of order (its own readahead runs
/// several reads at once), so a read that lands inside the region already requested, or just
/// behind the furthest read, still counts as sequential.
///
/// Readers share the memory cache that holds what is fetched ahead of them, so each read may also
/// bring a `limit` below `maxWindow` (the filesystem's share for one reader): the window never
/// grows past it, and shrinks to it when more readers come, though never below `initialWindow`.
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

  /// Bytes below this offset were handed back by `consumed`.
  public private(set) var releasedEnd: UInt64 = 0
  /// Where the current sequential run began (the offset of the last jump).
  public private(set) var runStart: UInt64 = 0

  /// For a sequential reader, the bytes it has read and will not read again, in whole blocks,
  /// `keepBlocks` blocks behind its furthest read (the kernel may still send a few reads slightly
  /// out of order): their blocks can leave the memory cache, since the kernel's page cache holds
  /// what was read. Each byte is returned once; nothing for a reader that jumps.
  public mutating func consumed(blockSize: UInt64, keepBlocks: UInt64) -> Range<UInt64>? {
    guard window > 0 else { return nil }
    let keep = (keepBlocks + 1) * blockSize
    guard furthestEnd > keep else { return nil }
    let end = (furthestEnd / blockSize) * blockSize - keepBlocks * blockSize
    // Only what this run read: from the first whole block after the jump that started it.
    let start = max(releasedEnd, (runStart + blockSize - 1) / blockSize * blockSize)
    guard end > start else { return nil }
    releasedEnd = end
    return start..<end
  }

  /// Records a read of `[offset, end)` and returns the byte range to fetch ahead, if any: at most
  /// `min(maxWindow, limit)` bytes past the furthest read (`initialWindow` if `limit` is smaller).
  public mutating func onRead(offset: UInt64, end: UInt64, limit: UInt64 = .max) -> Range<UInt64>? {
    let sequential =
      offset == furthestEnd
      || (offset < max(requestedEnd, furthestEnd) && offset + maxWindow >= furthestEnd)
    furthestEnd = max(furthestEnd, end)
    guard sequential else {
      window = 0
      requestedEnd = end
      runStart = offset
      return nil
    }
    let largest = max(initialWindow, min(maxWindow, limit))
    window = window == 0 ? initialWindow : min(window * 2, largest)
    // Top the window up only once the reader has used half of it, so readahead goes out in runs
    // of half a window (parts of several blocks), not a block per read.
    if requestedEnd > furthestEnd && requestedEnd - furthestEnd > window / 2 { return nil }
    let target = min(furthestEnd + window, fileSize)
    let start = max(requestedEnd, furthestEnd)
    requestedEnd = max(requestedEnd, target)
    return start < target ? start..<target : nil
  }
}

/// Decides which files of a directory to fetch ahead of a walk through it (`grep -r`, `rsync`,
/// `tar`), from the order in which its files are opened. A pure state machine, like
/// `ReadaheadState`: entries are numbered in listing (name) order.
///
/// Opening the first entry starts a walk, and opening the entry after the one opened last continues
/// it: the window of entries fetched ahead starts at `initialWindow` and doubles with each step up
/// to `maxWindow`, so a walk soon has many small files in flight while one `cat` of a first file
/// costs little.
/// Any other open (a jump) ends the walk.
public struct WalkState: Sendable, Hashable {
  public let initialWindow: Int
  public let maxWindow: Int

  /// The entry opened last, if any.
  public private(set) var lastOpened: Int?
  public private(set) var window = 0
  /// Entries below this index have been fetched ahead (or opened).
  public private(set) var requestedEnd = 0
  /// Whether the walk has been handed on to the next directory (set by the caller; a walk that
  /// starts again at the first entry clears it).
  public var handedOn = false

  public init(initialWindow: Int, maxWindow: Int) {
    self.initialWindow = max(1, initialWindow)
    self.maxWindow = max(self.initialWindow, maxWindow)
  }

  /// Records an open of entry `index` of `count`; returns the entries to fetch ahead, if any.
  public mutating func onOpen(index: Int, count: Int) -> Range<Int>? {
    defer { lastOpened = index }
    if index == 0 {
      // A walk (re)starts at the first entry.
      window = 0
      requestedEnd = 0
      handedOn = false
    }
    guard index == 0 || lastOpened == index - 1 else {
      window = 0
      requestedEnd = index + 1
      return nil
    }
    window = window == 0 ? initialWindow : min(window * 2, maxWindow)
    let start = max(requestedEnd, index + 1)
    let end = min(index + 1 + window, count)
    requestedEnd = max(requestedEnd, end)
    return start < end ? start..<end : nil
  }
}

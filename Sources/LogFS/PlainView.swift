import LogText
import ObjectStore
import Synchronization

/// The plain-text view of logs (`FilesystemConfiguration.plainText`): which files it shows as plain
/// text, and the indexes that serve them (`PlainTextIndex`), kept by object version.
///
/// A log's plain text is not the same size as the log, and `stat` must show the size a read
/// returns (`tail -c`, `wc -c` and `rsync` trust it): the first lookup of a log renders it whole,
/// through the block caches, to learn the size, and keeps an index of places to start from. A read
/// then renders from the place before it. Indexes are kept in memory, up to `limitBytes` (the
/// least recently used are dropped, and made again by rendering the log again, from the caches).
final class PlainIndexCache: Sendable {
  struct Key: Hashable, Sendable {
    var store: String
    var key: String
    var etag: String
    var version: String?
  }

  private struct State {
    var entries: [Key: (index: PlainTextIndex, used: UInt64)] = [:]
    var bytes = 0
    var clock: UInt64 = 0
  }

  let limitBytes: Int
  private let state = Mutex(State())

  init(limitBytes: Int) {
    self.limitBytes = limitBytes
  }

  /// The index of an object version, if kept.
  func index(_ key: Key) -> PlainTextIndex? {
    state.withLock { state in
      guard let entry = state.entries[key] else { return nil }
      state.clock += 1
      state.entries[key] = (entry.index, state.clock)
      return entry.index
    }
  }

  func insert(_ index: PlainTextIndex, for key: Key) {
    let cost = Self.cost(index, key)
    state.withLock { state in
      state.clock += 1
      if let old = state.entries.updateValue((index, state.clock), forKey: key) {
        state.bytes -= Self.cost(old.index, key)
      }
      state.bytes += cost
      guard state.bytes > limitBytes else { return }
      // Past the limit: the least recently used go, down to 7/8 of it (a sort, once in a while).
      let order = state.entries.sorted { $0.value.used < $1.value.used }
      for (old, entry) in order where state.bytes > limitBytes / 8 * 7 && old != key {
        state.entries[old] = nil
        state.bytes -= Self.cost(entry.index, old)
      }
    }
  }

  /// How many indexes are kept, and their bytes.
  var statistics: (count: Int, bytes: Int) {
    state.withLock { ($0.entries.count, $0.bytes) }
  }

  private static func cost(_ index: PlainTextIndex, _ key: Key) -> Int {
    index.heldBytes + key.key.utf8.count + key.etag.utf8.count + 128
  }
}

/// Whether a file is shown as plain text in the plain view: a log, that is an object whose name
/// ends in `.log` (job logs, in every layout); metadata such as `build.json` is shown as it is.
func showsAsPlainText(name: String, source: FileSource) -> Bool {
  guard case .object = source else { return false }
  return name.utf8.count > 4 && name.utf8.suffix(4).elementsEqual(".log".utf8)
}

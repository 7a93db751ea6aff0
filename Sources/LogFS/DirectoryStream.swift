import Synchronization

/// The entries of a directory too big to list at once, past those listed when it was opened: read a
/// page at a time as readdir asks for them, keeping one page in memory, however big the directory.
///
/// Offsets go on from the listed entries' (`start`). Where each fetched page began is kept (an
/// offset and the continuation it was fetched from, a few bytes per page), so that a reader going
/// back (`seekdir`, or a second readdir of the same handle) gets the same entries at the same offsets
/// by fetching that page again.
final class DirectoryStream: Sendable {
  private struct State {
    /// The page held: its first entry's offset, and its entries.
    var base: Int
    var window: [DirectoryEntry] = []
    /// Where the page after the held one starts; nil past the last page.
    var next: String?
    /// Each page fetched: its first offset and the continuation it was fetched from, in order.
    var pages: [(offset: Int, continuation: String)] = []
  }

  private let state: Mutex<State>

  init(start: Int, continuation: String) {
    state = Mutex(State(base: start, next: continuation))
  }

  /// The entries from `offset` on (those of the page that holds it), fetching pages with `fetch`
  /// (given a continuation: the page's entries and the next continuation) as needed.
  func entries(
    from offset: Int, fetch: (String) throws(FilesystemError) -> (entries: [DirectoryEntry], next: String?)
  ) throws(FilesystemError) -> ArraySlice<DirectoryEntry> {
    // A store that answered page after page of nothing, without end, is given up on.
    var emptyPages = 0
    while emptyPages < 100 {
      // What to fetch is decided under the lock; the fetch itself runs without it.
      enum Step {
        case done(ArraySlice<DirectoryEntry>)
        case fetch(offset: Int, continuation: String)
      }
      let step = state.withLock { state -> Step in
        let end = state.base + state.window.count
        if offset >= state.base && offset < end { return .done(state.window[(offset - state.base)...]) }
        if offset >= end {
          guard let next = state.next else { return .done([]) }
          return .fetch(offset: end, continuation: next)
        }
        // Behind the page held: the page that holds the offset, fetched again.
        guard let page = state.pages.last(where: { $0.offset <= offset }) else { return .done([]) }
        return .fetch(offset: page.offset, continuation: page.continuation)
      }
      switch step {
      case .done(let entries):
        return entries
      case .fetch(let at, let continuation):
        let (entries, next) = try fetch(continuation)
        state.withLock { state in
          if !state.pages.contains(where: { $0.offset == at }) { state.pages.append((at, continuation)) }
          state.base = at
          state.window = entries
          state.next = next
        }
        // An empty page that is not the last: go on to the next one.
        if entries.isEmpty {
          if next == nil { return [] }
          emptyPages += 1
        }
      }
    }
    return []
  }
}

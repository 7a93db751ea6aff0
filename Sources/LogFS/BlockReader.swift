import BlockCache
import Glibc
import Logging
import ObjectStore
import Synchronization

/// The read path for remote objects, in fixed-size blocks.
///
/// A block comes from the memory cache, else the disk cache, else the shared cache (a bucket a
/// fleet shares, for versions that never change), else the store. Every block being
/// fetched has one promise in `inFlight`, so concurrent readers of a block share one fetch. A
/// fetch covers a run of consecutive blocks with one ranged GET (If-Match on the ETag, so blocks of
/// two versions of an object never mix), and each block is published as soon as its last byte
/// arrives, so a reader waiting for the first block of an 8 MiB part does not wait for the rest.
/// Readahead hands runs of blocks to the filesystem's one pool of fetch threads, shared by every
/// store; a reader fetches what it needs now on its own thread.
final class BlockReader: Sendable {
  struct ObjectVersion: Sendable, Hashable {
    let key: String
    let etag: String
    let size: UInt64
    /// The store's version to read, or nil for the current one. Blocks are keyed by ETag, not this.
    var version: String? = nil
  }

  let client: any ObjectClient
  let source: String
  let blockSize: Int
  let partBlocks: Int
  let memory: MemoryBlockCache
  /// The disk cache, through its writer: blocks queued for it are found there too.
  let disk: DiskCacheWriter?
  /// The bucket a fleet shares blocks in: read after the disk cache, written after the store.
  let shared: SharedBlockCache?
  let pool: WorkerPool
  let logger: Logger
  let waitLimit: Double
  let counters: ReadCounters

  private let inFlight = Mutex<[BlockKey: InFlightBlock]>([:])

  init(
    client: any ObjectClient, blockSize: Int, partSize: Int, memory: MemoryBlockCache, disk: DiskCacheWriter?,
    shared: SharedBlockCache? = nil, pool: WorkerPool, waitLimit: Double, counters: ReadCounters, logger: Logger
  ) {
    self.client = client
    self.source = client.identity
    self.blockSize = blockSize
    self.partBlocks = max(1, partSize / blockSize)
    self.memory = memory
    self.disk = disk
    self.shared = shared
    self.pool = pool
    self.waitLimit = waitLimit
    self.counters = counters
    self.logger = logger
  }

  /// Blocks claimed by a fetch and not yet published or failed (for tests).
  var claimedBlocks: Int { inFlight.withLock { $0.count } }

  private func blockKey(_ object: ObjectVersion, _ index: UInt64) -> BlockKey {
    BlockKey(source: source, key: object.key, etag: object.etag, index: index)
  }

  private func blockCount(_ object: ObjectVersion) -> UInt64 {
    (object.size + UInt64(blockSize) - 1) / UInt64(blockSize)
  }

  private func blockRange(_ object: ObjectVersion, _ index: UInt64) -> Range<UInt64> {
    let start = index * UInt64(blockSize)
    return start..<min(start + UInt64(blockSize), object.size)
  }

  /// Reads `[offset, end)` of `object`, blocking until the bytes are there: slices of the cached
  /// blocks, in order, so the bytes are not copied on their way to the kernel (a block still being
  /// fetched gives a copy of the part the read needs, as soon as that part has arrived).
  func read(_ object: ObjectVersion, offset: UInt64, end: UInt64) throws(FilesystemError) -> [ArraySlice<UInt8>] {
    guard offset < end else { return [] }
    let first = offset / UInt64(blockSize)
    let last = (end - 1) / UInt64(blockSize)
    var pieces: [ArraySlice<UInt8>] = []
    pieces.reserveCapacity(Int(last - first) + 1)
    var missing: [UInt64] = []
    var cached: [UInt64: [UInt8]] = [:]
    for index in first...last {
      if let bytes = memory.get(blockKey(object, index)) {
        counters.memoryHits.add(1, ordering: .relaxed)
        cached[index] = bytes
      } else {
        missing.append(index)
      }
    }
    var arrived: [UInt64: InFlightBlock.Chunk] = [:]
    if !missing.isEmpty {
      // Claim what nobody fetches yet, fetch that, then wait for the bytes this read needs. Every
      // missing block is in flight (ours or another reader's), which keeps its bytes even if
      // memory evicts them.
      let (claimed, blocks) = claim(object, missing)
      let fromStore = takeCached(object, claimed)
      if !fromStore.isEmpty {
        // On a thread of its own: this read may need only the start of the last block, and returns
        // once that has arrived, while the fetch goes on to publish every block whole.
        pool.spawn { [self] in
          // The readers of these blocks get any error from the blocks themselves, and say it.
          try? fetchFromStore(object, fromStore)
        }
      }
      let ours = Set(claimed)
      for index in missing {
        let (from, to) = needed(object, index, offset: offset, end: end)
        // A block this read fetches is waited for as long as its fetch runs, which its own network
        // timeouts bound; one another reader or readahead fetches, at most the wait limit.
        arrived[index] = try blocks[index]!.wait(
          from: from, to: to, whole: from == 0 && to == blockRange(object, index).count,
          seconds: ours.contains(index) ? nil : waitLimit, what: "block \(index) of \(object.key)")
      }
    }
    for index in first...last {
      let (from, to) = needed(object, index, offset: offset, end: end)
      if let block = cached[index] {
        guard to <= block.count else { throw FilesystemError(.malformed, "block \(index) of \(object.key) is short") }
        pieces.append(block[from..<to])
      } else {
        let chunk = arrived[index]!
        guard from >= chunk.start, to <= chunk.start + chunk.bytes.count else {
          throw FilesystemError(.malformed, "block \(index) of \(object.key) is short")
        }
        pieces.append(chunk.bytes[(from - chunk.start)..<(to - chunk.start)])
      }
    }
    return pieces
  }

  /// The part of block `index` that a read of `[offset, end)` needs, in bytes from the block's start.
  private func needed(_ object: ObjectVersion, _ index: UInt64, offset: UInt64, end: UInt64) -> (Int, Int) {
    let range = blockRange(object, index)
    return (Int(max(offset, range.lowerBound) - range.lowerBound), Int(min(end, range.upperBound) - range.lowerBound))
  }

  /// Starts fetching `[offset, end)` in the background, in parts, skipping what is cached or in flight.
  func prefetch(_ object: ObjectVersion, offset: UInt64, end: UInt64) {
    // A suffix-only store sends the whole object on the first miss: there is nothing to read ahead.
    guard offset < end, client.rangeSupport == .any else { return }
    let first = offset / UInt64(blockSize)
    let last = min((end - 1) / UInt64(blockSize), blockCount(object) - 1)
    guard first <= last else { return }
    let wanted = (first...last).filter { !memory.contains(blockKey(object, $0)) }
    let (claimed, _) = claim(object, wanted)
    var start = 0
    while start < claimed.count {
      let part = Array(claimed[start..<min(start + partBlocks, claimed.count)])
      start += partBlocks
      pool.submit { [self] in
        counters.prefetchedBlocks.add(part.count, ordering: .relaxed)
        do throws(FilesystemError) {
          try fetch(object, part)
        } catch {
          // A reader that needs these blocks gets the error from its own promise.
          logger.debug("readahead of \(object.key) failed: \(error.message)")
        }
      }
    }
  }

  /// Keeps the whole blocks that `tail`, the object's last bytes, covers, as if fetched: the request
  /// that learned an object's size brought them (`Namespace.size`).
  func seed(_ object: ObjectVersion, tail: [UInt8]) {
    guard !tail.isEmpty, UInt64(tail.count) <= object.size else { return }
    let start = object.size - UInt64(tail.count)
    var index = blockCount(object)
    while index > 0 {
      index -= 1
      let range = blockRange(object, index)
      guard range.lowerBound >= start else { break }
      if memory.contains(blockKey(object, index)) { continue }
      let bytes = Array(tail[Int(range.lowerBound - start)..<Int(range.upperBound - start)])
      counters.fetchedBlocks.add(1, ordering: .relaxed)
      publish(object, index, bytes, from: .store)
    }
  }

  /// Hands back the blocks within `[offset, end)`, which a sequential reader has read: they leave
  /// the memory cache where the disk cache keeps them and a block can be fetched alone again. Else
  /// (no disk cache, or a store that serves only suffixes, whose blocks cost a whole-object GET to
  /// get back) they stay, but as the least recently used, so they are evicted before any block
  /// fetched ahead of a reader and not read yet.
  func release(_ object: ObjectVersion, offset: UInt64, end: UInt64) {
    guard offset < end else { return }
    let drop = disk != nil && client.rangeSupport == .any
    for index in (offset / UInt64(blockSize))..<((end - 1) / UInt64(blockSize) + 1) {
      if drop { memory.remove(blockKey(object, index)) } else { memory.demote(blockKey(object, index)) }
    }
  }

  /// Marks the blocks nobody is fetching as in flight; returns those (ours to fetch) and the
  /// in-flight entry of every block asked for, ours and others'.
  private func claim(_ object: ObjectVersion, _ indices: [UInt64]) -> ([UInt64], [UInt64: InFlightBlock]) {
    inFlight.withLock { inFlight in
      var claimed: [UInt64] = []
      var waiting: [UInt64: InFlightBlock] = [:]
      for index in indices {
        let key = blockKey(object, index)
        if let block = inFlight[key] {
          waiting[index] = block
        } else {
          let block = InFlightBlock()
          inFlight[key] = block
          waiting[index] = block
          claimed.append(index)
        }
      }
      return (claimed, waiting)
    }
  }

  /// Fetches claimed blocks: from the disk cache where it has them, else from the shared cache, else
  /// in runs of consecutive blocks from the store. Every claimed block is settled, with bytes or an
  /// error.
  private func fetch(_ object: ObjectVersion, _ claimed: [UInt64]) throws(FilesystemError) {
    try fetchFromStore(object, takeCached(object, claimed))
  }

  /// Publishes the claimed blocks that the disk cache or the shared cache has; returns the rest.
  private func takeCached(_ object: ObjectVersion, _ claimed: [UInt64]) -> [UInt64] {
    var toFetch: [UInt64] = []
    var shared = sharedCache(for: object)
    for index in claimed {
      let key = blockKey(object, index)
      let count = blockRange(object, index).count
      if let disk, let bytes = disk.get(key), bytes.count == count {
        counters.diskHits.add(1, ordering: .relaxed)
        publish(object, index, bytes, from: .disk)
      } else if let bytes = shared?.get(key, count: Int(count)) {
        publish(object, index, bytes, from: .shared)
      } else {
        // A machine that fetched a file shared all its blocks, so after one miss the rest of these
        // usually miss too: they go to the store without a GET of the shared bucket each.
        shared = nil
        toFetch.append(index)
      }
    }
    return toFetch
  }

  /// Fetches claimed blocks from the store, in runs of consecutive blocks.
  ///
  /// A store that serves only suffixes is asked for a run that ends at the object's end as is (a
  /// `tail` costs only the end); any other miss fetches the whole object once, keeping every block.
  private func fetchFromStore(_ object: ObjectVersion, _ toFetch: [UInt64]) throws(FilesystemError) {
    guard !toFetch.isEmpty else { return }
    var runs: [[UInt64]] = []
    for index in toFetch {
      if let last = runs.last?.last, last + 1 == index {
        runs[runs.count - 1].append(index)
      } else {
        runs.append([index])
      }
    }
    let lastBlock = blockCount(object) - 1
    if client.rangeSupport == .suffixOnly && (runs.count > 1 || runs[0].last != lastBlock) {
      // Everything nobody fetches yet comes along: the store sends it anyway.
      let (rest, _) = claim(
        object, (0...lastBlock).filter { !toFetch.contains($0) && !memory.contains(blockKey(object, $0)) })
      try fetchRun(object, (toFetch + rest).sorted(), range: 0..<object.size)
      return
    }
    var firstError: FilesystemError?
    for run in runs {
      do throws(FilesystemError) {
        try fetchRun(
          object, run, range: blockRange(object, run.first!).lowerBound..<blockRange(object, run.last!).upperBound)
      } catch {
        firstError = firstError ?? error
      }
    }
    if let firstError { throw firstError }
  }

  /// One GET of `range`, publishing each block of `wanted` (sorted) as its last byte arrives and
  /// skipping the bytes of other blocks.
  private func fetchRun(_ object: ObjectVersion, _ wanted: [UInt64], range: Range<UInt64>) throws(FilesystemError) {
    let wantedSet = Set(wanted)
    var published = Set<UInt64>()
    var offset = range.lowerBound
    // The block being filled: its readers may take their bytes before it is whole.
    var filling: InFlightBlock?
    do throws(ObjectStoreError) {
      try client.get(key: object.key, version: object.version, range: range, ifMatch: object.etag) { bytes in
        var remaining = bytes[...]
        while !remaining.isEmpty {
          let index = offset / UInt64(blockSize)
          let blockRange = blockRange(object, index)
          let take = Int(min(blockRange.upperBound - offset, UInt64(remaining.count)))
          if wantedSet.contains(index) {
            if offset == blockRange.lowerBound {
              // Ours (claimed); a block nobody waits for any more still gets a buffer to fill.
              filling = inFlight.withLock { $0[blockKey(object, index)] } ?? InFlightBlock()
            }
            filling?.append(remaining.prefix(take), capacity: blockRange.count)
            if offset + UInt64(take) == blockRange.upperBound, let block = filling {
              counters.fetchedBlocks.add(1, ordering: .relaxed)
              publish(object, index, block.takeBytes(), from: .store)
              published.insert(index)
              filling = nil
            }
          }
          remaining = remaining.dropFirst(take)
          offset += UInt64(take)
        }
      }
    } catch {
      let failure = FilesystemError(error, context: "read of \(source)/\(object.key)")
      fail(object, wanted.filter { !published.contains($0) }, failure)
      throw failure
    }
    let missing = wanted.filter { !published.contains($0) }
    if !missing.isEmpty {
      let failure = FilesystemError(
        .malformed, "read of \(source)/\(object.key) failed: the GET ended before byte \(range.upperBound)")
      fail(object, missing, failure)
      throw failure
    }
  }

  /// The shared cache, if the object's blocks may be shared: a version that never changes.
  private func sharedCache(for object: ObjectVersion) -> SharedBlockCache? {
    guard let shared, client.isFixed(etag: object.etag) else { return nil }
    return shared
  }

  /// Where a published block came from, which says which caches lack it.
  private enum Origin { case disk, shared, store }

  private func publish(_ object: ObjectVersion, _ index: UInt64, _ bytes: [UInt8], from origin: Origin) {
    let key = blockKey(object, index)
    memory.put(key, bytes)
    let block = inFlight.withLock { $0.removeValue(forKey: key) }
    block?.settle(.success(bytes))
    // Readers waiting for the block have it before it is written to disk or shared.
    if origin != .disk { disk?.put(key, bytes) }
    if origin == .store { sharedCache(for: object)?.put(key, bytes) }
  }

  private func fail(_ object: ObjectVersion, _ indices: [UInt64], _ error: FilesystemError) {
    for index in indices {
      let block = inFlight.withLock { $0.removeValue(forKey: blockKey(object, index)) }
      block?.settle(.failure(error))
    }
  }
}

/// A block being fetched. Its readers wait for it whole, or, when they need only part of it, for
/// that part: the fetch fills the block's bytes here, and a reader whose bytes have arrived gets a
/// copy of them at once, before the block is whole.
final class InFlightBlock: Sendable {
  /// Bytes of a block from `start` on: the whole block once published, else what a reader needed.
  struct Chunk: Sendable {
    let bytes: [UInt8]
    let start: Int
  }

  private struct PartWaiter {
    let from: Int
    let to: Int
    let promise: Promise<Chunk>
  }

  private struct State {
    /// What the fetch has received of the block so far.
    var bytes: [UInt8] = []
    var waiters: [PartWaiter] = []
    var outcome: Result<[UInt8], FilesystemError>?
  }

  private let whole = Promise<[UInt8]>()
  private let state = Mutex(State())

  /// Waits for bytes `from..<to` of the block (all of it if `whole`), at most `seconds` (nil: until
  /// the fetch settles it, for the reader that started the fetch).
  func wait(
    from: Int, to: Int, whole wantsWhole: Bool, seconds: Double?, what: @autoclosure () -> String
  ) throws(FilesystemError) -> Chunk {
    enum Wait {
      case whole
      case now(Chunk)
      case part(Promise<Chunk>)
    }
    let wait = state.withLock { state -> Wait in
      // A reader of the whole block, or of a block already settled, waits for (or takes) it whole.
      guard state.outcome == nil, !wantsWhole else { return .whole }
      if to <= state.bytes.count { return .now(Chunk(bytes: Array(state.bytes[from..<to]), start: from)) }
      let promise = Promise<Chunk>()
      state.waiters.append(PartWaiter(from: from, to: to, promise: promise))
      return .part(promise)
    }
    switch wait {
    case .whole: return Chunk(bytes: try whole.wait(seconds: seconds, what: what()), start: 0)
    case .now(let chunk): return chunk
    case .part(let promise): return try promise.wait(seconds: seconds, what: what())
    }
  }

  /// Appends bytes the fetch received; readers waiting for a part they complete get it now.
  func append(_ bytes: Slice<UnsafeRawBufferPointer>, capacity: Int) {
    let ready = state.withLock { state -> [(PartWaiter, Chunk)] in
      if state.bytes.isEmpty { state.bytes.reserveCapacity(capacity) }
      state.bytes.append(contentsOf: bytes)
      guard !state.waiters.isEmpty else { return [] }
      let count = state.bytes.count
      let ready = state.waiters.filter { $0.to <= count }.map { waiter in
        (waiter, Chunk(bytes: Array(state.bytes[waiter.from..<waiter.to]), start: waiter.from))
      }
      state.waiters.removeAll { $0.to <= count }
      return ready
    }
    for (waiter, chunk) in ready { waiter.promise.fulfil(.success(chunk)) }
  }

  /// The bytes received, handed over once the block is whole (so they are not copied).
  func takeBytes() -> [UInt8] {
    state.withLock { state in
      defer { state.bytes = [] }
      return state.bytes
    }
  }

  /// The block whole, or why it could not be fetched: every reader gets it.
  func settle(_ outcome: Result<[UInt8], FilesystemError>) {
    let waiters = state.withLock { state -> [PartWaiter] in
      state.outcome = outcome
      state.bytes = []
      defer { state.waiters = [] }
      return state.waiters
    }
    whole.fulfil(outcome)
    for waiter in waiters { waiter.promise.fulfil(outcome.map { Chunk(bytes: $0, start: 0) }) }
  }
}

/// What the read path did, for `bklogfs stats` and tests.
final class ReadCounters: Sendable {
  let memoryHits = Atomic<Int>(0)
  let diskHits = Atomic<Int>(0)
  let fetchedBlocks = Atomic<Int>(0)
  let prefetchedBlocks = Atomic<Int>(0)
}

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

  private let inFlight = Mutex<[BlockKey: Promise<[UInt8]>]>([:])

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
  /// blocks, in order, so the bytes are not copied on their way to the kernel.
  func read(_ object: ObjectVersion, offset: UInt64, end: UInt64) throws(FilesystemError) -> [ArraySlice<UInt8>] {
    guard offset < end else { return [] }
    let first = offset / UInt64(blockSize)
    let last = (end - 1) / UInt64(blockSize)
    var blocks: [UInt64: [UInt8]] = [:]
    var missing: [UInt64] = []
    for index in first...last {
      if let bytes = memory.get(blockKey(object, index)) {
        counters.memoryHits.add(1, ordering: .relaxed)
        blocks[index] = bytes
      } else {
        missing.append(index)
      }
    }
    if !missing.isEmpty {
      // Claim what nobody fetches yet, fetch that here, then wait for the rest. Every missing block
      // has a promise (ours or another reader's), which keeps its bytes even if memory evicts them.
      let (claimed, promises) = claim(object, missing)
      try fetch(object, claimed)
      for index in missing {
        blocks[index] = try promises[index]!.wait(seconds: waitLimit, what: "block \(index) of \(object.key)")
      }
    }
    var pieces: [ArraySlice<UInt8>] = []
    pieces.reserveCapacity(Int(last - first) + 1)
    for index in first...last {
      let block = blocks[index]!
      let blockStart = index * UInt64(blockSize)
      let from = Int(max(offset, blockStart) - blockStart)
      let to = Int(min(end, blockStart + UInt64(block.count)) - blockStart)
      guard from <= to else { throw FilesystemError(.malformed, "block \(index) of \(object.key) is short") }
      pieces.append(block[from..<to])
    }
    return pieces
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

  /// Registers promises for the blocks nobody is fetching; returns those (ours to fetch) and the
  /// promise of every block asked for, ours and others'.
  private func claim(_ object: ObjectVersion, _ indices: [UInt64]) -> ([UInt64], [UInt64: Promise<[UInt8]>]) {
    inFlight.withLock { inFlight in
      var claimed: [UInt64] = []
      var waiting: [UInt64: Promise<[UInt8]>] = [:]
      for index in indices {
        let key = blockKey(object, index)
        if let promise = inFlight[key] {
          waiting[index] = promise
        } else {
          let promise = Promise<[UInt8]>()
          inFlight[key] = promise
          waiting[index] = promise
          claimed.append(index)
        }
      }
      return (claimed, waiting)
    }
  }

  /// Fetches claimed blocks: from the disk cache where it has them, else from the shared cache, else
  /// in runs of consecutive blocks from the store. Every claimed block's promise is fulfilled, with
  /// bytes or an error.
  ///
  /// A store that serves only suffixes is asked for a run that ends at the object's end as is (a
  /// `tail` costs only the end); any other miss fetches the whole object once, keeping every block.
  private func fetch(_ object: ObjectVersion, _ claimed: [UInt64]) throws(FilesystemError) {
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
    var buffer = [UInt8]()
    buffer.reserveCapacity(blockSize)
    do throws(ObjectStoreError) {
      try client.get(key: object.key, version: object.version, range: range, ifMatch: object.etag) { bytes in
        var remaining = bytes[...]
        while !remaining.isEmpty {
          let index = offset / UInt64(blockSize)
          let blockEnd = blockRange(object, index).upperBound
          let take = Int(min(blockEnd - offset, UInt64(remaining.count)))
          if wantedSet.contains(index) {
            buffer.append(contentsOf: remaining.prefix(take))
            if offset + UInt64(take) == blockEnd {
              counters.fetchedBlocks.add(1, ordering: .relaxed)
              publish(object, index, buffer, from: .store)
              published.insert(index)
              buffer.removeAll(keepingCapacity: true)
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
    let promise = inFlight.withLock { $0.removeValue(forKey: key) }
    promise?.fulfil(.success(bytes))
    // Readers waiting for the block have it before it is written to disk or shared.
    if origin != .disk { disk?.put(key, bytes) }
    if origin == .store { sharedCache(for: object)?.put(key, bytes) }
  }

  private func fail(_ object: ObjectVersion, _ indices: [UInt64], _ error: FilesystemError) {
    for index in indices {
      let promise = inFlight.withLock { $0.removeValue(forKey: blockKey(object, index)) }
      promise?.fulfil(.failure(error))
    }
  }
}

/// What the read path did, for `bklogfs stats` and tests.
final class ReadCounters: Sendable {
  let memoryHits = Atomic<Int>(0)
  let diskHits = Atomic<Int>(0)
  let fetchedBlocks = Atomic<Int>(0)
  let prefetchedBlocks = Atomic<Int>(0)
}

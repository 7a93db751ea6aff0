public import BlockCache
import Glibc
public import LogText
public import Logging
import ObjectStore
import Synchronization
public import SystemBase

public struct FilesystemConfiguration: Sendable {
  public var blockSize: Int
  /// Bytes per ranged GET issued by readahead.
  public var partSize: Int
  public var initialReadahead: UInt64
  public var maxReadahead: UInt64
  public var fetchThreads: Int
  /// How long a directory listing is trusted before it is listed again, in seconds, unless the
  /// namespace says otherwise for a listing.
  public var directoryTTL: Double
  /// The longest any reader waits for a fetch that another thread runs, in seconds.
  public var waitLimit: Double
  /// Files of a directory fetched ahead of a walk through it: the first window, and the most it
  /// grows to (0 turns walk prefetch off). Each file ahead costs at most `initialReadahead` bytes.
  public var initialWalkAhead: Int
  public var maxWalkAhead: Int
  /// The most bytes of fetched blocks queued for the disk cache's writer (`DiskCacheWriter`); 0
  /// writes each block on the thread that fetched it.
  public var diskWriteQueueBytes: Int
  /// The most names (files, directories and links) whose attributes and listings are kept in
  /// memory once the kernel no longer holds them (`InodeTable`).
  public var metadataCacheNames: Int
  /// Shows logs as plain text (`PlainTextRenderer`), rendered with these options; nil shows them
  /// as stored.
  public var plainText: PlainTextOptions?
  /// The most bytes of plain-text indexes kept in memory (`PlainIndexCache`).
  public var plainIndexBytes: Int
  /// Seconds between two polls of the end of a growing log (`LiveLogs`), mount-wide.
  public var followInterval: Double

  public init(
    blockSize: Int = 1 << 20, partSize: Int = 4 << 20, initialReadahead: UInt64 = 1 << 20,
    maxReadahead: UInt64 = 64 << 20, fetchThreads: Int = 8, directoryTTL: Double = 60, waitLimit: Double = 300,
    initialWalkAhead: Int = 4, maxWalkAhead: Int = 16, diskWriteQueueBytes: Int = 0,
    metadataCacheNames: Int = 1_000_000, plainText: PlainTextOptions? = nil, plainIndexBytes: Int = 64 << 20,
    followInterval: Double = 5
  ) {
    self.followInterval = followInterval
    self.metadataCacheNames = metadataCacheNames
    self.plainText = plainText
    self.plainIndexBytes = plainIndexBytes
    self.blockSize = blockSize
    self.partSize = partSize
    self.initialReadahead = initialReadahead
    self.maxReadahead = maxReadahead
    self.fetchThreads = fetchThreads
    self.directoryTTL = directoryTTL
    self.waitLimit = waitLimit
    self.initialWalkAhead = initialWalkAhead
    self.maxWalkAhead = maxWalkAhead
    self.diskWriteQueueBytes = diskWriteQueueBytes
  }
}

/// The filesystem core: lookups, listings, opens and reads over a namespace, with no FUSE types,
/// so tests drive it directly. Safe to call from any number of threads at once.
public final class LogFilesystem: Sendable {
  public static let rootInode = InodeTable.rootInode

  public let namespace: any Namespace
  public let configuration: FilesystemConfiguration
  let logger: Logger
  let memoryCache: MemoryBlockCache
  let diskCache: DiskBlockCache?
  let diskWriter: DiskCacheWriter?
  /// The bucket a fleet of machines shares blocks in (`--shared-cache`), if any.
  let sharedCache: SharedBlockCache?
  /// Times listings' TTLs.
  let clock: any MonotonicClock
  let counters = ReadCounters()

  // LOCK ORDERING
  //
  // Every lock below, and those of the parts this class uses (each BlockReader's `inFlight`, the
  // memory cache, the disk cache and its writer, SingleFlight's and each Promise's), is a leaf:
  // held for a few dictionary operations, never while calling the namespace, a store, a cache, the
  // `fileChanged` callback or the logger, and never while waiting. The one nesting is
  //
  //     table  >  walks          (followWalk: the walk's position is read from the listing)
  //     table  >  plainIndexes   (attributes: a log's plain-text size)
  //     liveLogs  >  a live log's state   (LiveLogs.open and close; neither takes another lock)
  //
  // so neither is held while taking `table`. A new nesting must be added here, in order.
  // Waits (a Promise, a SingleFlight follower, the pool's semaphore) happen with no lock held.
  // `sequentialReaders` is an atomic, changed under a file's `stream` lock only to keep the count
  // in step with that file's `counted` flag.
  private let table: Mutex<InodeTable>
  private let listings: SingleFlight<UInt64, Void>
  /// Files being sized on open (`Namespace.size`), by inode: readers opening one at once share a request.
  private let sizings: SingleFlight<UInt64, Void>
  /// Logs being rendered to learn their plain text's size (`plainIndex`), by inode.
  private let plainSizings: SingleFlight<UInt64, PlainTextIndex>
  /// The plain-text indexes of logs, in the plain view.
  let plainIndexes: PlainIndexCache
  /// Logs still growing that are open, followed (`tail -f`).
  let liveLogs: LiveLogs
  private let handles = Mutex(HandleTable())
  /// One block reader per remote store, made on first use.
  private let readers = Mutex<[String: BlockReader]>([:])
  /// The fetch threads readahead and walks run on: one pool, whatever the number of stores.
  private let pool: WorkerPool
  /// The walk through each directory whose files are being opened, by the directory's inode.
  private let walks = Mutex<[UInt64: WalkState]>([:])
  /// Told the inode of every file whose content changed (a new ETag or size), so the kernel drops
  /// what it cached of it; set by the FUSE adapter.
  private let fileChanged = Mutex<(@Sendable (UInt64) -> Void)?>(nil)
  /// Told the names the kernel holds that the inode table dropped past its capacity, so that the
  /// kernel forgets them too; set by the FUSE adapter.
  private let namesDropped = Mutex<(@Sendable ([(parent: UInt64, name: String)]) -> Void)?>(nil)
  /// Forgets the kernel sent that the table has yet to take (`forget`).
  private let pendingForgets = SleepingMutex<[(inode: UInt64, count: UInt64)]>([])
  /// The most names the table held since memory was last given back to the system (`giveBackMemory`).
  private let namesSinceTrim = Atomic<Int>(0)
  /// What was already reported as left out of the tree, so each is logged once.
  private let reported = Mutex<Set<ExactName>>([])
  /// Files sized with a size their store did not give (`SizedFile.isConfirmed`), by inode: a read
  /// the store refuses as stale sizes them again (`sizeWasWrong`).
  private let unconfirmedSizes = Mutex<Set<UInt64>>([])
  /// The last version list given, by inode, with when: `getxattr` is asked twice for one read (the
  /// size, then the value), and the second is answered from here within a few seconds.
  private let recentVersionList = Mutex<(inode: UInt64, text: String, at: Double)?>(nil)

  /// Sequential readers of remote files now, counted while their readahead window is open: the
  /// memory cache's half they share for readahead is split between them (`readaheadLimit`).
  private let sequentialReaders = Atomic<Int>(0)

  private final class OpenFile: Sendable {
    let inode: UInt64
    let source: FileSource
    /// The size reads see: the object's, or in the plain view its plain text's.
    let size: UInt64
    /// The object's size.
    let rawSize: UInt64
    /// In the plain view, the index its reads render from, and where the last read left off.
    let plainIndex: PlainTextIndex?
    /// A log still growing: what it has grown past `rawSize` since the open.
    let live: LiveLog?
    let plainCursor = Mutex(PlainTextCursor())
    let stream: Mutex<Stream>
    /// Set when a read found the size it was opened with wrong (`sizeWasWrong`): later reads of the
    /// handle fail at once rather than ask the store again for a version it does not have.
    let sizeWasWrong = Atomic<Bool>(false)

    /// How the file is being read, and whether it is counted in `sequentialReaders`.
    struct Stream {
      var readahead: ReadaheadState
      var counted = false
      var closed = false
    }

    init(
      inode: UInt64, source: FileSource, rawSize: UInt64, plainIndex: PlainTextIndex?, live: LiveLog? = nil,
      readahead: ReadaheadState
    ) {
      self.live = live
      self.inode = inode
      self.source = source
      self.size = plainIndex?.size ?? rawSize
      self.rawSize = rawSize
      self.plainIndex = plainIndex
      self.stream = Mutex(Stream(readahead: readahead))
    }
  }

  private struct HandleTable {
    var nextHandle: UInt64 = 1
    var files: [UInt64: OpenFile] = [:]
    /// Each open directory handle: the directory's inode, the snapshot of its entries, and for a
    /// directory too big to list at once, the stream of its other entries.
    var directories: [UInt64: (inode: UInt64, entries: [DirectoryEntry], stream: DirectoryStream?)] = [:]

    mutating func allocate() -> UInt64 {
      defer { nextHandle += 1 }
      return nextHandle
    }
  }

  public init(
    namespace: any Namespace, configuration: FilesystemConfiguration, memoryCache: MemoryBlockCache,
    diskCache: DiskBlockCache?, sharedCache: SharedBlockCache? = nil, clock: any MonotonicClock = SystemClock(),
    logger: Logger
  ) {
    self.namespace = namespace
    self.clock = clock
    self.configuration = configuration
    self.logger = logger
    self.memoryCache = memoryCache
    self.diskCache = diskCache
    self.sharedCache = sharedCache
    self.diskWriter = diskCache.map {
      DiskCacheWriter(cache: $0, maxQueuedBytes: configuration.diskWriteQueueBytes, clock: clock, logger: logger)
    }
    self.table = Mutex(
      InodeTable(
        rootKey: namespace.rootKey, source: namespace.sourceIdentity, capacity: configuration.metadataCacheNames))
    self.listings = SingleFlight(waitLimit: configuration.waitLimit)
    self.sizings = SingleFlight(waitLimit: configuration.waitLimit)
    self.plainSizings = SingleFlight(waitLimit: configuration.waitLimit)
    self.plainIndexes = PlainIndexCache(limitBytes: configuration.plainIndexBytes)
    let pool = WorkerPool(threads: configuration.fetchThreads)
    self.pool = pool
    self.liveLogs = LiveLogs(
      interval: configuration.followInterval, clock: clock, logger: logger, submit: { pool.submit($0) })
  }

  /// Sets what is told of files whose content changed under the mount.
  public func onFileChanged(_ body: @escaping @Sendable (UInt64) -> Void) {
    fileChanged.withLock { $0 = body }
    liveLogs.onChange(body)
  }

  /// Sets what is told of the names the kernel holds that the inode table let go past its capacity.
  public func onNamesDropped(_ body: @escaping @Sendable ([(parent: UInt64, name: String)]) -> Void) {
    namesDropped.withLock { $0 = body }
  }

  /// Keeps the inode table within its capacity, and passes on the names the kernel should forget.
  private func evictPastCapacity() {
    let now = clock.now()
    let (held, names) = table.withLock { table in
      takeForgets(into: &table, now: now)
      return (table.evict(), table.count)
    }
    giveBackMemory(names: names)
    guard !held.isEmpty, let body = namesDropped.withLock({ $0 }) else { return }
    body(held)
  }

  /// Passes on the files a listing or lookup found changed (taken under the same lock as it).
  private func report(changed: [UInt64]) {
    guard !changed.isEmpty, let body = fileChanged.withLock({ $0 }) else { return }
    for inode in changed { body(inode) }
  }

  /// Stops the fetch threads and writes out the blocks queued for the disk cache; call once the
  /// filesystem is unmounted.
  public func shutdown() {
    // A read may have returned before the rest of the blocks it fetched arrived, and readahead may
    // be under way: what they fetch is published (and queued for the disk cache) before it closes,
    // so a remount finds every block a read or readahead asked for.
    pool.shutdown()
    waitForFetches(seconds: configuration.waitLimit)
    diskWriter?.close()
    sharedCache?.close()
  }

  /// Waits at most `seconds` for the fetches that reads and readahead started to end (a read returns
  /// once its own bytes have arrived; the rest of the block goes on arriving); whether they all did.
  @discardableResult
  public func waitForFetches(seconds: Double) -> Bool {
    pool.waitForJobs(seconds: seconds)
  }

  // MARK: Names

  /// The entry of `name` in directory `parent`. With `reference`, the kernel is being given it:
  /// the inode is kept until the kernel forgets it (`forget`).
  public func lookup(parent: UInt64, name: String, reference: Bool = false) throws(FilesystemError) -> Attributes {
    let found = try lookupNode(parent: parent, name: name, reference: reference)
    do throws(FilesystemError) {
      return try withPlainSize(found)
    } catch {
      if reference { forget(found.inode, count: 1) }
      throw error
    }
  }

  private func lookupNode(parent: UInt64, name: String, reference: Bool) throws(FilesystemError) -> Attributes {
    if let problem = nameProblem(name) {
      throw FilesystemError(name.utf8.count > 255 ? .nameTooLong : .notFound, "cannot look up \(name): \(problem)")
    }
    var (key, listed) = try listed(name, in: parent)
    if listed == nil, let known = namespace.knownListing(directory: key) {
      // A directory a page of keys covered whole: taken as listed, so that the files a reader opens
      // in it one by one are fetched ahead as in a walk.
      record(known, of: parent, key: key)
      listed = try self.listed(name, in: parent).listed
    }
    switch listed {
    case .child(let child)?:
      if let found = attributes(of: child, reference: reference) { return found }
    case .missing?: throw .noEntry(key + name)
    case .unknown?, nil: break
    }
    var entry = try namespace.lookup(directory: key, name: name)
    if let found = entry, !sameBytes(found.name, name) || showable(found) != nil { entry = nil }
    let (found, changed) = table.withLock { table in
      let child = table.recordLookup(in: parent, name: name, entry: entry)
      if let child, reference { _ = table.reference(child) }
      return (child.flatMap { table.node($0) }.map(attributes), table.takeChangedFiles())
    }
    report(changed: changed)
    evictPastCapacity()
    guard let found else {
      throw .noEntry(key + name)
    }
    return found
  }

  /// The attributes of a node the table holds, referenced for the kernel if asked; nil if it is gone.
  private func attributes(of inode: UInt64, reference: Bool) -> Attributes? {
    table.withLock { table in
      guard let node = table.node(inode) else { return nil }
      if reference { _ = table.reference(inode) }
      return attributes(node)
    }
  }

  /// The kernel was given the inode `count` more times (readdirplus entries); false if it is gone.
  public func reference(_ inode: UInt64, count: UInt64 = 1) -> Bool {
    table.withLock { $0.reference(inode, count: count) }
  }

  /// The kernel forgot `count` of its references to the inode: once it holds none, the inode may go.
  ///
  /// The kernel sends forgets in bursts (after `notify_inval_entry`, under memory pressure), each on
  /// its own FUSE thread: waiting for the table's lock there would keep those threads spinning on it.
  /// A forget is queued instead, and taken by whoever holds the lock next, or now if it is free.
  public func forget(_ inode: UInt64, count: UInt64) {
    pendingForgets.withLock { $0.append((inode, count)) }
    let now = clock.now()
    let names = table.withLockIfAvailable { table in
      takeForgets(into: &table, now: now)
      return table.count
    }
    if let names { giveBackMemory(names: names) }
  }

  /// Once the table holds far fewer names than it did (the kernel forgot a walk's names, or they
  /// were evicted), the memory they took is given back to the system rather than kept in the heap.
  private func giveBackMemory(names: Int) {
    let most = namesSinceTrim.load(ordering: .relaxed)
    if names > most {
      namesSinceTrim.store(names, ordering: .relaxed)
    } else if most - names >= max(50_000, most / 2),
      namesSinceTrim.compareExchange(expected: most, desired: names, ordering: .relaxed).exchanged
    {
      returnFreedMemory()
    }
  }

  private func takeForgets(into table: inout InodeTable, now: Double) {
    let forgets = pendingForgets.withLock { pending in
      defer { pending.removeAll(keepingCapacity: pending.count <= 1024) }
      return pending
    }
    for forget in forgets { table.forget(forget.inode, count: forget.count, now: now) }
  }

  /// The names the inode table holds, for tests and the counters.
  public var cachedNames: Int {
    let now = clock.now()
    return table.withLock { table in
      takeForgets(into: &table, now: now)
      return table.count
    }
  }

  public func attributes(of inode: UInt64) throws(FilesystemError) -> Attributes {
    guard let node = table.withLock({ $0.node(inode) }) else {
      throw FilesystemError(.notFound, "unknown inode \(inode)")
    }
    if let live = liveLogs.log(of: inode) {
      // `tail -f` asks each second: the log's end is polled in the background when due.
      liveLogs.pollIfDue(inode: inode, live)
      var growing = attributes(node)
      growing.size = max(growing.size, live.size)
      growing.sizeIsKnown = true
      growing.isGrowing = !live.isFinished
      return growing
    }
    return try withPlainSize(attributes(node))
  }

  /// A directory or link shows the time its namespace gave it, and 0 (1970-01-01 UTC) without one,
  /// as the root does: never the mount's own time, which would change at each remount and make
  /// `rsync -a` set every directory's time again (doc/SEMANTICS.md, "Attributes").
  private func attributes(_ node: InodeTable.Node) -> Attributes {
    attributes(inode: node.inode, name: node.name, content: node.content, modified: node.modified)
  }

  /// What `stat` shows of an entry with this content: a directory or link shows `modified`, 0
  /// without one; a file its object's time.
  private func attributes(
    inode: UInt64, name: String, content: NamespaceEntry.Content, modified: Timestamp?
  ) -> Attributes {
    let modified = modified ?? Timestamp(seconds: 0)
    switch content {
    case .directory:
      return Attributes(inode: inode, kind: .directory, size: 0, modified: modified, isImmutable: false)
    case .file(let file):
      // An archived file's attributes change when it is restored: kept for the directory TTL only.
      // In the plain view, a log's size is its plain text's, unknown until it is first rendered;
      // an offline one, which cannot be rendered, shows its object's.
      let offline = file.storage.map { $0.isReadable != true } ?? false
      let plainKey = offline ? nil : plainViewKey(name: name, file: file)
      let size = plainKey.map { plainIndexes.index($0)?.size } ?? file.size
      return Attributes(
        inode: inode, kind: .file, size: size ?? 0, modified: file.modified,
        isImmutable: file.isImmutable && file.storage?.isArchiveClass != true, sizeIsKnown: size != nil,
        isOffline: offline)
    case .symlink(let target):
      return Attributes(
        inode: inode, kind: .symlink, size: UInt64(target.utf8.count), modified: modified, isImmutable: false)
    }
  }

  /// The target of a symbolic link.
  public func readLink(_ inode: UInt64) throws(FilesystemError) -> String {
    guard let node = table.withLock({ $0.node(inode) }) else {
      throw FilesystemError(.notFound, "unknown inode \(inode)")
    }
    guard case .symlink(let target) = node.content else {
      throw FilesystemError(.notALink, "\(node.name) is not a symbolic link")
    }
    return target
  }

  /// What the directory's trusted listing says of `name`: its child, known missing (a complete
  /// listing lacks it), or unknown (a partial listing lacks it); nil without a trusted listing.
  /// Only the answer leaves the lock: a copy of the listing held across the lookup would make the
  /// lookup's own insertion copy the whole directory.
  private func listed(_ name: String, in inode: UInt64) throws(FilesystemError) -> (key: String, listed: Listed?) {
    let now = clock.now()
    let found = table.withLock { table -> (InodeTable.Node, Listed?, Bool)? in
      table.touch(inode)
      guard let node = table.node(inode) else { return nil }
      guard let listing = table.listing(inode) else { return (node, nil, false) }
      guard listing.isTrusted(at: now) else { return (node, nil, true) }
      let answer: Listed =
        table.child(named: name, in: inode).map { .child($0) } ?? (listing.isComplete ? .missing : .unknown)
      return (node, answer, true)
    }
    guard let (node, listed, isDirectory) = found else { throw FilesystemError(.notFound, "unknown inode \(inode)") }
    guard case .directory(let key) = node.content, isDirectory else {
      throw FilesystemError(.notADirectory, "\(node.name) is not a directory")
    }
    return (key, listed)
  }

  private enum Listed {
    case child(UInt64)
    case missing
    case unknown
  }

  private func directory(_ inode: UInt64) throws(FilesystemError) -> (key: String, listing: InodeTable.ListingState) {
    let found = table.withLock { table in
      table.touch(inode)
      return table.node(inode).map { ($0, table.listing(inode)) }
    }
    guard let (node, listing) = found else { throw FilesystemError(.notFound, "unknown inode \(inode)") }
    guard case .directory(let key) = node.content, let listing else {
      throw FilesystemError(.notADirectory, "\(node.name) is not a directory")
    }
    return (key, listing)
  }

  // MARK: Directories

  /// Lists the directory if its listing is missing or no longer trusted, and returns a snapshot of
  /// its entries (with "." and "..") under a new handle.
  public func openDirectory(_ inode: UInt64) throws(FilesystemError) -> UInt64 {
    // Open before it is listed: the inode table keeps an open directory's entries (readdirplus hands
    // them to the kernel, which then holds them), however many they are.
    table.withLock { $0.openedDirectory(inode) }
    do throws(FilesystemError) {
      try ensureListed(inode)
    } catch {
      table.withLock { $0.closedDirectory(inode) }
      throw error
    }
    let (entries, parent, continuation) = table.withLock { table in
      let continuation = table.listing(inode)?.continuation
      // A streamed directory's snapshot is what its listing listed: names looked up since, from
      // the pages after it, come again in the stream.
      let shown = table.entries(of: inode, listedOnly: continuation != nil)
      // A streamed directory's entries all go to the kernel by name: see `DirectoryEntry.handsInode`.
      let entries = shown.compactMap { name, child in
        table.node(child).map {
          DirectoryEntry(
            name: name, attributes: attributes($0), handsInode: continuation == nil && $0.kind != .file,
            numberIsPosition: continuation != nil)
        }
      }
      return (entries, table.node(inode).flatMap { table.node($0.parent) }, continuation)
    }
    let this: Attributes
    do throws(FilesystemError) {
      this = try attributes(of: inode)
    } catch {
      table.withLock { $0.closedDirectory(inode) }
      throw error
    }
    let all =
      [
        DirectoryEntry(name: ".", attributes: this),
        DirectoryEntry(name: "..", attributes: parent.map(attributes) ?? this),
      ] + entries
    let stream = continuation.map { DirectoryStream(start: all.count, continuation: $0) }
    return handles.withLock { handles in
      let handle = handles.allocate()
      handles.directories[handle] = (inode, all, stream)
      return handle
    }
  }

  /// Lists the directory if its listing is missing or no longer trusted.
  private func ensureListed(_ inode: UInt64) throws(FilesystemError) {
    let (key, listing) = try directory(inode)
    guard !listing.isTrusted(at: clock.now()) else { return }
    try listings.run(inode) { () throws(FilesystemError) in
      record(try namespace.list(directory: key), of: inode, key: key)
    }
  }

  /// Takes a listing of the directory with this inode and key as its entries, trusted for its TTL.
  private func record(_ listing: NamespaceListing, of inode: UInt64, key: String) {
    let result = shownEntries(of: listing, in: key)
    report(result.leftOut)
    let trustedUntil = clock.now() + (result.ttl ?? configuration.directoryTTL)
    let changed = table.withLock { table in
      table.replaceListing(
        of: inode, with: result.entries, trustedUntil: trustedUntil, isComplete: result.isComplete,
        continuation: result.continuation)
      return table.takeChangedFiles()
    }
    report(changed: changed)
    evictPastCapacity()
  }

  /// Entries from `offset` on (an offset is an index into the snapshot taken at open, then into the
  /// pages of a directory too big to list at once, fetched as they are read).
  public func readDirectory(_ handle: UInt64, from offset: Int) throws(FilesystemError) -> ArraySlice<DirectoryEntry> {
    guard let (inode, entries, stream) = handles.withLock({ $0.directories[handle] }) else { throw .badHandle }
    if offset < entries.count { return entries[max(0, offset)...] }
    guard let stream else { return [] }
    return try stream.entries(from: offset) { continuation throws(FilesystemError) in
      try streamedPage(of: inode, from: continuation)
    }
  }

  /// One page of a directory too big to list at once: its entries, given to the kernel by name and
  /// number only (no inode is kept for them), and where the next page starts.
  private func streamedPage(
    of inode: UInt64, from continuation: String
  ) throws(FilesystemError) -> (entries: [DirectoryEntry], next: String?) {
    let (key, _) = try directory(inode)
    let page = shownEntries(of: try namespace.listPage(directory: key, continuation: continuation), in: key)
    report(page.leftOut)
    let entries = table.withLock { table in
      page.entries.map { entry in
        let number = table.number(in: inode, name: entry.name, kind: entry.content.kind)
        return DirectoryEntry(
          name: entry.name,
          attributes: attributes(inode: number, name: entry.name, content: entry.content, modified: entry.modified),
          handsInode: false, numberIsPosition: true)
      }
    }
    return (entries.sorted { utf8Less($0.name, $1.name) }, page.continuation)
  }

  public func releaseDirectory(_ handle: UInt64) {
    guard let (inode, _, _) = handles.withLock({ $0.directories.removeValue(forKey: handle) }) else { return }
    table.withLock { $0.closedDirectory(inode) }
  }

  /// What of a listing can be shown: an entry whose name cannot be a file name, or a link that
  /// could lead out of its directory, is left out (the namespaces never make one; this holds
  /// whatever a source sends), and of entries with the same name (byte for byte) the first is kept.
  private func shownEntries(of listing: NamespaceListing, in key: String) -> NamespaceListing {
    var shown = listing
    var seen = Set<ExactName>()
    shown.entries = listing.entries.filter { entry in
      if let problem = showable(entry) {
        shown.leftOut.append((path(key, entry.name), problem))
        return false
      }
      guard seen.insert(ExactName(entry.name)).inserted else {
        shown.leftOut.append(
          (path(key, entry.name) + " (a second entry of that name)", "an entry of the same name is shown"))
        return false
      }
      return true
    }
    return shown
  }

  private func path(_ key: String, _ name: String) -> String {
    key.isEmpty || key.hasSuffix("/") ? key + name : key + "/" + name
  }

  private func report(_ leftOut: [(source: String, reason: String)]) {
    for (source, reason) in leftOut where reported.withLock({ $0.insert(ExactName(source)).inserted }) {
      logger.warning("left out \(escapedForLog(source)): \(reason)")
    }
  }

  // MARK: Files

  /// Opens a file, sizing it first if its listing did not give its size (`Namespace.size`): the
  /// kernel, which keeps no attributes of such a file, asks for them again and sees the size.
  public func openFile(_ inode: UInt64) throws(FilesystemError) -> UInt64 {
    let (node, file) = try readableSizedFile(inode)
    guard let size = file.size else { throw FilesystemError(.malformed, "\(node.name) was not sized on open") }
    let plainIndex = plainViewKey(name: node.name, file: file) != nil ? try self.plainIndex(inode) : nil
    var live: LiveLog?
    if plainIndex == nil, case .object(let client, let key, let etag, nil) = file.source,
      let growing = client as? any GrowingObjectClient, growing.mayGrow(etag: etag)
    {
      live = liveLogs.open(inode: inode, client: growing, key: key, size: size)
    }
    let readahead = ReadaheadState(
      initialWindow: configuration.initialReadahead, maxWindow: configuration.maxReadahead, fileSize: size)
    followWalk(node)
    return handles.withLock { handles in
      let handle = handles.allocate()
      handles.files[handle] = OpenFile(
        inode: inode, source: file.source, rawSize: size, plainIndex: plainIndex, live: live, readahead: readahead)
      return handle
    }
  }

  // MARK: Plain view

  /// The key of a file's plain-text index, if the mount shows it as plain text (`showsAsPlainText`).
  private func plainViewKey(name: String, file: FileContent) -> PlainIndexCache.Key? {
    guard configuration.plainText != nil, showsAsPlainText(name: name, source: file.source),
      case .object(let client, let key, let etag, let version) = file.source
    else { return nil }
    return PlainIndexCache.Key(store: client.identity, key: key, etag: etag, version: version)
  }

  /// Attributes that show a log's plain-text size: for a log of the plain view not rendered yet,
  /// it is rendered now (`plainIndex`). A log that cannot be read now (archived) shows its object's
  /// size, and no blocks.
  private func withPlainSize(_ found: Attributes) throws(FilesystemError) -> Attributes {
    guard configuration.plainText != nil, found.kind == .file, !found.sizeIsKnown, !found.isOffline else {
      return found
    }
    let node = try fileNode(found.inode)
    guard case .file(let file) = node.content, plainViewKey(name: node.name, file: file) != nil else { return found }
    do throws(FilesystemError) {
      let index = try plainIndex(found.inode)
      var sized = attributes(try fileNode(found.inode))
      sized.size = index.size
      sized.sizeIsKnown = true
      return sized
    } catch  where error.kind == .archived {
      return attributes(try fileNode(found.inode))
    }
  }

  /// The plain-text index of a log (sized first if its listing gave no size), made by rendering
  /// the whole log once, through the block caches, so that reads after it are served from them.
  private func plainIndex(_ inode: UInt64) throws(FilesystemError) -> PlainTextIndex {
    let (node, file) = try readableSizedFile(inode)
    guard let rawSize = file.size, let key = plainViewKey(name: node.name, file: file),
      let options = configuration.plainText
    else { throw FilesystemError(.malformed, "\(node.name) is not a log of the plain view") }
    if let index = plainIndexes.index(key) { return index }
    return try plainSizings.run(inode) { () throws(FilesystemError) -> PlainTextIndex in
      if let index = plainIndexes.index(key) { return index }
      let reading = OpenFile(
        inode: inode, source: file.source, rawSize: rawSize, plainIndex: nil,
        readahead: ReadaheadState(
          initialWindow: configuration.initialReadahead, maxWindow: configuration.maxReadahead, fileSize: rawSize))
      defer { stopCounting(reading) }
      let index = try PlainTextIndex(options: options, rawSize: rawSize) {
        (offset, count) throws(FilesystemError) -> [ArraySlice<UInt8>] in
        try readRaw(reading, offset: offset, end: offset + UInt64(count))
      }
      guard index.rawSize == rawSize else {
        throw FilesystemError(.malformed, "\(node.name) gave \(index.rawSize) of its \(rawSize) bytes")
      }
      plainIndexes.insert(index, for: key)
      return index
    }
  }

  /// A file that can be read now (not archived: `checkReadable`), sized if its listing gave no size.
  private func readableSizedFile(_ inode: UInt64) throws(FilesystemError) -> (InodeTable.Node, FileContent) {
    var node = try fileNode(inode)
    var file = try fileContent(node)
    try checkReadable(node, file)
    if file.size == nil {
      try sizings.run(inode) { () throws(FilesystemError) in try size(node, file) }
      node = try fileNode(inode)
      file = try fileContent(node)
    }
    return (node, file)
  }

  /// Throws `.archived` when the file's object is archived and not restored, so cannot be read now
  /// (what `access(R_OK)` answers, and an open). When its listing left that unknown (a server that
  /// does not send the restore state), one HEAD decides; its answer is kept until the directory is
  /// listed again, so for the directory TTL.
  public func checkReadable(_ inode: UInt64) throws(FilesystemError) {
    let node = try fileNode(inode)
    guard case .file(let file) = node.content else { return }
    try checkReadable(node, file)
  }

  private func checkReadable(_ node: InodeTable.Node, _ file: FileContent) throws(FilesystemError) {
    guard var storage = file.storage, case .object(let client, let key, _, _) = file.source else { return }
    if storage.isReadable == nil {
      do throws(ObjectStoreError) {
        storage = try client.head(key: key).storage ?? ObjectStorage(storageClass: "STANDARD")
      } catch {
        throw FilesystemError(error, context: "asking whether \(client.identity)/\(key) is restored")
      }
      _ = table.withLock { $0.setStorage(node.inode, storage) }
      // Restored: the file is no longer offline, and the kernel drops the attributes it holds.
      if storage.isReadable == true { report(changed: [node.inode]) }
    }
    guard storage.isReadable == false else { return }
    throw FilesystemError(.archived, archivedMessage(client: client, key: key, storage: storage))
  }

  /// Why an archived file cannot be read, and how to make it readable.
  private func archivedMessage(client: any ObjectClient, key: String, storage: ObjectStorage) -> String {
    let where_ = storage.archiveTier.map { "\(storage.storageClass) (\($0))" } ?? storage.storageClass
    let state = storage.restore == .inProgress ? "being restored, not yet readable" : "not restored"
    return "\(client.identity)/\(key) is in storage class \(where_), \(state): restore it with "
      + "`bklogfs restore FILE` on the mount (or `aws s3api restore-object`), then read it again"
  }

  // MARK: Extended attributes

  /// The prefix of the attributes that give a file's object's facts.
  public static let attributePrefix = "user.bklogfs."

  /// A file's extended attributes: its object's facts as the mount knows them, with no request.
  /// `source` (the store and key, such as `s3://bucket/key`), `etag` (without quotes),
  /// `last_modified` (RFC 3339, UTC); on an S3 bucket `storage_class`, and for an archive class
  /// `restore`. Directories and links have none.
  public func extendedAttributes(of inode: UInt64) throws(FilesystemError) -> [(name: String, value: String)] {
    guard let node = table.withLock({ $0.node(inode) }) else {
      throw FilesystemError(.notFound, "unknown inode \(inode)")
    }
    guard case .file(let file) = node.content, case .object(let client, let key, let etag, let version) = file.source
    else {
      return []
    }
    var attributes: [(name: String, value: String)] = [("source", client.identity + "/" + key)]
    let unquoted = Self.unquoted(etag)
    if !unquoted.isEmpty { attributes.append(("etag", unquoted)) }
    attributes.append(
      ("last_modified", formatRFC3339(seconds: file.modified.seconds, nanoseconds: file.modified.nanoseconds)))
    if let version { attributes.append(("version_id", version)) }
    if client.hasStorageClasses {
      let storage = file.storage ?? ObjectStorage(storageClass: "STANDARD")
      attributes.append(("storage_class", storage.attributeValue))
      if storage.isArchiveClass {
        let restore =
          switch storage.restore {
          case nil: "unknown"
          case .notRestored: "not restored"
          case .inProgress: "in progress"
          case .restored(let expiry?): "restored until \(formatRFC3339(seconds: expiry.seconds))"
          case .restored(nil): "restored"
          }
        attributes.append(("restore", restore))
      }
    }
    return attributes.map { (Self.attributePrefix + $0.name, $0.value) }
  }

  /// An ETag as people write it: S3's `"…"` without its quotes.
  private static func unquoted(_ etag: String) -> String {
    guard etag.count >= 2, etag.hasPrefix("\""), etag.hasSuffix("\"") else { return etag }
    return String(etag.dropFirst().dropLast())
  }

  /// The name of the attribute that lists every version of a file's object. It is not listed: each
  /// read of it costs a request (ListObjectVersions), which `getfattr -d` or `rsync -X` should not.
  public static let versionsAttribute = attributePrefix + "versions"

  /// Every version and delete marker of a file's object, newest first, one a line: the version
  /// ID, when it was written (RFC 3339), its size and ETag ("-" for a delete marker), and what it
  /// is: `current`, `deleted` (a delete marker), `old`; `shown` marks the version this mount reads.
  /// Nil for a node that is not a file of a store that keeps versions.
  public func versionList(of inode: UInt64) throws(FilesystemError) -> String? {
    guard let node = table.withLock({ $0.node(inode) }), case .file(let file) = node.content,
      case .object(let client, let key, let etag, let version) = file.source,
      let store = (client as? AsOfObjectClient)?.inner ?? (client as? any VersionedObjectClient)
    else { return nil }
    let now = clock.now()
    if let recent = recentVersionList.withLock({ $0 }), recent.inode == inode, now - recent.at < 5 {
      return recent.text
    }
    let versions: [ObjectVersionEntry]
    do throws(ObjectStoreError) {
      versions = try store.versions(of: key)
    } catch {
      throw FilesystemError(error, context: "listing the versions of \(client.identity)/\(key)")
    }
    var lines: [String] = []
    for entry in versions {
      let time = formatRFC3339(seconds: entry.lastModified.seconds, nanoseconds: entry.lastModified.nanoseconds)
      let state = entry.isDeleteMarker ? "deleted" : entry.isLatest ? "current" : "old"
      let shown = (version.map { $0 == entry.versionID } ?? (entry.isLatest && entry.etag == etag)) ? " shown" : ""
      let size = entry.isDeleteMarker ? "-" : String(entry.size)
      let tag = entry.isDeleteMarker ? "-" : Self.unquoted(entry.etag)
      lines.append("\(entry.versionID)\t\(time)\t\(size)\t\(tag)\t\(state)\(shown)\n")
    }
    let text = lines.joined()
    recentVersionList.withLock { $0 = (inode, text, now) }
    return text
  }

  /// An object deleted (or expired by a Lifecycle rule) under an open file: the handle is stale, as
  /// one of a replaced object is, rather than the name missing (`ESTALE`, not `ENOENT`).
  private func goneUnderOpenFile(_ error: FilesystemError) -> FilesystemError {
    guard error.kind == .notFound else { return error }
    return FilesystemError(
      .stale, "\(error.message); the object was deleted after the file was opened", cause: error.cause)
  }

  /// A read refused because the object is archived: the file shows so from now on.
  private func noteArchived(_ inode: UInt64, _ error: FilesystemError) {
    guard error.kind == .archived, let refusal = error.cause as? ObjectStoreError, let storage = refusal.storage else {
      return
    }
    _ = table.withLock { table -> Bool in
      guard let node = table.node(inode), case .file(let file) = node.content else { return false }
      // A listing's class stands; the refusal says it is not restored (now).
      var known = file.storage ?? storage
      if !known.isArchiveClass { known = storage }
      known.restore = .notRestored
      return table.setStorage(inode, known)
    }
    report(changed: [inode])
  }

  private func fileNode(_ inode: UInt64) throws(FilesystemError) -> InodeTable.Node {
    guard let node = table.withLock({ $0.node(inode) }) else {
      throw FilesystemError(.notFound, "unknown inode \(inode)")
    }
    return node
  }

  private func fileContent(_ node: InodeTable.Node) throws(FilesystemError) -> FileContent {
    guard case .file(let file) = node.content else {
      throw FilesystemError(node.kind == .directory ? .isADirectory : .isALink, "\(node.name) is not a file")
    }
    return file
  }

  /// Learns the size of a file listed without one, and keeps the end of its object that came with it
  /// as blocks. A file found gone leaves its directory.
  private func size(_ node: InodeTable.Node, _ file: FileContent) throws(FilesystemError) {
    // Another opener may have sized it while this one waited to lead.
    guard case .file(let current) = try fileNode(node.inode).content, current.size == nil else { return }
    let sized: SizedFile
    do throws(FilesystemError) {
      sized = try namespace.size(file: file, tail: configuration.blockSize)
    } catch  where error.kind == .notFound {
      let held = table.withLock { table -> [(parent: UInt64, name: String)] in
        _ = table.recordLookup(in: node.parent, name: node.name, entry: nil)
        return [(node.parent, node.name)]
      }
      namesDropped.withLock { $0 }?(held)
      throw error
    }
    guard let size = sized.content.size, UInt64(sized.tail.count) <= size else {
      throw FilesystemError(.malformed, "\(node.name) was sized with \(sized.tail.count) bytes of its end and no size")
    }
    if case .object(let client, let key, let etag, let version) = sized.content.source, let blocks = reader(for: client)
    {
      blocks.seed(BlockReader.ObjectVersion(key: key, etag: etag, size: size, version: version), tail: sized.tail)
    }
    guard table.withLock({ $0.sized(node.inode, sized.content) }) else {
      throw FilesystemError(.notFound, "\(node.name) left the tree while it was being opened")
    }
    if !sized.isConfirmed { unconfirmedSizes.withLock { _ = $0.insert(node.inode) } }
  }

  /// A read of a file whose size its store did not give failed as stale: the store has another
  /// version, so the size was wrong. The file goes back to having no size (the namespace drops
  /// what told it the size, the kernel forgets what it held), so its next open asks the store; the
  /// read fails with `ESTALE`, as a read of an object changed under an open file does.
  private func sizeWasWrong(_ file: OpenFile, _ error: FilesystemError) -> FilesystemError {
    guard error.kind == .stale, unconfirmedSizes.withLock({ $0.remove(file.inode) != nil }),
      let node = table.withLock({ $0.node(file.inode) }), case .file(let current) = node.content
    else { return error }
    file.sizeWasWrong.store(true, ordering: .relaxed)
    namespace.sizeWasWrong(file: current)
    var unsized = current
    unsized.size = nil
    _ = table.withLock { $0.sized(file.inode, unsized) }
    report(changed: [file.inode])
    return FilesystemError(
      .stale,
      "\(error.message); the size recorded for \(node.name) was wrong: it is asked of the source at the next open",
      cause: error.cause)
  }

  /// Up to `count` bytes from `offset`; fewer only at the end of the file.
  public func read(_ handle: UInt64, offset: UInt64, count: Int) throws(FilesystemError) -> [UInt8] {
    Array(try readPieces(handle, offset: offset, count: count).joined())
  }

  /// What `read` returns, as pieces to be sent in order: slices of cached blocks, not copies.
  public func readPieces(_ handle: UInt64, offset: UInt64, count: Int) throws(FilesystemError) -> [ArraySlice<UInt8>] {
    guard let file = handles.withLock({ $0.files[handle] }) else { throw .badHandle }
    if let live = file.live { return try readLive(file, live, offset: offset, count: count) }
    guard offset < file.size, count > 0 else { return [] }
    guard let index = file.plainIndex else {
      return try readRaw(file, offset: offset, end: min(offset + UInt64(count), file.size))
    }
    // The cursor is taken while the read renders (no lock is held while it fetches); a read of the
    // same handle meanwhile starts from the index's place before it.
    var cursor = file.plainCursor.withLock { cursor in
      let taken = cursor
      cursor = PlainTextCursor()
      return taken
    }
    let text = try cursor.read(index, offset: offset, count: count) {
      (rawOffset, rawCount) throws(FilesystemError) -> [ArraySlice<UInt8>] in
      try readRaw(file, offset: rawOffset, end: min(rawOffset + UInt64(rawCount), file.rawSize))
    }
    file.plainCursor.withLock { $0 = cursor }
    return [text[...]]
  }

  /// A read of a log still growing: what it had at the open through the blocks, what it has grown
  /// since from its live log's newest bytes (or, if they are older than those, from its store). A
  /// read at its end asks for a poll.
  private func readLive(
    _ file: OpenFile, _ live: LiveLog, offset: UInt64, count: Int
  ) throws(FilesystemError) -> [ArraySlice<UInt8>] {
    let size = max(file.rawSize, live.size)
    let end = min(offset + UInt64(count), size)
    if end >= size { liveLogs.pollIfDue(inode: file.inode, live) }
    guard offset < end else { return [] }
    var pieces: [ArraySlice<UInt8>] = []
    if offset < file.rawSize { pieces = try readRaw(file, offset: offset, end: min(end, file.rawSize)) }
    let from = max(offset, file.rawSize)
    guard from < end else { return pieces }
    if let bytes = live.windowBytes(from..<end) { return pieces + [bytes[...]] }
    guard case .object(let client, let key, _, _) = file.source, let growing = client as? any GrowingObjectClient
    else { return pieces }
    do throws(ObjectStoreError) {
      let bytes = try growing.getBytes(
        key: key, range: from..<end, ifMatch: growing.etagOfGrowing(size: end))
      return pieces + [bytes[...]]
    } catch {
      throw FilesystemError(error, context: "reading what \(client.identity)/\(key) has grown by")
    }
  }

  /// Bytes `offset..<end` of a file's object.
  private func readRaw(_ file: OpenFile, offset: UInt64, end: UInt64) throws(FilesystemError) -> [ArraySlice<UInt8>] {
    guard offset < end else { return [] }
    switch file.source {
    case .bytes(let bytes):
      return [bytes[Int(offset)..<min(Int(end), bytes.count)]]
    case .object(let client, let key, let etag, let version):
      guard let blocks = reader(for: client) else {
        // A local directory is read directly: caching its blocks would only copy them.
        do throws(ObjectStoreError) {
          return [try client.getBytes(key: key, version: version, range: offset..<end, ifMatch: etag)[...]]
        } catch {
          let failure = FilesystemError(error, context: "reading \(client.identity)/\(key)")
          noteArchived(file.inode, failure)
          throw goneUnderOpenFile(failure)
        }
      }
      guard !file.sizeWasWrong.load(ordering: .relaxed) else {
        throw FilesystemError(.stale, "the size \(key) was opened with is wrong: open it again")
      }
      let object = BlockReader.ObjectVersion(key: key, etag: etag, size: file.rawSize, version: version)
      let blockSize = UInt64(configuration.blockSize)
      let (ahead, consumed) = file.stream.withLock { stream in
        let readers = sequentialReaders.load(ordering: .relaxed) + (stream.counted ? 0 : 1)
        let ahead = stream.readahead.onRead(offset: offset, end: end, limit: readaheadLimit(readers: readers))
        let sequential = stream.readahead.window > 0 && !stream.closed
        if sequential != stream.counted {
          stream.counted = sequential
          sequentialReaders.add(sequential ? 1 : -1, ordering: .relaxed)
        }
        return (ahead, stream.readahead.consumed(blockSize: blockSize, keepBlocks: 2))
      }
      if let ahead {
        // The blocks this read needs are fetched on this thread, not queued behind other fetches.
        let pastThisRead = ((end - 1) / blockSize + 1) * blockSize
        blocks.prefetch(object, offset: max(ahead.lowerBound, pastThisRead), end: ahead.upperBound)
      }
      let pieces: [ArraySlice<UInt8>]
      do throws(FilesystemError) {
        pieces = try blocks.read(object, offset: offset, end: end)
      } catch {
        noteArchived(file.inode, error)
        throw sizeWasWrong(file, goneUnderOpenFile(error))
      }
      // What a sequential reader has read is in the kernel's page cache and the disk cache: its
      // blocks leave the memory cache, whose buffers then serve the next blocks instead of fresh
      // memory; without a disk cache they are evicted first (doc/ARCHITECTURE.md).
      if let consumed { blocks.release(object, offset: consumed.lowerBound, end: consumed.upperBound) }
      return pieces
    }
  }

  /// Fetches the start of the next files of the directory when opens go through it in order, and
  /// once the walk's window reaches the directory's end, the start of the next directory beside it.
  private func followWalk(_ node: InodeTable.Node) {
    guard configuration.maxWalkAhead > 0 else { return }
    let (ahead, next) = table.withLock { table -> ([(any ObjectClient, BlockReader.ObjectVersion)], NextDirectory?) in
      guard let listing = table.listing(node.parent), let index = table.position(of: node.name, in: node.parent) else {
        return ([], nil)
      }
      let (range, handOn) = walks.withLock { walks -> (Range<Int>?, Bool) in
        if walks[node.parent] == nil && walks.count >= 1024 { walks.removeAll() }
        var walk =
          walks[node.parent]
          ?? WalkState(initialWindow: configuration.initialWalkAhead, maxWindow: configuration.maxWalkAhead)
        let range = walk.onOpen(index: index, count: listing.count)
        // Only a walk seen going on (a second file in order), not the open of one first file.
        let handOn = index > 0 && walk.window > 0 && walk.requestedEnd >= listing.count && !walk.handedOn
        if handOn { walk.handedOn = true }
        walks[node.parent] = walk
        return (range, handOn)
      }
      let files = (range ?? 0..<0).compactMap { position in
        table.child(at: position, in: node.parent).flatMap { fileObject($0.inode, table) }
      }
      guard handOn else { return (files, nil) }
      if let listed = directory(after: node.parent, table) { return (files, .listed(listed)) }
      // A directory entered by path in a parent nobody listed: the namespace may know what follows it.
      guard let directory = table.node(node.parent), case .directory(let key) = directory.content else {
        return (files, nil)
      }
      return (files, .named(parent: directory.parent, key: key))
    }
    prefetchStarts(of: ahead)
    guard let next, case .file(let file) = node.content, case .object(let client, _, _, _) = file.source,
      client.isRemote
    else { return }
    pool.submit { [self] in
      switch next {
      case .listed(let inode):
        walkInto(inode)
      case .named(let parent, let key):
        guard let name = namespace.directory(after: key),
          let found = try? lookup(parent: parent, name: name), found.kind == .directory
        else { return }
        walkInto(found.inode)
      }
    }
  }

  /// Where a walk goes on once it reaches the end of a directory.
  private enum NextDirectory {
    /// The next directory of the parent's listing.
    case listed(UInt64)
    /// The one after the directory with this key in the parent with this inode, if the namespace knows it.
    case named(parent: UInt64, key: String)
  }

  /// The remote object a directory entry stands for, if it is one that can be read now (not an
  /// archived one, which a fetch ahead would only see refused).
  private func fileObject(_ inode: UInt64, _ table: InodeTable) -> (any ObjectClient, BlockReader.ObjectVersion)? {
    guard let node = table.node(inode), case .file(let file) = node.content,
      case .object(let client, let key, let etag, let version) = file.source, let size = file.size,
      file.storage.map({ $0.isReadable == true }) ?? true
    else { return nil }
    return (client, BlockReader.ObjectVersion(key: key, etag: etag, size: size, version: version))
  }

  /// The first directory after `directory` among its parent's entries (looking a few entries on).
  private func directory(after directory: UInt64, _ table: InodeTable) -> UInt64? {
    guard let node = table.node(directory), node.parent != directory,
      let position = table.position(of: node.name, in: node.parent)
    else { return nil }
    for next in position + 1..<position + 9 {
      guard let (_, inode) = table.child(at: next, in: node.parent) else { return nil }
      if table.node(inode)?.kind == .directory { return inode }
    }
    return nil
  }

  /// Lists a directory a walk is about to enter (if not listed) and fetches the start of its first files.
  private func walkInto(_ directory: UInt64) {
    do throws(FilesystemError) {
      try ensureListed(directory)
    } catch {
      // No reply waits for this listing; a reader who enters the directory gets the error then.
      logger.debug("listing ahead of a walk failed: \(error.message)")
      return
    }
    let ahead = table.withLock { table -> [(any ObjectClient, BlockReader.ObjectVersion)] in
      (0..<configuration.initialWalkAhead).compactMap { position in
        table.child(at: position, in: directory).flatMap { fileObject($0.inode, table) }
      }
    }
    prefetchStarts(of: ahead)
  }

  /// Fetches the first `initialReadahead` bytes of each file, in the background.
  private func prefetchStarts(of files: [(any ObjectClient, BlockReader.ObjectVersion)]) {
    for (client, object) in files {
      reader(for: client)?.prefetch(object, offset: 0, end: min(object.size, configuration.initialReadahead))
    }
  }

  public func releaseFile(_ handle: UInt64) {
    guard let file = handles.withLock({ $0.files.removeValue(forKey: handle) }) else { return }
    stopCounting(file)
    if let live = file.live { liveLogs.close(inode: file.inode, live) }
  }

  /// A file no longer read: it is no longer counted among the sequential readers.
  private func stopCounting(_ file: OpenFile) {
    file.stream.withLock { stream in
      stream.closed = true
      if stream.counted {
        stream.counted = false
        sequentialReaders.subtract(1, ordering: .relaxed)
      }
    }
  }

  /// The most one of `readers` sequential readers may have fetched ahead of it: an equal share of
  /// half the memory cache, which holds what readahead fetches until it is read. Past that, blocks
  /// fetched ahead of one reader would push out blocks fetched for another before they are read,
  /// and be fetched again (eight readers with 32 MiB windows over a 128 MiB memory cache, without a
  /// disk cache, fetched 60% more than they read).
  func readaheadLimit(readers: Int) -> UInt64 {
    UInt64(memoryCache.maxBytes / 2) / UInt64(max(1, readers))
  }

  private func reader(for client: any ObjectClient) -> BlockReader? {
    guard client.isRemote else { return nil }
    return readers.withLock { readers in
      if let reader = readers[client.identity] { return reader }
      let reader = BlockReader(
        client: client, blockSize: configuration.blockSize, partSize: configuration.partSize, memory: memoryCache,
        disk: diskWriter, shared: sharedCache, pool: pool, waitLimit: configuration.waitLimit,
        counters: counters, logger: logger)
      readers[client.identity] = reader
      return reader
    }
  }

  // MARK: Statistics

  /// The bytes the memory cache holds.
  public var memoryBytes: Int { memoryCache.statistics.bytes }

  /// The mount's counters, for `bklogfs stats`.
  public func statistics() -> MountStatistics {
    let snapshots = namespace.clients.map(\.counters.snapshot)
    func total(_ field: KeyPath<RequestCounters.Snapshot, Int>) -> Int {
      snapshots.map { $0[keyPath: field] }.reduce(0, +)
    }
    func latency(_ field: KeyPath<RequestCounters.Snapshot, LatencyHistogram.Snapshot>) -> LatencyHistogram.Snapshot {
      snapshots.map { $0[keyPath: field] }.reduce(.empty) { $0.adding($1) }
    }
    let memory = memoryCache.statistics
    let disk = diskCache?.statistics
    let writer = diskWriter?.statistics
    let shared = sharedCache?.statistics ?? SharedCacheStatistics()
    return MountStatistics(
      source: namespace.clients.map(\.identity).joined(separator: " "), pid: getpid(),
      requests: MountStatistics.Requests(list: total(\.lists), head: total(\.heads), get: total(\.gets)),
      bytesFetched: total(\.bytesFetched), retries: total(\.retries), failures: total(\.failures),
      cache: MountStatistics.Cache(
        memoryHits: counters.memoryHits.load(ordering: .relaxed),
        diskHits: counters.diskHits.load(ordering: .relaxed),
        misses: counters.fetchedBlocks.load(ordering: .relaxed),
        prefetchedBlocks: counters.prefetchedBlocks.load(ordering: .relaxed),
        memoryBytes: memory.bytes, diskBytes: disk?.bytes ?? 0, diskBytesOnDisk: diskCache?.bytesOnDisk ?? 0,
        diskBlocks: disk?.blocks ?? 0, diskMaxBytes: diskCache?.maxBytes ?? 0, blockSize: configuration.blockSize,
        diskEvictions: disk?.evictions ?? 0, corruptBlocks: disk?.corruptBlocks ?? 0,
        diskQueueBytes: writer?.bytes ?? 0, diskQueueMaxBytes: writer?.maxBytes ?? 0,
        diskQueueDropped: writer?.dropped ?? 0, sharedHits: shared.hits, sharedMisses: shared.misses,
        sharedWrites: shared.writes, sharedCorruptBlocks: shared.corruptBlocks, sharedFailures: shared.failures,
        sharedDropped: shared.dropped, sharedQueueBytes: shared.queuedBytes, sharedSizeHits: shared.sizeHits,
        sharedSizeMisses: shared.sizeMisses, sharedSizeWrites: shared.sizeWrites,
        sharedCorruptSizes: shared.corruptSizes, sharedStaleSizes: shared.staleSizes),
      cachedNames: cachedNames, heapBytes: heapBytesInUse(), apiBudget: namespace.apiBudget,
      latency: MountStatistics.Latency(
        list: latency(\.listLatency), head: latency(\.headLatency), get: latency(\.getLatency),
        api: namespace.apiLatency))
  }
}

/// Why an entry cannot be shown, or nil: its name must be a file name, and a link's target a name
/// or relative path that stays inside the mount (no leading "/", no ".." component).
func showable(_ entry: NamespaceEntry) -> String? {
  if let problem = nameProblem(entry.name) { return problem }
  guard case .symlink(let target) = entry.content else { return nil }
  let climbs = target.split(separator: "/", omittingEmptySubsequences: false).contains {
    $0.utf8.elementsEqual("..".utf8)
  }
  if target.isEmpty || target.hasPrefix("/") || target.utf8.contains(0) || climbs || target.utf8.count > 4095 {
    return "its link would lead outside the mount"
  }
  return nil
}

/// Text for a log line: control bytes as `\xNN` and `\` doubled, so a name cannot forge a line.
public func escapedForLog(_ text: String) -> String {
  var out = ""
  for scalar in text.unicodeScalars {
    if scalar.value < 0x20 || scalar.value == 0x7f || scalar == "\\" {
      out += scalar == "\\" ? "\\\\" : "\\x" + String(scalar.value, radix: 16)
    } else {
      out.unicodeScalars.append(scalar)
    }
  }
  return out
}

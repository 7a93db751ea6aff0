public import BlockCache
import Glibc
public import Logging
public import ObjectStore
import Synchronization

public struct FilesystemConfiguration: Sendable {
  /// The key prefix shown as the mount's root: "" or ending in "/".
  public var rootPrefix: String
  public var blockSize: Int
  /// Bytes per ranged GET issued by readahead.
  public var partSize: Int
  public var initialReadahead: UInt64
  public var maxReadahead: UInt64
  public var fetchThreads: Int
  /// How long a directory listing is trusted before it is listed again, in seconds.
  public var directoryTTL: Double
  /// The longest any reader waits for a fetch that another thread runs, in seconds.
  public var waitLimit: Double

  public init(
    rootPrefix: String = "", blockSize: Int = 1 << 20, partSize: Int = 8 << 20, initialReadahead: UInt64 = 1 << 20,
    maxReadahead: UInt64 = 32 << 20, fetchThreads: Int = 8, directoryTTL: Double = 60, waitLimit: Double = 300
  ) {
    self.rootPrefix = rootPrefix
    self.blockSize = blockSize
    self.partSize = partSize
    self.initialReadahead = initialReadahead
    self.maxReadahead = maxReadahead
    self.fetchThreads = fetchThreads
    self.directoryTTL = directoryTTL
    self.waitLimit = waitLimit
  }
}

/// The filesystem core: lookups, listings, opens and reads over an object store, with no FUSE types,
/// so tests drive it directly. Safe to call from any number of threads at once.
public final class LogFilesystem: Sendable {
  public static let rootInode = InodeTable.rootInode

  public let client: any ObjectClient
  public let configuration: FilesystemConfiguration
  let logger: Logger
  let mountTime: Timestamp
  let memoryCache: MemoryBlockCache
  let diskCache: DiskBlockCache?
  let counters = ReadCounters()
  private let blocks: BlockReader?
  private let table: Mutex<InodeTable>
  private let listings: SingleFlight<UInt64, Void>
  private let handles = Mutex(HandleTable())

  private final class OpenFile: Sendable {
    let object: BlockReader.ObjectVersion
    let readahead: Mutex<ReadaheadState>

    init(object: BlockReader.ObjectVersion, readahead: ReadaheadState) {
      self.object = object
      self.readahead = Mutex(readahead)
    }
  }

  private struct HandleTable {
    var nextHandle: UInt64 = 1
    var files: [UInt64: OpenFile] = [:]
    var directories: [UInt64: [DirectoryEntry]] = [:]

    mutating func allocate() -> UInt64 {
      defer { nextHandle += 1 }
      return nextHandle
    }
  }

  public init(
    client: any ObjectClient, configuration: FilesystemConfiguration, memoryCache: MemoryBlockCache,
    diskCache: DiskBlockCache?, logger: Logger
  ) {
    self.client = client
    self.configuration = configuration
    self.logger = logger
    self.memoryCache = memoryCache
    self.diskCache = diskCache
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    self.mountTime = Timestamp(seconds: Int64(now.tv_sec), nanoseconds: Int32(now.tv_nsec))
    self.table = Mutex(InodeTable(rootPrefix: configuration.rootPrefix))
    self.listings = SingleFlight(waitLimit: configuration.waitLimit)
    // A local directory is read directly: caching its blocks would only copy them.
    self.blocks =
      client.isRemote
      ? BlockReader(
        client: client, blockSize: configuration.blockSize, partSize: configuration.partSize, memory: memoryCache,
        disk: diskCache, fetchThreads: configuration.fetchThreads, waitLimit: configuration.waitLimit,
        counters: counters, logger: logger)
      : nil
  }

  /// Stops the fetch threads; call once the filesystem is unmounted.
  public func shutdown() { blocks?.shutdown() }

  // MARK: Names

  public func lookup(parent: UInt64, name: String) throws(FilesystemError) -> Attributes {
    if let problem = nameProblem(name) {
      throw FilesystemError(errno: name.utf8.count > 255 ? ENAMETOOLONG : ENOENT, "cannot look up \(name): \(problem)")
    }
    let (directory, listing) = try directoryNode(parent)
    if let listedAt = listing.listedAt, monotonicSeconds() - listedAt < configuration.directoryTTL {
      guard let child = listing.children[name] else { throw .noEntry(directory.key + name) }
      return try attributes(of: child)
    }
    return try lookupByListing(directory: directory, name: name)
  }

  /// Finds one name without listing its whole directory: one LIST of the keys that start with it.
  private func lookupByListing(directory: InodeTable.Node, name: String) throws(FilesystemError) -> Attributes {
    let target = directory.key + name
    let asDirectory = target + "/"
    var request = ListRequest(prefix: target, delimiter: "/")
    var found = ListPage(objects: [], commonPrefixes: [], nextContinuationToken: nil)
    while true {
      let page: ListPage
      do throws(ObjectStoreError) { page = try client.listPage(request) } catch { throw FilesystemError(error) }
      found.objects += page.objects.filter { $0.key == target }
      found.commonPrefixes += page.commonPrefixes.filter { $0 == asDirectory }
      let last = [page.objects.last?.key, page.commonPrefixes.last].compactMap { $0 }.max(by: utf8Less)
      // Keys come in byte order: once past "name/", nothing later can match.
      guard let token = page.nextContinuationToken, let last, !utf8Less(asDirectory, last) else { break }
      request.continuationToken = token
    }
    let merge = table.withLock { $0.merge(directory: directory.inode, page: found, complete: false, now: 0) }
    report(merge)
    guard let child = merge.children[name] else {
      table.withLock { $0.removeChild(directory: directory.inode, name: name) }
      throw .noEntry(target)
    }
    return try attributes(of: child)
  }

  public func attributes(of inode: UInt64) throws(FilesystemError) -> Attributes {
    guard let node = table.withLock({ $0.node(inode) }) else {
      throw FilesystemError(errno: ENOENT, "unknown inode \(inode)")
    }
    return attributes(node)
  }

  private func attributes(_ node: InodeTable.Node) -> Attributes {
    switch node.kind {
    case .directory:
      Attributes(inode: node.inode, kind: .directory, size: 0, modified: mountTime)
    case .file:
      Attributes(
        inode: node.inode, kind: .file, size: node.object?.size ?? 0,
        modified: node.object?.lastModified ?? mountTime)
    }
  }

  private func directoryNode(_ inode: UInt64) throws(FilesystemError) -> (InodeTable.Node, InodeTable.Listing) {
    let found = table.withLock { table in table.node(inode).map { ($0, table.listing(inode)) } }
    guard let (node, listing) = found else { throw FilesystemError(errno: ENOENT, "unknown inode \(inode)") }
    guard node.kind == .directory, let listing else {
      throw FilesystemError(errno: ENOTDIR, "\(node.key) is not a directory")
    }
    return (node, listing)
  }

  // MARK: Directories

  /// Lists the directory if its listing is missing or older than the TTL, and returns a snapshot of
  /// its entries (with "." and "..") under a new handle.
  public func openDirectory(_ inode: UInt64) throws(FilesystemError) -> UInt64 {
    var (directory, listing) = try directoryNode(inode)
    if listing.listedAt.map({ monotonicSeconds() - $0 >= configuration.directoryTTL }) ?? true {
      try listings.run(inode) { () throws(FilesystemError) in
        let page: ListPage
        do throws(ObjectStoreError) {
          page = try client.listAll(prefix: directory.key, delimiter: "/")
        } catch {
          logger.error("listing \(client.identity)/\(directory.key) failed: \(error.message)")
          throw FilesystemError(error)
        }
        let merge = table.withLock { $0.merge(directory: inode, page: page, complete: true, now: monotonicSeconds()) }
        report(merge)
      }
      (directory, listing) = try directoryNode(inode)
    }
    let entries = table.withLock { table in
      listing.children.compactMap { name, child in
        table.node(child).map { DirectoryEntry(name: name, attributes: attributes($0)) }
      }
    }.sorted { utf8Less($0.name, $1.name) }
    let parentAttributes = try attributes(of: directory.parent)
    let all =
      [
        DirectoryEntry(name: ".", attributes: attributes(directory)),
        DirectoryEntry(name: "..", attributes: parentAttributes),
      ] + entries
    return handles.withLock { handles in
      let handle = handles.allocate()
      handles.directories[handle] = all
      return handle
    }
  }

  /// Entries from `offset` on (an offset is an index into the snapshot taken at open).
  public func readDirectory(_ handle: UInt64, from offset: Int) throws(FilesystemError) -> ArraySlice<DirectoryEntry> {
    guard let entries = handles.withLock({ $0.directories[handle] }) else { throw .badHandle }
    return offset < entries.count ? entries[max(0, offset)...] : []
  }

  public func releaseDirectory(_ handle: UInt64) {
    _ = handles.withLock { $0.directories.removeValue(forKey: handle) }
  }

  private func report(_ merge: InodeTable.Merge) {
    for (key, reason) in merge.leftOut {
      logger.warning("left out key \(escapedForLog(key)): \(reason)")
    }
  }

  // MARK: Files

  public func openFile(_ inode: UInt64) throws(FilesystemError) -> UInt64 {
    guard let node = table.withLock({ $0.node(inode) }) else {
      throw FilesystemError(errno: ENOENT, "unknown inode \(inode)")
    }
    guard node.kind == .file, let object = node.object else {
      throw FilesystemError(errno: EISDIR, "\(node.key) is a directory")
    }
    let version = BlockReader.ObjectVersion(key: object.key, etag: object.etag, size: object.size)
    let readahead = ReadaheadState(
      initialWindow: configuration.initialReadahead, maxWindow: configuration.maxReadahead, fileSize: object.size)
    return handles.withLock { handles in
      let handle = handles.allocate()
      handles.files[handle] = OpenFile(object: version, readahead: readahead)
      return handle
    }
  }

  /// Up to `count` bytes from `offset`; fewer only at the end of the file.
  public func read(_ handle: UInt64, offset: UInt64, count: Int) throws(FilesystemError) -> [UInt8] {
    guard let file = handles.withLock({ $0.files[handle] }) else { throw .badHandle }
    let object = file.object
    guard offset < object.size, count > 0 else { return [] }
    let end = min(offset + UInt64(count), object.size)
    guard let blocks else {
      do throws(ObjectStoreError) {
        return try client.getBytes(key: object.key, range: offset..<end, ifMatch: object.etag)
      } catch {
        logger.error("read of \(client.identity)/\(object.key) failed: \(error.message)")
        throw FilesystemError(error)
      }
    }
    if let ahead = file.readahead.withLock({ $0.onRead(offset: offset, end: end) }) {
      blocks.prefetch(object, offset: ahead.lowerBound, end: ahead.upperBound)
    }
    return try blocks.read(object, offset: offset, end: end)
  }

  public func releaseFile(_ handle: UInt64) {
    _ = handles.withLock { $0.files.removeValue(forKey: handle) }
  }

  // MARK: Statistics

  /// Counters as JSON, for `bklogfs stats`.
  public func statisticsJSON() -> String {
    let requests = client.counters.snapshot
    let memory = memoryCache.statistics
    let disk = diskCache?.statistics
    let fields: [(String, Int)] = [
      ("memory_hits", counters.memoryHits.load(ordering: .relaxed)),
      ("disk_hits", counters.diskHits.load(ordering: .relaxed)),
      ("misses", counters.fetchedBlocks.load(ordering: .relaxed)),
      ("prefetched_blocks", counters.prefetchedBlocks.load(ordering: .relaxed)),
      ("memory_bytes", memory.bytes),
      ("disk_bytes", disk?.bytes ?? 0),
      ("disk_blocks", disk?.blocks ?? 0),
      ("disk_evictions", disk?.evictions ?? 0),
      ("corrupt_blocks", disk?.corruptBlocks ?? 0),
    ]
    let cache = fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ")
    return """
      {"source": "\(jsonEscaped(client.identity))", \
      "requests": {"list": \(requests.lists), "head": \(requests.heads), "get": \(requests.gets)}, \
      "bytes_fetched": \(requests.bytesFetched), "retries": \(requests.retries), "failures": \(requests.failures), \
      "cache": {\(cache)}}
      """
  }
}

func monotonicSeconds() -> Double {
  var now = timespec()
  clock_gettime(CLOCK_MONOTONIC, &now)
  return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// A key as one log line can hold it: control characters and invalid bytes escaped.
func escapedForLog(_ text: String) -> String {
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

func jsonEscaped(_ text: String) -> String {
  var out = ""
  for scalar in text.unicodeScalars {
    switch scalar {
    case "\"": out += "\\\""
    case "\\": out += "\\\\"
    case _ where scalar.value < 0x20:
      let hex = String(scalar.value, radix: 16)
      out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
    default: out.unicodeScalars.append(scalar)
    }
  }
  return out
}

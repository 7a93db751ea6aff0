public import ObjectStore
import Synchronization

/// A versioned bucket held in memory, for tests of what reads it as of a time: every write and
/// delete is kept, ListObjectVersions pages (keys in byte order, each key's entries newest first,
/// `maxKeys` entries a page, key and version markers, delimiter roll-up), and reads by version.
/// With `motoOrder`, a page lists all versions before all delete markers, as moto_server does.
public final class InMemoryVersionedClient: VersionedObjectClient {
  private struct Entry {
    var versionID: String
    var time: Timestamp
    /// Nil for a delete marker.
    var bytes: [UInt8]?
  }

  private let history = Mutex<[String: [Entry]]>([:])
  private let serial = Atomic<Int>(0)
  public let identity = "memory://versioned"
  public let isRemote = true
  public let counters = RequestCounters()
  public let pageSize: Int
  public let motoOrder: Bool

  public init(pageSize: Int = 1000, motoOrder: Bool = false) {
    self.pageSize = pageSize
    self.motoOrder = motoOrder
  }

  /// Writes a new version of `key` at `time` (later than the key's last entry).
  public func put(_ key: String, _ bytes: [UInt8], at time: Timestamp) {
    let id = "v\(serial.add(1, ordering: .relaxed).newValue)"
    history.withLock { $0[key, default: []].insert(Entry(versionID: id, time: time, bytes: bytes), at: 0) }
  }

  /// Deletes `key` at `time`: a delete marker.
  public func delete(_ key: String, at time: Timestamp) {
    let id = "d\(serial.add(1, ordering: .relaxed).newValue)"
    history.withLock { $0[key, default: []].insert(Entry(versionID: id, time: time, bytes: nil), at: 0) }
  }

  /// What `key` held at `time`, the brute-force way: nil when absent then.
  public func bytes(of key: String, at time: Timestamp) -> [UInt8]? {
    history.withLock { $0[key]?.first { $0.time <= time } }?.bytes
  }

  public var keys: [String] { history.withLock { $0.keys.sorted(by: utf8Less) } }

  public func listVersionsPage(_ request: VersionListRequest) throws(ObjectStoreError) -> VersionPage {
    counters.lists.add(1, ordering: .relaxed)
    let all = history.withLock { $0 }
    // Every entry under the prefix in S3's order, or a rolled-up prefix once.
    var items: [(key: String, entry: ObjectVersionEntry?)] = []
    for key in all.keys.sorted(by: utf8Less) where hasBytePrefix(key, request.prefix) {
      if let common = commonPrefix(of: key, prefix: request.prefix, delimiter: request.delimiter) {
        if !(items.last.map { sameBytes($0.key, common) && $0.entry == nil } ?? false) { items.append((common, nil)) }
        continue
      }
      for (index, entry) in all[key]!.enumerated() {
        items.append(
          (
            key,
            ObjectVersionEntry(
              key: key, versionID: entry.versionID, isLatest: index == 0, isDeleteMarker: entry.bytes == nil,
              lastModified: entry.time, size: UInt64(entry.bytes?.count ?? 0), etag: etag(entry.bytes))
          ))
      }
    }
    if let marker = request.keyMarker {
      if let versionMarker = request.versionIDMarker,
        let at = items.firstIndex(where: { sameBytes($0.key, marker) && $0.entry?.versionID == versionMarker })
      {
        items.removeFirst(at + 1)
      } else {
        items.removeAll { !utf8Less(marker, $0.key) }
      }
    }
    let limit = min(request.maxKeys ?? 1000, pageSize)
    let page = items.prefix(limit)
    let truncated = items.count > limit
    var versions = page.compactMap(\.entry)
    if motoOrder { versions = versions.filter { !$0.isDeleteMarker } + versions.filter(\.isDeleteMarker) }
    return VersionPage(
      versions: versions, commonPrefixes: page.filter { $0.entry == nil }.map(\.key),
      nextKeyMarker: truncated ? page.last!.key : nil,
      nextVersionIDMarker: truncated ? page.last!.entry?.versionID : nil)
  }

  public func listPage(_ request: ListRequest) throws(ObjectStoreError) -> ListPage {
    throw ObjectStoreError(.invalidRequest, "list this store's versions")
  }

  public func head(key: String) throws(ObjectStoreError) -> ObjectInfo {
    throw ObjectStoreError(.invalidRequest, "head a version of this store")
  }

  public func get(
    key: String, version: String?, range: Range<UInt64>, ifMatch: String?, body: (UnsafeRawBufferPointer) -> Void
  ) throws(ObjectStoreError) {
    counters.gets.add(1, ordering: .relaxed)
    let entry = history.withLock { $0[key]?.first { version == nil || $0.versionID == version } }
    guard let entry, let bytes = entry.bytes else { throw ObjectStoreError(.notFound, "no version of \(key)") }
    if let ifMatch, ifMatch != etag(bytes) { throw ObjectStoreError(.preconditionFailed, "\(key) is another version") }
    guard range.upperBound <= UInt64(bytes.count) else { throw ObjectStoreError(.invalidRequest, "past the end") }
    bytes[Int(range.lowerBound)..<Int(range.upperBound)].withUnsafeBytes { body($0) }
  }

  private func etag(_ bytes: [UInt8]?) -> String {
    guard let bytes else { return "" }
    return "\"\(bytes.count)-\(bytes.reduce(0) { ($0 &* 31 &+ Int($1)) & 0xFFFFFF })\""
  }
}

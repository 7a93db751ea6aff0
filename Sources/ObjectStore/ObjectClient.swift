/// What the filesystem needs of a store of log objects: an S3 bucket, a local directory with the
/// archive's layout, or an in-memory store in tests.
///
/// Calls are synchronous and may block: they run on FUSE worker threads and on the prefetcher's own
/// threads, never on Swift's cooperative pool. Every implementation bounds each call in time.
public protocol ObjectClient: Sendable {
  /// A short name for logs and cache keys, such as `s3://bucket/prefix` or `file:///srv/archive`.
  var identity: String { get }

  /// Whether reads are worth keeping in the disk cache (false for a local directory).
  var isRemote: Bool { get }

  /// Requests made so far, by kind.
  var counters: RequestCounters { get }

  /// Whether objects have S3 storage classes (an S3 bucket): their files then show one.
  var hasStorageClasses: Bool { get }

  /// Which byte ranges `get` serves at the cost of the range: any (S3, a local file), or only
  /// suffixes, ranges that end at the object's end (Buildkite's log endpoint). Any other range of a
  /// suffix-only store costs the whole object, so readers fetch such objects whole.
  var rangeSupport: RangeSupport { get }

  /// Whether the bytes of the version with this ETag can never change, so that its blocks may be
  /// kept where other machines read them (the shared block cache).
  func isFixed(etag: String) -> Bool

  /// One page of a listing: ListObjectsV2 semantics (keys in UTF-8 byte order; with a delimiter,
  /// keys holding it after the prefix are rolled up into common prefixes).
  func listPage(_ request: ListRequest) throws(ObjectStoreError) -> ListPage

  /// The object's current size, ETag and modification time.
  func head(key: String) throws(ObjectStoreError) -> ObjectInfo

  /// Streams the bytes of `range` of the object (of its version `version`, or the current one when
  /// nil) to `body`, in order, each byte exactly once, even when the transfer is retried. With
  /// `ifMatch`, fails with `.preconditionFailed` if the object's ETag differs. A store that keeps no
  /// versions fails with `.invalidRequest` when given one.
  func get(
    key: String, version: String?, range: Range<UInt64>, ifMatch: String?,
    body: (UnsafeRawBufferPointer) -> Void
  ) throws(ObjectStoreError)

}

/// A store whose objects may still be growing, as a running job's log in Buildkite's storage grows:
/// what the filesystem needs to follow one (`tail -f`) without reading again what it has.
public protocol GrowingObjectClient: ObjectClient {
  /// Whether the object read with this ETag may still grow.
  func mayGrow(etag: String) -> Bool

  /// The ETag with which `get` reads bytes of the object's first `size`, however much it has grown
  /// past them (and fails if it is now shorter).
  func etagOfGrowing(size: UInt64) -> String

  /// The object's last `count` bytes (all of it when it is shorter) and its size now, in one request.
  func tail(key: String, count: Int) throws(ObjectStoreError) -> (bytes: [UInt8], size: UInt64)

  /// Whether the object has stopped growing for good (its job finished): a `tail` asked after this
  /// answered true gives its final end.
  func hasStoppedGrowing(key: String) throws(ObjectStoreError) -> Bool
}

public enum RangeSupport: Sendable, Hashable {
  case any
  case suffixOnly
}

extension ObjectClient {
  public var rangeSupport: RangeSupport { .any }

  public var hasStorageClasses: Bool { false }

  /// True: an ETag names one content (S3's is a digest of it). A running job's log, whose ETag
  /// names only a length, is the exception.
  public func isFixed(etag: String) -> Bool { true }

  /// `get` of the current version.
  public func get(
    key: String, range: Range<UInt64>, ifMatch: String?, body: (UnsafeRawBufferPointer) -> Void
  ) throws(ObjectStoreError) {
    try get(key: key, version: nil, range: range, ifMatch: ifMatch, body: body)
  }

  /// Reads `range` into one array; for tests and small reads.
  public func getBytes(key: String, version: String? = nil, range: Range<UInt64>, ifMatch: String? = nil)
    throws(ObjectStoreError) -> [UInt8]
  {
    var bytes = [UInt8]()
    bytes.reserveCapacity(Int(range.count))
    try get(key: key, version: version, range: range, ifMatch: ifMatch) { bytes.append(contentsOf: $0) }
    return bytes
  }

  /// Every page of a listing, concatenated.
  public func listAll(prefix: String, delimiter: String?, startAfter: String? = nil) throws(ObjectStoreError)
    -> ListPage
  {
    var all = ListPage(objects: [], commonPrefixes: [], nextContinuationToken: nil)
    var request = ListRequest(prefix: prefix, delimiter: delimiter, startAfter: startAfter)
    while true {
      let page = try listPage(request)
      all.objects += page.objects
      all.commonPrefixes += page.commonPrefixes
      all.undecodableKeys += page.undecodableKeys
      guard let token = page.nextContinuationToken else { return all }
      request.continuationToken = token
    }
  }
}

public struct ListRequest: Sendable, Hashable {
  public var prefix: String
  public var delimiter: String?
  public var continuationToken: String?
  public var startAfter: String?
  public var maxKeys: Int?

  public init(
    prefix: String, delimiter: String? = "/", continuationToken: String? = nil, startAfter: String? = nil,
    maxKeys: Int? = nil
  ) {
    self.prefix = prefix
    self.delimiter = delimiter
    self.continuationToken = continuationToken
    self.startAfter = startAfter
    self.maxKeys = maxKeys
  }
}

public struct ListPage: Sendable, Hashable {
  public var objects: [ObjectInfo]
  public var commonPrefixes: [String]
  /// Present when the listing is truncated; pass it back for the next page.
  public var nextContinuationToken: String?
  /// Keys (or common prefixes) the store listed that are not UTF-8, so cannot be held as a `String`
  /// nor named in a request: each as the store sent it, percent-encoded, to be logged and left out.
  public var undecodableKeys: [String]

  public init(
    objects: [ObjectInfo], commonPrefixes: [String], nextContinuationToken: String?, undecodableKeys: [String] = []
  ) {
    self.objects = objects
    self.commonPrefixes = commonPrefixes
    self.nextContinuationToken = nextContinuationToken
    self.undecodableKeys = undecodableKeys
  }
}

public struct ObjectInfo: Sendable, Hashable {
  public var key: String
  public var size: UInt64
  /// Seconds since the Unix epoch, with nanoseconds.
  public var lastModified: Timestamp
  /// The ETag as the store gives it, quotes included (S3 sends `"…"`).
  public var etag: String
  /// What few objects have, kept apart so that the many without cost one word (listings and the
  /// runs of keys a mount keeps hold hundreds of thousands of these).
  private var rare: Rare?

  public init(
    key: String, size: UInt64, lastModified: Timestamp, etag: String, storage: ObjectStorage? = nil,
    versionID: String? = nil
  ) {
    self.key = key
    self.size = size
    self.lastModified = lastModified
    self.etag = etag
    if storage != nil || versionID != nil { rare = Rare(storage: storage, versionID: versionID) }
  }

  /// Where S3 keeps the object, when not in STANDARD (or the store does not say); nil otherwise.
  public var storage: ObjectStorage? {
    get { rare?.storage }
    set { rare = Rare.with(storage: newValue, versionID: rare?.versionID) }
  }

  /// The object's version, when the store said (a HEAD of a versioned bucket, a version listing).
  public var versionID: String? {
    get { rare?.versionID }
    set { rare = Rare.with(storage: rare?.storage, versionID: newValue) }
  }

  private final class Rare: Sendable, Hashable {
    let storage: ObjectStorage?
    let versionID: String?

    init(storage: ObjectStorage?, versionID: String?) {
      self.storage = storage
      self.versionID = versionID
    }

    /// A new box (boxes are shared between copies, so never changed), or nil for nothing.
    static func with(storage: ObjectStorage?, versionID: String?) -> Rare? {
      storage == nil && versionID == nil ? nil : Rare(storage: storage, versionID: versionID)
    }

    static func == (lhs: Rare, rhs: Rare) -> Bool { lhs.storage == rhs.storage && lhs.versionID == rhs.versionID }
    func hash(into hasher: inout Hasher) {
      hasher.combine(storage)
      hasher.combine(versionID)
    }
  }
}

/// An S3 storage class other than STANDARD, and what is known of the object's restore.
///
/// Objects in the archive classes (GLACIER, DEEP_ARCHIVE) cannot be read until restored; an
/// INTELLIGENT_TIERING object cannot once S3 moved it to an archive access tier (`archiveTier`).
/// Every other class reads like STANDARD.
public struct ObjectStorage: Sendable, Hashable {
  /// As S3 names it: "GLACIER", "DEEP_ARCHIVE", "GLACIER_IR", "STANDARD_IA", "INTELLIGENT_TIERING", …
  public var storageClass: String
  /// What S3 said of a restore; nil when it did not say (a listing from a server that ignores
  /// `x-amz-optional-object-attributes`, or a class with no restore).
  public var restore: RestoreState?
  /// For INTELLIGENT_TIERING: "ARCHIVE_ACCESS" or "DEEP_ARCHIVE_ACCESS" once S3 moved the object
  /// there (HEAD's `x-amz-archive-status`, or a read refused as `InvalidObjectState`).
  public var archiveTier: String?

  public init(storageClass: String, restore: RestoreState? = nil, archiveTier: String? = nil) {
    self.storageClass = Self.interned(storageClass)
    self.restore = restore
    self.archiveTier = archiveTier
  }

  /// The storage as a store reports it: nil for STANDARD (or none said), which most objects are.
  public static func reported(storageClass: String?, restore: RestoreState? = nil, archiveTier: String? = nil)
    -> ObjectStorage?
  {
    let storageClass = storageClass ?? "STANDARD"
    if storageClass == "STANDARD" && restore == nil && archiveTier == nil { return nil }
    return ObjectStorage(storageClass: storageClass, restore: restore, archiveTier: archiveTier)
  }

  /// The class as a file's `user.bklogfs.storage_class` attribute shows it: the class, then an
  /// INTELLIGENT_TIERING object's archive tier after a space (`INTELLIGENT_TIERING ARCHIVE_ACCESS`).
  public var attributeValue: String { archiveTier.map { "\(storageClass) \($0)" } ?? storageClass }

  /// The storage an `attributeValue` stands for (its restore state is not in it).
  public init(attributeValue: String) {
    let parts = attributeValue.split(separator: " ", maxSplits: 1).map(String.init)
    self.init(storageClass: parts.first ?? "", archiveTier: parts.count > 1 ? parts[1] : nil)
  }

  /// Whether the class keeps objects offline: a read needs a restore first.
  public var isArchiveClass: Bool {
    storageClass == "GLACIER" || storageClass == "DEEP_ARCHIVE" || archiveTier != nil
  }

  /// Whether the object can be read now: true or false, or nil when only S3 can tell (an archive
  /// class with no restore state said).
  public var isReadable: Bool? {
    guard isArchiveClass else { return true }
    switch restore {
    case nil: return nil
    case .restored: return true
    case .notRestored, .inProgress: return false
    }
  }

  /// The names S3 uses, as literals (which take no memory each), so that a listing of a million
  /// archived objects does not hold a million copies of "DEEP_ARCHIVE".
  private static func interned(_ name: String) -> String {
    for known in [
      "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER",
      "DEEP_ARCHIVE", "OUTPOSTS", "GLACIER_IR", "SNOW", "EXPRESS_ONEZONE", "FSX_OPENZFS",
    ] where known == name {
      return known
    }
    return name
  }
}

/// Whether an archived object is restored, as S3 says it.
public enum RestoreState: Sendable, Hashable {
  /// Not restored, nor being restored.
  case notRestored
  /// A restore was asked for and has not finished.
  case inProgress
  /// A restored copy is readable until `expiry` (nil when S3 gave no date).
  case restored(expiry: Timestamp?)
}

public struct Timestamp: Sendable, Hashable, Comparable {
  public var seconds: Int64
  public var nanoseconds: Int32

  public init(seconds: Int64, nanoseconds: Int32 = 0) {
    self.seconds = seconds
    self.nanoseconds = nanoseconds
  }

  public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool {
    (lhs.seconds, lhs.nanoseconds) < (rhs.seconds, rhs.nanoseconds)
  }
}

// MARK: - Versions

/// A store that keeps every version of an object (an S3 bucket with Versioning), and lists them.
public protocol VersionedObjectClient: ObjectClient {
  /// One page of ListObjectVersions: under `prefix`, keys in UTF-8 byte order and each key's
  /// versions and delete markers newest first; with a delimiter, keys holding it after the prefix
  /// are rolled up into common prefixes.
  func listVersionsPage(_ request: VersionListRequest) throws(ObjectStoreError) -> VersionPage
}

public struct VersionListRequest: Sendable, Hashable {
  public var prefix: String
  public var delimiter: String?
  /// Where the page starts: after this key (and, with `versionIDMarker`, after that version of it).
  public var keyMarker: String?
  public var versionIDMarker: String?
  public var maxKeys: Int?

  public init(
    prefix: String, delimiter: String? = nil, keyMarker: String? = nil, versionIDMarker: String? = nil,
    maxKeys: Int? = nil
  ) {
    self.prefix = prefix
    self.delimiter = delimiter
    self.keyMarker = keyMarker
    self.versionIDMarker = versionIDMarker
    self.maxKeys = maxKeys
  }
}

/// One version of an object, or a delete marker, as ListObjectVersions gives it.
public struct ObjectVersionEntry: Sendable, Hashable {
  public var key: String
  /// "null" for the version written while versioning was off or suspended.
  public var versionID: String
  public var isLatest: Bool
  /// A delete marker: the object was deleted at `lastModified` (no size, no ETag).
  public var isDeleteMarker: Bool
  public var lastModified: Timestamp
  public var size: UInt64
  public var etag: String
  public var storage: ObjectStorage?

  public init(
    key: String, versionID: String, isLatest: Bool, isDeleteMarker: Bool, lastModified: Timestamp, size: UInt64 = 0,
    etag: String = "", storage: ObjectStorage? = nil
  ) {
    self.key = key
    self.versionID = versionID
    self.isLatest = isLatest
    self.isDeleteMarker = isDeleteMarker
    self.lastModified = lastModified
    self.size = size
    self.etag = etag
    self.storage = storage
  }
}

public struct VersionPage: Sendable, Hashable {
  /// Versions and delete markers in the order listed.
  public var versions: [ObjectVersionEntry]
  public var commonPrefixes: [String]
  /// Present when the listing is truncated: where the next page starts.
  public var nextKeyMarker: String?
  public var nextVersionIDMarker: String?
  /// As `ListPage.undecodableKeys`.
  public var undecodableKeys: [String]

  public init(
    versions: [ObjectVersionEntry], commonPrefixes: [String], nextKeyMarker: String?, nextVersionIDMarker: String?,
    undecodableKeys: [String] = []
  ) {
    self.versions = versions
    self.commonPrefixes = commonPrefixes
    self.nextKeyMarker = nextKeyMarker
    self.nextVersionIDMarker = nextVersionIDMarker
    self.undecodableKeys = undecodableKeys
  }

  public var isTruncated: Bool { nextKeyMarker != nil }
}

extension VersionedObjectClient {
  /// Every version and delete marker of the object at `key`, newest first (by time, whatever the
  /// order the server listed them in; of two of the same time, in the order listed).
  public func versions(of key: String) throws(ObjectStoreError) -> [ObjectVersionEntry] {
    var found: [ObjectVersionEntry] = []
    var request = VersionListRequest(prefix: key)
    while true {
      let page = try listVersionsPage(request)
      found += page.versions.filter { sameBytes($0.key, key) }
      // Keys after this one sort after it: once a page holds another, every version was seen.
      guard page.isTruncated, page.versions.allSatisfy({ sameBytes($0.key, key) }) else { break }
      request.keyMarker = page.nextKeyMarker
      request.versionIDMarker = page.nextVersionIDMarker
    }
    return found.enumerated().sorted { lhs, rhs in
      lhs.element.lastModified != rhs.element.lastModified
        ? rhs.element.lastModified < lhs.element.lastModified : lhs.offset < rhs.offset
    }.map(\.element)
  }
}

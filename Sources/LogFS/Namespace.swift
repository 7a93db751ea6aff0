public import ObjectStore
public import SystemBase

/// What a tree is made of: its directories' entries, and where each file's bytes come from.
///
/// The filesystem core asks a namespace for a directory's entries (`list`) or for one name
/// (`lookup`); it keeps inodes, handles, caches and the kernel's view itself. The archive mirror
/// (`ArchiveNamespace`) is one namespace; Buildkite's org/pipeline/build/job names are another.
/// Calls run on FUSE worker threads and may block on the network; each is bounded in time.
public protocol Namespace: Sendable {
  /// The key of the mount's root directory.
  var rootKey: String { get }

  /// The stores this namespace reads from, for the counters `bklogfs stats` shows.
  var clients: [any ObjectClient] { get }

  /// What an API with a rate limit still allows in its current window, for the counters; nil
  /// where none applies (an S3 bucket, a local directory) or nothing is known of it yet.
  var apiBudget: MountStatistics.APIBudget? { get }

  /// How long the requests to such an API took, for the counters; nil where none applies.
  var apiLatency: LatencyHistogram.Snapshot? { get }

  /// Every entry of the directory with this key.
  func list(directory key: String) throws(FilesystemError) -> NamespaceListing

  /// One entry of the directory, or nil when it has no entry of that name. Should cost less than
  /// a whole listing where the source allows it.
  func lookup(directory key: String, name: String) throws(FilesystemError) -> NamespaceEntry?

  /// The next entries of a directory too big to list at once, from where the listing or page that
  /// gave `continuation` ended; the page's own `continuation` says where the next one starts.
  /// Called only with a continuation the namespace gave.
  func listPage(directory key: String, continuation: String) throws(FilesystemError) -> NamespaceListing

  /// The listing of a directory the namespace already holds, learned ahead of any request for it
  /// (from a page of keys that covered it), handed over once and without a request; nil when it
  /// holds none. The filesystem takes it as a listing of the directory.
  func knownListing(directory key: String) -> NamespaceListing?

  /// The name of the directory that follows the directory with this key in its parent, if the
  /// namespace knows it without a request (from a page of keys it holds); a walk goes on there.
  func directory(after key: String) -> String?

  /// What is mounted, as far as inode numbers go: the same text in two mounts gives the same path
  /// the same number (`InodeTable`). By default the stores' identities and the root's key.
  var sourceIdentity: String { get }

  /// A file listed without its size (`FileContent.size` nil), sized when it is first opened: its
  /// content with the size, and the object's last `tail` bytes (all of it, when it is shorter),
  /// which the request that learned the size brought and the filesystem keeps as the blocks they
  /// cover. Throws `.notFound` when the object is gone. Called only for content the namespace gave.
  func size(file content: FileContent, tail: Int) throws(FilesystemError) -> SizedFile

  /// A file sized with a size its store did not give (`SizedFile.isConfirmed` false) whose store
  /// then refused that version (a read failed as `.stale`): the namespace drops what told it the
  /// size, so that the file's next `size` asks the store. `content` is the file as it was sized.
  func sizeWasWrong(file content: FileContent)
}

/// A file's content once its size is known, with the last bytes of its object (`Namespace.size`).
public struct SizedFile: Sendable {
  public var content: FileContent
  /// The object's last bytes, as many as the request brought: `content.size` at most.
  public var tail: [UInt8]
  /// False when the size comes from another machine's record rather than the store: a read the
  /// store refuses then sizes the file again (`Namespace.sizeWasWrong`).
  public var isConfirmed: Bool

  public init(content: FileContent, tail: [UInt8], isConfirmed: Bool = true) {
    self.content = content
    self.tail = tail
    self.isConfirmed = isConfirmed
  }
}

extension Namespace {
  public func listPage(directory key: String, continuation: String) throws(FilesystemError) -> NamespaceListing {
    throw FilesystemError(.local, "\(key) has no more pages to list")
  }

  public func knownListing(directory key: String) -> NamespaceListing? { nil }

  public var apiBudget: MountStatistics.APIBudget? { nil }

  public var apiLatency: LatencyHistogram.Snapshot? { nil }

  public func directory(after key: String) -> String? { nil }

  public var sourceIdentity: String { clients.map(\.identity).joined(separator: " ") + "\u{0}" + rootKey }

  public func size(file content: FileContent, tail: Int) throws(FilesystemError) -> SizedFile {
    throw FilesystemError(.local, "this namespace lists every file with its size")
  }

  public func sizeWasWrong(file content: FileContent) {}
}

public struct NamespaceListing: Sendable {
  public var entries: [NamespaceEntry]
  /// Things the source holds that cannot be shown, each with the reason: logged once each.
  public var leftOut: [(source: String, reason: String)]
  /// Seconds this listing may be trusted; nil for the filesystem's default.
  public var ttl: Double?
  /// False when the directory holds more than it lists (a pipeline's builds beyond the newest few):
  /// a name the listing lacks is then looked up rather than taken as missing.
  public var isComplete: Bool
  /// For a directory too big to list at once: where its next entries start (`listPage`). The
  /// listing holds the first entries only, and is not complete.
  public var continuation: String?

  public init(
    entries: [NamespaceEntry], leftOut: [(source: String, reason: String)] = [], ttl: Double? = nil,
    isComplete: Bool = true, continuation: String? = nil
  ) {
    self.continuation = continuation
    self.entries = entries
    self.leftOut = leftOut
    self.ttl = ttl
    self.isComplete = isComplete
  }
}

public struct NamespaceEntry: Sendable {
  public var name: String
  public var content: Content
  /// A directory's or link's modification time (and change time); nil shows 0, 1970-01-01 UTC. It
  /// must be the same every time the entry is listed or looked up until what it stands for changes,
  /// so that `rsync -a` and `ls -lt` see the tree as it is, in every mount. A file's time is its
  /// content's (`FileContent.modified`), and this is not used for one.
  public var modified: Timestamp?

  public enum Content: Sendable {
    /// A directory, with the key the namespace knows it by.
    case directory(key: String)
    case file(FileContent)
    /// A symbolic link, such as a readable alias of a file in the same tree.
    case symlink(target: String)
  }

  public init(name: String, content: Content, modified: Timestamp? = nil) {
    self.name = name
    self.content = content
    self.modified = modified
  }
}

extension NamespaceEntry.Content {
  public var kind: NodeKind {
    switch self {
    case .directory: .directory
    case .file: .file
    case .symlink: .symlink
    }
  }
}

public struct FileContent: Sendable {
  /// The object's size in bytes; nil when the listing did not give it and it is learned when the
  /// file is first opened (`Namespace.size`), so that listing a directory costs no request per file.
  /// Until then the file shows size 0, and the kernel is told to ask for its attributes every time.
  public var size: UInt64?
  public var modified: Timestamp
  /// True when the bytes can never change (an archived log): the kernel may then keep the file's
  /// attributes and pages without expiry.
  public var isImmutable: Bool
  public var source: FileSource
  /// The object's storage class and restore state, when it is not in STANDARD (`ObjectInfo.storage`).
  public var storage: ObjectStorage?

  public init(
    size: UInt64?, modified: Timestamp, isImmutable: Bool, source: FileSource, storage: ObjectStorage? = nil
  ) {
    self.size = size
    self.modified = modified
    self.isImmutable = isImmutable
    self.source = source
    self.storage = storage
  }
}

public enum FileSource: Sendable {
  /// An object of a store, read in blocks (cached) when the store is remote: its current version,
  /// or the version `version` (a mount `--as-of` a time). Blocks are kept by ETag, which names the
  /// bytes, so that two versions share blocks only when their bytes are the same.
  case object(client: any ObjectClient, key: String, etag: String, version: String? = nil)
  /// Bytes the namespace holds itself, such as a build's metadata.
  case bytes([UInt8])
}

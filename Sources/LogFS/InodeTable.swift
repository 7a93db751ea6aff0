import ObjectStore

/// The tree as known so far: which inode stands for which entry, and what each directory held when
/// it was last listed. An inode number stands for one (parent, name, kind) for the life of the
/// mount. Not thread-safe on its own; `LogFilesystem` keeps it behind a mutex.
struct InodeTable {
  struct Node {
    let inode: UInt64
    let parent: UInt64
    let name: String
    var content: NamespaceEntry.Content

    var kind: NodeKind { content.kind }
  }

  struct Listing {
    var children = Children()
    /// Monotonic seconds until which the last full listing is trusted; nil when never listed.
    var trustedUntil: Double?
    /// Whether the listing holds every name of the directory.
    var isComplete = true
    /// The names of the last full listing, in byte order (the order readdir gives them).
    var order: [String] = []

    /// The position of `name` in `order`, if it is there.
    func position(of name: String) -> Int? {
      var low = 0
      var high = order.count
      while low < high {
        let middle = (low + high) / 2
        if utf8Less(order[middle], name) { low = middle + 1 } else { high = middle }
      }
      return low < order.count && sameBytes(order[low], name) ? low : nil
    }
  }

  private struct Identity: Hashable {
    let parent: UInt64
    let name: ExactName
    let kind: NodeKind
  }

  static let rootInode: UInt64 = 1

  private var nodes: [UInt64: Node] = [:]
  private var listings: [UInt64: Listing] = [:]
  private var inodeByIdentity: [Identity: UInt64] = [:]
  private var nextInode: UInt64 = 2
  /// Files whose content (object version or size) changed since the last `takeChangedFiles`.
  private var changedFiles: [UInt64] = []

  /// The files found changed by listings and lookups since the last call.
  mutating func takeChangedFiles() -> [UInt64] {
    defer { changedFiles.removeAll() }
    return changedFiles
  }

  init(rootKey: String) {
    nodes[Self.rootInode] = Node(
      inode: Self.rootInode, parent: Self.rootInode, name: "", content: .directory(key: rootKey))
    listings[Self.rootInode] = Listing()
  }

  func node(_ inode: UInt64) -> Node? { nodes[inode] }

  func listing(_ inode: UInt64) -> Listing? { listings[inode] }

  /// The inode for an entry of `parent`, made on first sight; a known one takes the entry's new content.
  private mutating func inode(parent: UInt64, entry: NamespaceEntry) -> UInt64 {
    let identity = Identity(parent: parent, name: ExactName(entry.name), kind: entry.content.kind)
    if let existing = inodeByIdentity[identity] {
      if case .file(let old)? = nodes[existing]?.content, case .file(let new) = entry.content,
        old.version != new.version
      {
        changedFiles.append(existing)
      }
      nodes[existing]?.content = entry.content
      return existing
    }
    let node = Node(inode: nextInode, parent: parent, name: entry.name, content: entry.content)
    nextInode += 1
    nodes[node.inode] = node
    if node.kind == .directory { listings[node.inode] = Listing() }
    inodeByIdentity[identity] = node.inode
    return node.inode
  }

  /// Records a full listing of `directory`, trusted until `trustedUntil`; returns its children.
  mutating func replaceListing(
    of directory: UInt64, with entries: [NamespaceEntry], trustedUntil: Double, isComplete: Bool
  ) -> Children {
    var children = Children()
    for entry in entries { children[entry.name] = inode(parent: directory, entry: entry) }
    listings[directory] = Listing(
      children: children, trustedUntil: trustedUntil, isComplete: isComplete,
      order: children.names.sorted(by: utf8Less))
    return children
  }

  /// Records one entry found by a lookup, or that the name is gone (`entry` nil).
  mutating func recordLookup(in directory: UInt64, name: String, entry: NamespaceEntry?) -> UInt64? {
    guard let entry else {
      listings[directory]?.children[name] = nil
      return nil
    }
    let child = inode(parent: directory, entry: entry)
    listings[directory, default: Listing()].children[name] = child
    return child
  }
}

/// A directory's children by name, matched byte for byte: two names the kernel holds apart (such
/// as "caf\u{E9}" and "cafe\u{301}", equal as Swift strings) are never taken for each other.
struct Children: Sequence {
  private var byName: [ExactName: UInt64] = [:]

  subscript(name: String) -> UInt64? {
    get { byName[ExactName(name)] }
    set { byName[ExactName(name)] = newValue }
  }

  var names: [String] { byName.keys.map(\.string) }

  func makeIterator() -> some IteratorProtocol<(name: String, inode: UInt64)> {
    byName.lazy.map { (name: $0.key.string, inode: $0.value) }.makeIterator()
  }
}

extension FileContent {
  /// What identifies the bytes: the object's ETag and the size, or the inline bytes.
  fileprivate var version: String {
    switch source {
    case .object(_, let key, let etag): "\(key)\u{0}\(etag)\u{0}\(size)"
    case .bytes(let bytes): "\(bytes.count)\u{0}\(bytes.hashValue)"
    }
  }
}

import Digests
import ObjectStore

/// The tree as known so far: which inode stands for which entry, and what each directory held when
/// it was last listed. Not thread-safe on its own; `LogFilesystem` keeps it behind a mutex.
///
/// An inode number stands for one path (each step a name and a kind: file, directory or link) of
/// one mount source, and it is the same in every mount of that source, in whatever order the paths
/// are looked up, on any machine: it is derived from the path (`StableInode`), not handed out in
/// order, so backup tools that key their change detection on inode numbers (restic, borg, `tar -g`)
/// see the same file after a remount. Two paths whose numbers collide (a 64-bit hash: about one
/// chance in 10^6 for 10^7 names) are told apart by giving the one seen second the next free
/// number, which then holds for this mount only. No number is ever given to a second path while
/// the kernel may hold the first, so the kernel never holds one number for two files.
///
/// The table is bounded (`capacity` names). A node is kept while the kernel holds it (the lookups
/// and readdirplus entries it was given, less what it forgot), while it has children, while a
/// directory handle of its parent is open, and while its parent's listing is trusted. Past the
/// capacity, the least recently used listings are dropped with the children nobody holds, and the
/// names of those the kernel holds are handed back to be invalidated, so that the kernel forgets
/// them too; a dropped name is listed or looked up again when next asked for, and gets the same
/// number.
struct InodeTable {
  struct Node {
    let inode: UInt64
    let parent: UInt64
    let name: String
    var content: NamespaceEntry.Content
    /// The time of a directory or link, from the last entry recorded for it (`NamespaceEntry.modified`).
    var modified: Timestamp?

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
    /// When the listing was last used, in the table's ticks: the least recently used go first.
    var lastUsed: UInt64 = 0
    /// For a directory too big to list at once: where the entries after the listed ones start.
    var continuation: String?

    /// Whether the last full listing may still be trusted at monotonic time `now`.
    func isTrusted(at now: Double) -> Bool { trustedUntil.map { now < $0 } ?? false }

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

  /// What the table keeps of a node: `Node` without what can be derived (see `Stored`).
  private struct Record {
    /// The number the path hashes to before any collision moved it: what its children's derive from.
    let seed: UInt64
    let parent: UInt64
    let name: String
    var stored: Stored
    /// References the kernel holds: lookups and readdirplus entries it was given, less what it forgot.
    var lookups: UInt64 = 0
    /// Nodes whose parent this is: a directory goes only after them (their numbers derive from its seed).
    var liveChildren: Int32 = 0

    var kind: NodeKind {
      switch stored {
      case .directory: .directory
      case .file: .file
      case .symlink: .symlink
      }
    }
  }

  /// A node's content, kept small, since a table may hold hundreds of thousands: a key that is its
  /// parent's key and its name (as every key of the archive's tree is) is derived rather than kept,
  /// a store is kept by its index in `clients`, and an S3 ETag (a quoted MD5) as 16 bytes.
  private enum Stored {
    case directory(key: String?, modified: Timestamp?)
    /// A size not known yet (`FileContent.size` nil) is kept as `unknownSize`, which no object has,
    /// so that the record is no bigger for it.
    case file(size: UInt64, modified: Timestamp, isImmutable: Bool, source: StoredSource)
    case symlink(target: String, modified: Timestamp?)
  }

  private enum StoredSource: Equatable {
    case object(client: UInt16, key: String?, etag: CompactETag)
    case bytes([UInt8])
  }

  static let rootInode: UInt64 = 1
  private static let unknownSize = UInt64.max

  private var records: [UInt64: Record] = [:]
  private var listings: [UInt64: Listing] = [:]
  /// The few nodes whose number is not the one their path hashes to (a collision moved them).
  private var displaced: [Identity: UInt64] = [:]
  /// The stores files are read from, by the index their records keep.
  private var clients: [any ObjectClient] = []
  /// How a path's seed is made: `StableInode.seed`, or a weaker one in tests that need collisions.
  private let seedOf: (UInt64, String, NodeKind) -> UInt64
  /// Files whose content (object version or size) changed since the last `takeChangedFiles`.
  private var changedFiles: [UInt64] = []
  /// The most names kept while nothing holds them (see the type's comment).
  let capacity: Int
  private var ticks: UInt64 = 0
  /// How many names the last eviction left.
  private var evictedTo = 0
  /// Open directory handles by directory: the entries of their snapshots stay while they are open,
  /// for readdirplus hands them to the kernel.
  private var openDirectories: [UInt64: Int] = [:]

  /// The names the table holds, the root included.
  var count: Int { records.count }

  /// The files found changed by listings and lookups since the last call.
  mutating func takeChangedFiles() -> [UInt64] {
    defer { changedFiles.removeAll() }
    return changedFiles
  }

  /// `source` names what is mounted (the stores and the namespace's root), so that another source's
  /// paths get other numbers.
  init(
    rootKey: String, source: String, capacity: Int = .max,
    seedOf: @escaping (_ parent: UInt64, _ name: String, _ kind: NodeKind) -> UInt64 = StableInode.seed
  ) {
    self.seedOf = seedOf
    self.capacity = max(1, capacity)
    records[Self.rootInode] = Record(
      seed: StableInode.seed(source: source), parent: Self.rootInode, name: "",
      stored: .directory(key: rootKey, modified: nil))
    listings[Self.rootInode] = Listing()
  }

  func node(_ inode: UInt64) -> Node? {
    guard let record = records[inode] else { return nil }
    let (content, modified) = expand(record)
    return Node(
      inode: inode, parent: record.parent, name: record.name, content: content, modified: modified)
  }

  /// The key of the directory with this inode.
  private func key(of directory: UInt64) -> String {
    guard let record = records[directory], case .directory(let key, _) = record.stored else { return "" }
    return key ?? self.key(of: record.parent) + record.name + "/"
  }

  private func expand(_ record: Record) -> (NamespaceEntry.Content, Timestamp?) {
    switch record.stored {
    case .directory(let key, let modified):
      return (.directory(key: key ?? self.key(of: record.parent) + record.name + "/"), modified)
    case .symlink(let target, let modified):
      return (.symlink(target: target), modified)
    case .file(let size, let modified, let isImmutable, let stored):
      let source: FileSource
      switch stored {
      case .object(let client, let key, let etag):
        source = .object(
          client: clients[Int(client)], key: key ?? self.key(of: record.parent) + record.name, etag: etag.string)
      case .bytes(let bytes):
        source = .bytes(bytes)
      }
      let known = size == Self.unknownSize ? nil : size
      return (.file(FileContent(size: known, modified: modified, isImmutable: isImmutable, source: source)), nil)
    }
  }

  /// An entry of the directory whose key is `parentKey`, as a record keeps it.
  private mutating func compact(_ entry: NamespaceEntry, under parentKey: String) -> Stored {
    switch entry.content {
    case .directory(let key):
      let derived = sameBytes(key, parentKey + entry.name + "/")
      return .directory(key: derived ? nil : key, modified: entry.modified)
    case .symlink(let target):
      return .symlink(target: target, modified: entry.modified)
    case .file(let file):
      switch file.source {
      case .object(let client, let key, let etag):
        let derived = sameBytes(key, parentKey + entry.name)
        return .file(
          size: file.size ?? Self.unknownSize, modified: file.modified, isImmutable: file.isImmutable,
          source: .object(client: index(of: client), key: derived ? nil : key, etag: CompactETag(etag)))
      case .bytes(let bytes):
        return .file(
          size: file.size ?? Self.unknownSize, modified: file.modified, isImmutable: file.isImmutable,
          source: .bytes(bytes))
      }
    }
  }

  /// The index of a store in `clients`, added on first sight; stores are told apart by identity.
  private mutating func index(of client: any ObjectClient) -> UInt16 {
    if let found = clients.firstIndex(where: { $0.identity == client.identity }) { return UInt16(found) }
    clients.append(client)
    return UInt16(clients.count - 1)
  }

  /// The number an entry of `parent` has, or would have if it were looked up now (a collision found
  /// then could move it): for entries the kernel is given only by name.
  func number(in parent: UInt64, name: String, kind: NodeKind) -> UInt64 {
    let seed = seedOf(records[parent]?.seed ?? 0, name, kind)
    return existing(Identity(parent: parent, name: ExactName(name), kind: kind), seed: seed) ?? StableInode.number(seed)
  }

  /// The inode of the node for this path step, if the table holds one.
  private func existing(_ identity: Identity, seed: UInt64) -> UInt64? {
    let number = StableInode.number(seed)
    if let record = records[number], record.parent == identity.parent, record.kind == identity.kind,
      sameBytes(record.name, identity.name.string)
    {
      return number
    }
    return displaced[identity]
  }

  func listing(_ inode: UInt64) -> Listing? { listings[inode] }

  /// The inode for an entry of `parent`, made on first sight; a known one takes the entry's new content.
  /// `parentKey` is the parent's key (`key(of: parent)`), worked out once for a whole listing.
  private mutating func inode(parent: UInt64, parentKey: String, entry: NamespaceEntry) -> UInt64 {
    let identity = Identity(parent: parent, name: ExactName(entry.name), kind: entry.content.kind)
    let seed = seedOf(records[parent]?.seed ?? 0, entry.name, entry.content.kind)
    let stored = compact(entry, under: parentKey)
    if let existing = existing(identity, seed: seed) {
      if case .file(let oldSize, _, _, let old) = records[existing]!.stored,
        case .file(let newSize, _, _, let new) = stored,
        oldSize != newSize || old != new
      {
        changedFiles.append(existing)
      }
      records[existing]!.stored = stored
      return existing
    }
    var number = StableInode.number(seed)
    while records[number] != nil { number = StableInode.number(number &+ 1) }
    records[number] = Record(seed: seed, parent: parent, name: entry.name, stored: stored)
    records[parent]?.liveChildren += 1
    if entry.content.kind == .directory { listings[number] = Listing() }
    if number != StableInode.number(seed) { displaced[identity] = number }
    return number
  }

  /// Records a full listing of `directory`, trusted until `trustedUntil`; returns its children.
  mutating func replaceListing(
    of directory: UInt64, with entries: [NamespaceEntry], trustedUntil: Double, isComplete: Bool,
    continuation: String? = nil
  ) -> Children {
    var children = Children()
    guard records[directory] != nil else { return children }
    let parentKey = key(of: directory)
    for entry in entries { children[entry.name] = inode(parent: directory, parentKey: parentKey, entry: entry) }
    let previous = listings[directory]?.children
    ticks += 1
    listings[directory] = Listing(
      children: children, trustedUntil: trustedUntil, isComplete: isComplete,
      order: children.names.sorted(by: utf8Less), lastUsed: ticks, continuation: continuation)
    // Names the directory no longer holds go once nothing holds them.
    for (name, child) in previous ?? Children() where children[name] != child { dropIfUnused(child, now: nil) }
    return children
  }

  /// Gives a file the content it has now that its size is known (`Namespace.size`), in place: not a
  /// change of the file, whose bytes the kernel never had by the size it held (0). False when the
  /// table no longer holds it as a file.
  mutating func sized(_ inode: UInt64, _ content: FileContent) -> Bool {
    guard let record = records[inode], case .file = record.stored else { return false }
    records[inode]!.stored = compact(
      NamespaceEntry(name: record.name, content: .file(content)), under: key(of: record.parent))
    return true
  }

  /// Records one entry found by a lookup, or that the name is gone (`entry` nil).
  mutating func recordLookup(in directory: UInt64, name: String, entry: NamespaceEntry?) -> UInt64? {
    guard let entry else {
      if let gone = listings[directory]?.children[name] {
        listings[directory]?.children[name] = nil
        dropIfUnused(gone, now: nil)
      }
      return nil
    }
    guard records[directory] != nil else { return nil }
    let child = inode(parent: directory, parentKey: key(of: directory), entry: entry)
    listings[directory, default: Listing()].children[name] = child
    return child
  }

  // MARK: What holds a node

  /// Marks the directory's listing as just used.
  mutating func touch(_ directory: UInt64) {
    ticks += 1
    listings[directory]?.lastUsed = ticks
  }

  /// The kernel was given the inode `count` more times (a lookup's or a readdirplus entry's reply).
  mutating func reference(_ inode: UInt64, count: UInt64 = 1) -> Bool {
    guard records[inode] != nil else { return false }
    records[inode]!.lookups += count
    return true
  }

  /// The kernel forgot `count` of its references to the inode (FUSE's forget); at monotonic time
  /// `now`, by which a parent's listing is judged still trusted.
  mutating func forget(_ inode: UInt64, count: UInt64, now: Double) {
    guard inode != Self.rootInode, records[inode] != nil else { return }
    records[inode]!.lookups -= min(count, records[inode]!.lookups)
    if records[inode]!.lookups == 0 { releaseExpiredListing(of: inode, now: now) }
    dropIfUnused(inode, now: now)
  }

  /// A directory the kernel no longer holds, whose listing expired: the listing goes, with the
  /// children nothing else holds. The kernel is given files by name only (`DirectoryEntry.handsInode`),
  /// so no forget of theirs would ever let them go.
  private mutating func releaseExpiredListing(of directory: UInt64, now: Double) {
    guard openDirectories[directory] == nil, let listing = listings[directory], !listing.children.isEmpty,
      !listing.isTrusted(at: now)
    else { return }
    listings[directory] = Listing(lastUsed: listing.lastUsed)
    for (_, child) in listing.children {
      guard let node = records[child], node.lookups == 0, node.liveChildren == 0 else { continue }
      dropIfUnused(child, now: nil)
    }
  }

  mutating func openedDirectory(_ inode: UInt64) { openDirectories[inode, default: 0] += 1 }

  mutating func closedDirectory(_ inode: UInt64) {
    guard let open = openDirectories[inode] else { return }
    openDirectories[inode] = open > 1 ? open - 1 : nil
  }

  /// Drops the node if nothing holds it (see the type's comment), and then its parent if that held
  /// it last. A listing is judged trusted at monotonic time `now`; with `now` nil, any full listing
  /// that lists a node holds it.
  private mutating func dropIfUnused(_ inode: UInt64, now: Double?) {
    var next: UInt64? = inode
    while let inode = next, inode != Self.rootInode, let node = records[inode] {
      guard node.lookups == 0, node.liveChildren == 0, openDirectories[node.parent] == nil else { return }
      let listed = listings[node.parent].map { $0.children[node.name] == inode } ?? false
      if listed, let until = listings[node.parent]!.trustedUntil, now.map({ $0 < until }) ?? true { return }
      records[inode] = nil
      if !displaced.isEmpty {
        displaced[Identity(parent: node.parent, name: ExactName(node.name), kind: node.kind)] = nil
      }
      listings[inode] = nil
      if listed {
        // The parent's listing no longer holds every name it had.
        listings[node.parent]!.children[node.name] = nil
        listings[node.parent]!.trustedUntil = nil
      }
      records[node.parent]?.liveChildren -= 1
      next = node.parent
    }
  }

  /// Past the capacity, drops the least recently used listings, down to nine tenths of it: their
  /// children nobody holds go, and the names of those the kernel holds are returned, for the kernel
  /// to be told to forget them (it then does, unless a process is using them).
  mutating func evict() -> [(parent: UInt64, name: String)] {
    guard records.count > capacity else {
      evictedTo = 0
      return []
    }
    // While the kernel has yet to forget what it was asked to, the table stays above its capacity:
    // it is gone through again only once it grew by a twentieth more.
    guard records.count >= evictedTo + capacity / 20 else { return [] }
    defer { evictedTo = records.count }
    let target = capacity / 10 * 9
    var held: [(parent: UInt64, name: String)] = []
    let byAge = listings.filter { !$0.value.children.isEmpty && openDirectories[$0.key] == nil }
      .map { (inode: $0.key, lastUsed: $0.value.lastUsed) }.sorted { $0.lastUsed < $1.lastUsed }
    for (directory, _) in byAge where records.count > target {
      guard let children = listings[directory]?.children else { continue }
      listings[directory] = Listing(lastUsed: listings[directory]!.lastUsed)
      for (name, child) in children {
        guard let node = records[child] else { continue }
        // Its parent's listing is gone: only the kernel and its own children hold it now.
        if node.lookups > 0 { held.append((directory, name)) } else { dropIfUnused(child, now: nil) }
      }
    }
    return held
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

  var isEmpty: Bool { byName.isEmpty }

  func makeIterator() -> some IteratorProtocol<(name: String, inode: UInt64)> {
    byName.lazy.map { (name: $0.key.string, inode: $0.value) }.makeIterator()
  }
}

/// An ETag as a table keeps it: S3's usual form, a quoted MD5 in lowercase hex, as its 16 bytes;
/// any other (a multipart upload's, a local directory's) as it is.
enum CompactETag: Hashable, Sendable {
  case md5(UInt64, UInt64)
  case text(String)

  init(_ etag: String) {
    let bytes = Array(etag.utf8)
    let quote = UInt8(ascii: "\"")
    guard bytes.count == 34, bytes.first == quote, bytes.last == quote else {
      self = .text(etag)
      return
    }
    var halves: [UInt64] = [0, 0]
    for (index, byte) in bytes[1..<33].enumerated() {
      let digit: UInt8
      switch byte {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
      case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
      default:
        self = .text(etag)
        return
      }
      halves[index / 16] = halves[index / 16] << 4 | UInt64(digit)
    }
    self = .md5(halves[0], halves[1])
  }

  var string: String {
    switch self {
    case .text(let text): return text
    case .md5(let high, let low):
      func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
      }
      return "\"" + hex(high) + hex(low) + "\""
    }
  }
}

/// Inode numbers derived from paths: the first 8 bytes of a SHA-256 over the parent's seed, the
/// entry's kind and its name's bytes: fixed, unlike Swift's `Hasher`, which is seeded anew in every
/// process, and well spread, so that collisions stay as rare as 64 bits allow (names made to collide
/// on purpose would take some 2^32 tries, and cost only the stability of one number).
enum StableInode {
  /// The seed of a mount source's root.
  static func seed(source: String) -> UInt64 { leading64(SHA256.hash(Array("bklogfs-root\u{0}\(source)".utf8))) }

  static func seed(parent: UInt64, name: String, kind: NodeKind) -> UInt64 {
    let kindByte: UInt8 =
      switch kind {
      case .directory: 0x64
      case .file: 0x66
      case .symlink: 0x6C
      }
    var bytes = withUnsafeBytes(of: parent.littleEndian) { Array($0) }
    bytes.append(kindByte)
    bytes += name.utf8
    return leading64(SHA256.hash(bytes))
  }

  /// A seed as an inode number: 0 is no inode and 1 the root, for FUSE.
  static func number(_ seed: UInt64) -> UInt64 { seed < 2 ? seed + 2 : seed }

  private static func leading64(_ digest: [UInt8]) -> UInt64 {
    digest.prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
  }
}

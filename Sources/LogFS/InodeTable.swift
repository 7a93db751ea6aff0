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

  /// What is known of a directory's listing, its entries aside (`child(named:in:)`, `entries(of:listedOnly:)`).
  struct ListingState {
    /// Monotonic seconds until which the last full listing is trusted; nil when never listed.
    var trustedUntil: Double?
    /// Whether the listing holds every name of the directory.
    var isComplete: Bool
    /// For a directory too big to list at once: where the entries after the listed ones start.
    var continuation: String?
    /// The names known in the directory: those its last listing gave, and those looked up since.
    var count: Int

    /// Whether the last full listing may still be trusted at monotonic time `now`.
    func isTrusted(at now: Double) -> Bool { trustedUntil.map { now < $0 } ?? false }
  }

  private struct Listing {
    /// The slots of the names known in the directory, in byte order of the names: those its last
    /// full listing gave (`Flags.listed`) and those looked up since.
    var children: [Int32] = []
    var trustedUntil: Double?
    var isComplete = true
    /// When the listing was last used, in the table's ticks: the least recently used go first.
    var lastUsed: UInt64 = 0
    var continuation: String?
  }

  private struct Identity: Hashable {
    let parent: UInt64
    let name: ExactName
    let kind: NodeKind
  }

  /// One node, in a slot of `records`: 80 bytes, since a table holds hundreds of thousands. What
  /// can be derived is not kept (a key that is its parent's key and its name, as every key of the
  /// archive's tree is; the inode number, which is the path's seed unless a collision moved it), a
  /// UUID name is kept as its 16 bytes (`PackedName`) and an S3 ETag (a quoted MD5) as its 16
  /// bytes; what does not fit (another key or ETag, a link's target, a file's bytes) is in `extras`.
  private struct Record {
    /// A file's ETag as an MD5 (`Flags.md5`), else 0.
    var etagHigh: UInt64 = 0
    var etagLow: UInt64 = 0
    /// A file's size, or `unknownSize` while it is not known (`FileContent.size` nil).
    var size: UInt64 = 0
    /// The time of the file, or of the directory or link (`Flags.hasModified`).
    var seconds: Int64 = 0
    /// The number the path hashes to before any collision moved it: what its children's derive from.
    var seed: UInt64
    var name: PackedName
    var nanoseconds: Int32 = 0
    /// The parent's slot (the root's is its own).
    var parent: Int32
    /// References the kernel holds: lookups and readdirplus entries it was given, less what it
    /// forgot. At `UInt32.max` it stays (`pinned`), so that the node is never dropped early.
    var lookups: UInt32 = 0
    /// Nodes whose parent this is: a directory goes only after them (their numbers derive from its seed).
    var liveChildren: Int32 = 0
    /// The file's store, by its index in `clients`.
    var client: UInt16 = 0
    var kind: Kind
    var flags: Flags = []

    static let free = Record(seed: 0, name: .text(""), parent: -1, kind: .free)
  }

  private enum Kind: UInt8 {
    case free
    case directory
    case file
    case symlink

    init(_ kind: NodeKind) {
      switch kind {
      case .directory: self = .directory
      case .file: self = .file
      case .symlink: self = .symlink
      }
    }

    var nodeKind: NodeKind {
      switch self {
      case .directory, .free: .directory
      case .file: .file
      case .symlink: .symlink
      }
    }
  }

  private struct Flags: OptionSet {
    let rawValue: UInt8
    static let hasModified = Flags(rawValue: 1)
    static let isImmutable = Flags(rawValue: 2)
    static let md5 = Flags(rawValue: 4)
    /// The file's content is bytes (`extras`), not an object.
    static let bytes = Flags(rawValue: 8)
    /// Its parent's last full listing gave it (rather than a lookup since).
    static let listed = Flags(rawValue: 16)
    /// The inode number is not the seed's (`displacedInodes`).
    static let displaced = Flags(rawValue: 32)
    static let pinned = Flags(rawValue: 64)
  }

  /// What a record does not keep: a key not derived from the path, an ETag not an MD5, a link's
  /// target, a file's bytes.
  private struct Extra {
    var key: String?
    var etag: String?
    var target: String?
    var bytes: [UInt8]?
    /// A file's storage, when its object is not in STANDARD.
    var storage: ObjectStorage?
    /// The version of its object a file reads, when not the current one (`--as-of`).
    var version: String?

    var isEmpty: Bool {
      key == nil && etag == nil && target == nil && bytes == nil && storage == nil && version == nil
    }
  }

  /// The bytes a node's record takes (doc/ARCHITECTURE.md), besides its entry in the index.
  static var recordSize: Int { MemoryLayout<Record>.stride }

  static let rootInode: UInt64 = 1
  private static let rootSlot: Int32 = 0
  private static let unknownSize = UInt64.max

  private var records = Slots<Record>()
  /// Slots of `records` no node uses.
  private var freeSlots: [Int32] = []
  /// The slot of each inode.
  private var slots: [UInt64: Int32] = [:]
  /// Listings by directory: one never listed, nor looked up in, or whose listing was let go, has
  /// none, which costs nothing (a walk leaves hundreds of thousands of such directories the kernel
  /// holds), and which `listing(_:)` shows as never listed.
  private var listings: [Int32: Listing] = [:]
  private var extras: [Int32: Extra] = [:]
  /// The few nodes whose number is not the one their path hashes to (a collision moved them), and
  /// the root: by path step, and the number by slot.
  private var displaced: [Identity: UInt64] = [:]
  private var displacedInodes: [Int32: UInt64] = [:]
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
  var count: Int { slots.count }

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
    // Room for the numbers of the names up to the capacity is set aside once: room the table does
    // not use yet is only address space, and growing it by copies would leave the old copies' heap
    // behind (`Slots` does not grow by copies).
    let expected = min(self.capacity, 1 << 20)
    slots.reserveCapacity(expected + expected / 8)
    _ = records.append(
      Record(seed: StableInode.seed(source: source), name: .text(""), parent: Self.rootSlot, kind: .directory))
    records[0].flags.insert(.displaced)
    slots[Self.rootInode] = Self.rootSlot
    displacedInodes[Self.rootSlot] = Self.rootInode
    extras[Self.rootSlot] = Extra(key: rootKey)
    listings[Self.rootSlot] = Listing()
  }

  // MARK: Reading

  private func inode(of slot: Int32) -> UInt64 {
    let record = records[slot]
    return record.flags.contains(.displaced) ? displacedInodes[slot]! : StableInode.number(record.seed)
  }

  func node(_ inode: UInt64) -> Node? {
    guard let slot = slots[inode] else { return nil }
    let record = records[slot]
    let extra = extras[slot]
    let modified =
      record.flags.contains(.hasModified) ? Timestamp(seconds: record.seconds, nanoseconds: record.nanoseconds) : nil
    let content: NamespaceEntry.Content
    switch record.kind {
    case .directory, .free:
      content = .directory(key: key(of: slot))
    case .symlink:
      content = .symlink(target: extra?.target ?? "")
    case .file:
      let source: FileSource
      if record.flags.contains(.bytes) {
        source = .bytes(extra?.bytes ?? [])
      } else {
        let etag =
          record.flags.contains(.md5)
          ? CompactETag.md5(record.etagHigh, record.etagLow).string : (extra?.etag ?? "")
        source = .object(
          client: clients[Int(record.client)],
          key: extra?.key ?? key(of: record.parent) + record.name.string, etag: etag, version: extra?.version)
      }
      let file = FileContent(
        size: record.size == Self.unknownSize ? nil : record.size, modified: modified ?? Timestamp(seconds: 0),
        isImmutable: record.flags.contains(.isImmutable), source: source, storage: extra?.storage)
      return Node(inode: inode, parent: self.inode(of: record.parent), name: record.name.string, content: .file(file))
    }
    return Node(
      inode: inode, parent: self.inode(of: record.parent), name: record.name.string, content: content,
      modified: modified)
  }

  /// The key of the directory in this slot.
  private func key(of directory: Int32) -> String {
    if let key = extras[directory]?.key { return key }
    let record = records[directory]
    guard record.kind == .directory, directory != Self.rootSlot else { return "" }
    return key(of: record.parent) + record.name.string + "/"
  }

  /// What is known of the directory's listing, if the inode is a directory the table holds.
  func listing(_ inode: UInt64) -> ListingState? {
    guard let slot = slots[inode], records[slot].kind == .directory else { return nil }
    // A directory never listed, or whose listing was let go, keeps none.
    guard let listing = listings[slot] else {
      return ListingState(trustedUntil: nil, isComplete: true, continuation: nil, count: 0)
    }
    return ListingState(
      trustedUntil: listing.trustedUntil, isComplete: listing.isComplete, continuation: listing.continuation,
      count: listing.children.count)
  }

  /// The child of the directory with this name, if the table knows it.
  func child(named name: String, in directory: UInt64) -> UInt64? {
    guard let slot = slots[directory], let listing = listings[slot],
      let position = position(of: PackedName(name), in: listing)
    else { return nil }
    return inode(of: listing.children[position])
  }

  /// The position of the name among the directory's known names (in byte order), if it is one.
  func position(of name: String, in directory: UInt64) -> Int? {
    guard let slot = slots[directory], let listing = listings[slot] else { return nil }
    return position(of: PackedName(name), in: listing)
  }

  /// The known name at `position` of the directory (in byte order), and its inode.
  func child(at position: Int, in directory: UInt64) -> (name: String, inode: UInt64)? {
    guard let slot = slots[directory], let listing = listings[slot], listing.children.indices.contains(position)
    else { return nil }
    let child = listing.children[position]
    return (records[child].name.string, inode(of: child))
  }

  /// The directory's known names and their inodes, in byte order; with `listedOnly`, only those its
  /// last full listing gave.
  func entries(of directory: UInt64, listedOnly: Bool = false) -> [(name: String, inode: UInt64)] {
    guard let slot = slots[directory], let listing = listings[slot] else { return [] }
    return listing.children.compactMap { child in
      let record = records[child]
      guard !listedOnly || record.flags.contains(.listed) else { return nil }
      return (record.name.string, inode(of: child))
    }
  }

  private func position(of name: PackedName, in listing: Listing) -> Int? {
    let index = lowerBound(name, in: listing.children)
    guard index < listing.children.count, PackedName.same(records[listing.children[index]].name, name)
    else { return nil }
    return index
  }

  /// Where `name` is, or would go, among `children` (sorted by name).
  private func lowerBound(_ name: PackedName, in children: [Int32]) -> Int {
    var low = 0
    var high = children.count
    while low < high {
      let middle = (low + high) / 2
      if PackedName.precedes(records[children[middle]].name, name) { low = middle + 1 } else { high = middle }
    }
    return low
  }

  /// The number an entry of `parent` has, or would have if it were looked up now (a collision found
  /// then could move it): for entries the kernel is given only by name.
  func number(in parent: UInt64, name: String, kind: NodeKind) -> UInt64 {
    let parentSlot = slots[parent]
    let seed = seedOf(parentSlot.map { records[$0].seed } ?? 0, name, kind)
    guard let parentSlot else { return StableInode.number(seed) }
    let found = existing(parent: parentSlot, name: PackedName(name), kind: kind, seed: seed) {
      Identity(parent: parent, name: ExactName(name), kind: kind)
    }
    return found.map { inode(of: $0) } ?? StableInode.number(seed)
  }

  /// The slot of the node for this path step, if the table holds one.
  private func existing(
    parent: Int32, name: PackedName, kind: NodeKind, seed: UInt64, identity: () -> Identity
  ) -> Int32? {
    if let slot = slots[StableInode.number(seed)] {
      let record = records[slot]
      if record.parent == parent, record.kind == Kind(kind), PackedName.same(record.name, name) {
        return slot
      }
    }
    guard !displaced.isEmpty, let number = displaced[identity()] else { return nil }
    return slots[number]
  }

  // MARK: Recording

  /// The slot for an entry of the directory in slot `parent`, made on first sight; a known one takes
  /// the entry's new content. `parentKey` is the parent's key, worked out once for a whole listing.
  private mutating func record(parent: Int32, parentKey: String, entry: NamespaceEntry) -> Int32 {
    let kind = entry.content.kind
    let name = PackedName(entry.name)
    let parentInode = inode(of: parent)
    let seed = seedOf(records[parent].seed, entry.name, kind)
    let identity = { Identity(parent: parentInode, name: ExactName(entry.name), kind: kind) }
    if let slot = existing(parent: parent, name: name, kind: kind, seed: seed, identity: identity) {
      let before = kind == .file ? fileVersion(slot) : nil
      store(entry, in: slot, parentKey: parentKey)
      if let before, before != fileVersion(slot) { changedFiles.append(inode(of: slot)) }
      return slot
    }
    var number = StableInode.number(seed)
    while slots[number] != nil { number = StableInode.number(number &+ 1) }
    let slot: Int32
    let record = Record(seed: seed, name: name, parent: parent, kind: Kind(kind))
    if let reused = freeSlots.popLast() {
      slot = reused
      records[slot] = record
    } else {
      slot = records.append(record)
    }
    slots[number] = slot
    store(entry, in: slot, parentKey: parentKey)
    records[parent].liveChildren += 1
    if number != StableInode.number(seed) {
      records[slot].flags.insert(.displaced)
      displacedInodes[slot] = number
      displaced[identity()] = number
    }
    return slot
  }

  /// What makes a file's content another version: its size and its source.
  private struct FileVersion: Equatable {
    var size: UInt64
    var client: UInt16
    var etagHigh: UInt64
    var etagLow: UInt64
    var flags: UInt8
    var key: String?
    var etag: String?
    var bytes: [UInt8]?
  }

  private func fileVersion(_ slot: Int32) -> FileVersion {
    let record = records[slot]
    let extra = extras[slot]
    return FileVersion(
      size: record.size, client: record.client, etagHigh: record.etagHigh, etagLow: record.etagLow,
      flags: record.flags.intersection([.md5, .bytes]).rawValue, key: extra?.key, etag: extra?.etag,
      bytes: extra?.bytes)
  }

  /// Gives the record in `slot` the entry's content, its lookups and place kept.
  private mutating func store(_ entry: NamespaceEntry, in slot: Int32, parentKey: String) {
    var record = records[slot]
    var extra = Extra()
    record.flags.subtract([.hasModified, .isImmutable, .md5, .bytes])
    record.etagHigh = 0
    record.etagLow = 0
    record.size = 0
    var modified = entry.modified
    switch entry.content {
    case .directory(let key):
      if !sameBytes(key, parentKey + entry.name + "/") { extra.key = key }
    case .symlink(let target):
      extra.target = target
    case .file(let file):
      modified = file.modified
      extra.storage = file.storage
      record.size = file.size ?? Self.unknownSize
      if file.isImmutable { record.flags.insert(.isImmutable) }
      switch file.source {
      case .object(let client, let key, let etag, let version):
        record.client = index(of: client)
        extra.version = version
        if !sameBytes(key, parentKey + entry.name) { extra.key = key }
        if case .md5(let high, let low) = CompactETag(etag) {
          record.flags.insert(.md5)
          record.etagHigh = high
          record.etagLow = low
        } else {
          extra.etag = etag
        }
      case .bytes(let bytes):
        record.flags.insert(.bytes)
        extra.bytes = bytes
      }
    }
    if let modified {
      record.flags.insert(.hasModified)
      record.seconds = modified.seconds
      record.nanoseconds = modified.nanoseconds
    }
    records[slot] = record
    extras[slot] = extra.isEmpty ? nil : extra
  }

  /// The index of a store in `clients`, added on first sight; stores are told apart by identity.
  private mutating func index(of client: any ObjectClient) -> UInt16 {
    if let found = clients.firstIndex(where: { $0.identity == client.identity }) { return UInt16(found) }
    clients.append(client)
    return UInt16(clients.count - 1)
  }

  /// Records a full listing of `directory`, trusted until `trustedUntil`.
  mutating func replaceListing(
    of directory: UInt64, with entries: [NamespaceEntry], trustedUntil: Double, isComplete: Bool,
    continuation: String? = nil
  ) {
    guard let slot = slots[directory], records[slot].kind == .directory else { return }
    let parentKey = key(of: slot)
    let previous = listings[slot]?.children ?? []
    for child in previous { records[child].flags.remove(.listed) }
    var children: [Int32] = []
    children.reserveCapacity(entries.count)
    for entry in entries {
      let child = record(parent: slot, parentKey: parentKey, entry: entry)
      records[child].flags.insert(.listed)
      children.append(child)
    }
    sortByName(&children)
    ticks += 1
    listings[slot] = Listing(
      children: children, trustedUntil: trustedUntil, isComplete: isComplete, lastUsed: ticks,
      continuation: continuation)
    // Names the directory no longer holds go once nothing holds them.
    for child in previous where records[child].kind != .free && !records[child].flags.contains(.listed) {
      dropIfUnused(child, now: nil)
    }
  }

  /// Sorts slots by their names, keeping one slot of each name (the last given, as a listing that
  /// named one twice would mean).
  private func sortByName(_ children: inout [Int32]) {
    let isSorted = zip(children, children.dropFirst()).allSatisfy {
      PackedName.precedes(records[$0].name, records[$1].name)
    }
    guard !isSorted else { return }
    let order = children.indices.sorted { a, b in
      let (x, y) = (records[children[a]].name, records[children[b]].name)
      return PackedName.precedes(x, y) || (!PackedName.precedes(y, x) && a < b)
    }
    var sorted: [Int32] = []
    sorted.reserveCapacity(children.count)
    for index in order {
      let child = children[index]
      if let last = sorted.last, PackedName.same(records[last].name, records[child].name) {
        sorted[sorted.count - 1] = child
      } else {
        sorted.append(child)
      }
    }
    children = sorted
  }

  /// Gives a file the content it has now that its size is known (`Namespace.size`), in place: not a
  /// change of the file, whose bytes the kernel never had by the size it held (0). False when the
  /// table no longer holds it as a file.
  mutating func sized(_ inode: UInt64, _ content: FileContent) -> Bool {
    guard let slot = slots[inode], records[slot].kind == .file else { return false }
    let record = records[slot]
    store(
      NamespaceEntry(name: record.name.string, content: .file(content)), in: slot, parentKey: key(of: record.parent))
    return true
  }

  /// Gives a file the storage its store now reports (a HEAD's, or a read's refusal): its content is
  /// the same. False when the table no longer holds it as a file.
  mutating func setStorage(_ inode: UInt64, _ storage: ObjectStorage?) -> Bool {
    guard let slot = slots[inode], records[slot].kind == .file else { return false }
    var extra = extras[slot] ?? Extra()
    extra.storage = storage
    extras[slot] = extra.isEmpty ? nil : extra
    return true
  }

  /// Records one entry found by a lookup, or that the name is gone (`entry` nil).
  mutating func recordLookup(in directory: UInt64, name: String, entry: NamespaceEntry?) -> UInt64? {
    guard let parent = slots[directory], records[parent].kind == .directory else { return nil }
    let packed = PackedName(name)
    guard let entry else {
      if let listing = listings[parent], let position = position(of: packed, in: listing) {
        let gone = listing.children[position]
        listings[parent]!.children.remove(at: position)
        dropIfUnused(gone, now: nil)
      }
      return nil
    }
    let child = record(parent: parent, parentKey: key(of: parent), entry: entry)
    ticks += 1
    var listing = listings.removeValue(forKey: parent) ?? Listing(lastUsed: ticks)
    let position = lowerBound(packed, in: listing.children)
    if position < listing.children.count, PackedName.same(records[listing.children[position]].name, packed) {
      if listing.children[position] != child {
        // Another kind under the same name: the listing now knows this one.
        records[child].flags.formUnion(records[listing.children[position]].flags.intersection(.listed))
        listing.children[position] = child
      }
    } else {
      listing.children.insert(child, at: position)
    }
    listings[parent] = listing
    return inode(of: child)
  }

  // MARK: What holds a node

  /// Marks the directory's listing as just used.
  mutating func touch(_ directory: UInt64) {
    guard let slot = slots[directory], listings[slot] != nil else { return }
    ticks += 1
    listings[slot]!.lastUsed = ticks
  }

  /// The kernel was given the inode `count` more times (a lookup's or a readdirplus entry's reply).
  mutating func reference(_ inode: UInt64, count: UInt64 = 1) -> Bool {
    guard let slot = slots[inode] else { return false }
    let total = UInt64(records[slot].lookups) + count
    if total >= UInt64(UInt32.max) { records[slot].flags.insert(.pinned) }
    records[slot].lookups = UInt32(min(total, UInt64(UInt32.max)))
    return true
  }

  /// The kernel forgot `count` of its references to the inode (FUSE's forget); at monotonic time
  /// `now`, by which a parent's listing is judged still trusted.
  mutating func forget(_ inode: UInt64, count: UInt64, now: Double) {
    guard inode != Self.rootInode, let slot = slots[inode], !records[slot].flags.contains(.pinned) else { return }
    records[slot].lookups -= UInt32(min(count, UInt64(records[slot].lookups)))
    if records[slot].lookups == 0 { releaseExpiredListing(of: slot, now: now) }
    dropIfUnused(slot, now: now)
  }

  /// A directory the kernel no longer holds, whose listing expired: the listing goes, with the
  /// children nothing else holds. The kernel is given files by name only (`DirectoryEntry.handsInode`),
  /// so no forget of theirs would ever let them go.
  private mutating func releaseExpiredListing(of directory: Int32, now: Double) {
    guard openDirectories[inode(of: directory)] == nil, let listing = listings[directory], !listing.children.isEmpty,
      !(listing.trustedUntil.map { now < $0 } ?? false)
    else { return }
    listings[directory] = nil
    for child in listing.children {
      let record = records[child]
      guard record.kind != .free, record.parent == directory, record.lookups == 0, record.liveChildren == 0 else {
        continue
      }
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
  private mutating func dropIfUnused(_ slot: Int32, now: Double?) {
    var next: Int32? = slot
    while let slot = next, slot != Self.rootSlot, records[slot].kind != .free {
      let record = records[slot]
      guard record.lookups == 0, record.liveChildren == 0, openDirectories[inode(of: record.parent)] == nil else {
        return
      }
      let position = listings[record.parent].flatMap { listing in
        self.position(of: record.name, in: listing).flatMap { listing.children[$0] == slot ? $0 : nil }
      }
      if position != nil, let until = listings[record.parent]!.trustedUntil, now.map({ $0 < until }) ?? true {
        return
      }
      let inode = inode(of: slot)
      if record.flags.contains(.displaced) {
        displacedInodes[slot] = nil
        displaced[
          Identity(
            parent: self.inode(of: record.parent), name: ExactName(record.name.string), kind: record.kind.nodeKind)] =
          nil
      }
      slots[inode] = nil
      listings[slot] = nil
      extras[slot] = nil
      records[slot] = .free
      freeSlots.append(slot)
      if let position {
        // The parent's listing no longer holds every name it had.
        listings[record.parent]!.children.remove(at: position)
        listings[record.parent]!.trustedUntil = nil
      }
      records[record.parent].liveChildren -= 1
      next = record.parent
    }
  }

  /// Past the capacity, drops the least recently used listings, down to nine tenths of it: their
  /// children nobody holds go, and the names of those the kernel holds are returned, for the kernel
  /// to be told to forget them (it then does, unless a process is using them).
  mutating func evict() -> [(parent: UInt64, name: String)] {
    guard slots.count > capacity else {
      evictedTo = 0
      return []
    }
    // While the kernel has yet to forget what it was asked to, the table stays above its capacity:
    // it is gone through again only once it grew by a twentieth more.
    guard slots.count >= evictedTo + capacity / 20 else { return [] }
    defer { evictedTo = slots.count }
    let target = capacity / 10 * 9
    var held: [(parent: UInt64, name: String)] = []
    let byAge = listings.filter { !$0.value.children.isEmpty && openDirectories[inode(of: $0.key)] == nil }
      .map { (slot: $0.key, lastUsed: $0.value.lastUsed) }.sorted { $0.lastUsed < $1.lastUsed }
    for (directory, _) in byAge where slots.count > target {
      guard let listing = listings[directory] else { continue }
      listings[directory] = nil
      let parent = inode(of: directory)
      for child in listing.children {
        let record = records[child]
        guard record.kind != .free, record.parent == directory else { continue }
        // Its parent's listing is gone: only the kernel and its own children hold it now.
        if record.lookups > 0 { held.append((parent, record.name.string)) } else { dropIfUnused(child, now: nil) }
      }
    }
    return held
  }
}

/// A table's records, numbered from 0 in the order they were added: in chunks of a fixed size, so
/// that growing never copies them (an array grows by copies, which leave the old copy's heap behind
/// in a process that keeps freed memory for reuse).
private struct Slots<Element> {
  private static var chunkSize: Int { 4096 }
  private var chunks: [[Element]] = []

  var count: Int { chunks.isEmpty ? 0 : (chunks.count - 1) * Self.chunkSize + chunks[chunks.count - 1].count }

  subscript(slot: Int32) -> Element {
    get { chunks[Int(slot) / Self.chunkSize][Int(slot) % Self.chunkSize] }
    _modify { yield &chunks[Int(slot) / Self.chunkSize][Int(slot) % Self.chunkSize] }
  }

  /// Adds the element in the next slot, and returns the slot.
  mutating func append(_ element: Element) -> Int32 {
    if chunks.isEmpty || chunks[chunks.count - 1].count == Self.chunkSize {
      chunks.append([])
      chunks[chunks.count - 1].reserveCapacity(Self.chunkSize)
    }
    let slot = Int32(count)
    chunks[chunks.count - 1].append(element)
    return slot
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

public import ObjectStore
import Synchronization
public import SystemBase

/// The tree of an object store's keys, split at "/": `org/pipeline/build/job.log` is that file.
/// Directory keys are prefixes ending in "/" (the root's is the mount's prefix, possibly empty).
///
/// A remote store's directories are listed a subtree at a time where that is cheaper: see
/// `SubtreeListings`.
public struct ArchiveNamespace: Namespace {
  public let client: any ObjectClient
  public let rootKey: String
  /// What pages of keys listed ahead taught: whole listings of directories, and runs of keys of
  /// the rest; nil for a local store, where listing costs little.
  private let subtrees: SubtreeListings?
  private let runs: KeyRuns?
  /// Pages of keys (up to 1,000 each) a directory is listed in at once; a bigger one is listed that
  /// far, then streamed page by page as it is read (`listPage`).
  public let pagesBeforeStreaming: Int
  /// Lists the key space of a directory being walked ahead of the walk, in ranges at once (nil:
  /// one page after another).
  private var listingAhead: ListingAhead?
  /// Whether the first lookup in an unlisted directory of a name in Buildkite's layout is decided
  /// without listing it (`lookupByUUID`).
  public let looksUpUUIDs: Bool

  public var clients: [any ObjectClient] { [client] }

  /// `rootPrefix` is empty or ends in "/". Listings learned ahead of time from a subtree listing are
  /// used for at most `listingFreshness` seconds (the directory TTL) on `clock`; 0 turns subtree
  /// listing off. A walk lists up to `listingConcurrency` key ranges at once (`ListingAhead`); 1 lists
  /// one page after another.
  public init(
    client: any ObjectClient, rootPrefix: String, listingFreshness: Double = 60, pagesBeforeStreaming: Int = 5,
    listingConcurrency: Int = 1, looksUpUUIDs: Bool = true, clock: any MonotonicClock = SystemClock()
  ) {
    self.looksUpUUIDs = looksUpUUIDs
    self.pagesBeforeStreaming = max(1, pagesBeforeStreaming)
    self.client = client
    self.rootKey = rootPrefix
    let ahead = client.isRemote && listingFreshness > 0
    self.subtrees = ahead ? SubtreeListings(freshness: listingFreshness, clock: clock) : nil
    self.runs = ahead ? KeyRuns(freshness: listingFreshness, clock: clock) : nil
    self.listingAhead = nil
    if ahead && listingConcurrency > 1 {
      // The ranges are listed by this namespace as it is now, sharing what it learns.
      let lister = self
      listingAhead = ListingAhead(concurrency: listingConcurrency, freshness: listingFreshness, clock: clock) {
        parent, range, pages in try lister.listRange(range, in: parent, pages: pages)
      }
    }
  }

  public func list(directory key: String) throws(FilesystemError) -> NamespaceListing {
    if let subtrees, let runs, key != rootKey {
      if let listingAhead, let parent = parentKey(of: key) {
        listingAhead.reach(String(decoding: key.utf8.dropLast(), as: UTF8.self), in: parent)
      }
      if let listing = subtrees.take(key) { return listing }
      if let listing = try listSubtree(from: key, subtrees, runs) { return listing }
    }
    return try listByDelimiter(key, from: nil, pages: pagesBeforeStreaming)
  }

  public func listPage(directory key: String, continuation: String) throws(FilesystemError) -> NamespaceListing {
    try listByDelimiter(key, from: continuation, pages: 1)
  }

  /// Up to `pages` pages of the directory's entries by delimiter, from a continuation this namespace
  /// gave (nil: from the start): an S3 continuation token ("token:"), or a key to start after
  /// ("after:", where a subtree listing stopped). What is left is the listing's continuation.
  private func listByDelimiter(_ key: String, from continuation: String?, pages: Int) throws(FilesystemError)
    -> NamespaceListing
  {
    var request = ListRequest(prefix: key, delimiter: "/")
    if let continuation {
      if continuation.hasPrefix("token:") {
        request.continuationToken = String(continuation.dropFirst("token:".count))
      } else if continuation.hasPrefix("after:") {
        request.startAfter = String(continuation.dropFirst("after:".count))
      }
    }
    var all = ListPage(objects: [], commonPrefixes: [], nextContinuationToken: nil)
    for _ in 0..<pages {
      let page = try listPage(request, "listing", key)
      all.objects += page.objects
      all.commonPrefixes += page.commonPrefixes
      all.undecodableKeys += page.undecodableKeys
      guard let token = page.nextContinuationToken else {
        // The directory's last subdirectory: a walk through it lists no range past it (`ListingAhead`).
        if let last = all.commonPrefixes.last {
          listingAhead?.noteLast(String(decoding: last.utf8.dropFirst(key.utf8.count), as: UTF8.self), in: key)
        }
        return entries(of: all, in: key)
      }
      request = ListRequest(prefix: key, delimiter: "/", continuationToken: token)
    }
    var listing = entries(of: all, in: key)
    listing.isComplete = false
    listing.continuation = "token:" + (request.continuationToken ?? "")
    return listing
  }

  public func knownListing(directory key: String) -> NamespaceListing? {
    key == rootKey ? nil : subtrees?.take(key)
  }

  public func directory(after key: String) -> String? {
    guard let parent = parentKey(of: key), let next = runs?.entry(in: parent, after: key) else { return nil }
    let name = next.utf8.dropFirst(parent.utf8.count)
    guard let slash = name.firstIndex(of: UInt8(ascii: "/")) else { return nil }
    return String(decoding: name[..<slash], as: UTF8.self)
  }

  /// One page of a listing; a failure says what was being done (`doing` the key), for the log.
  private func listPage(_ request: ListRequest, _ doing: String, _ key: String) throws(FilesystemError) -> ListPage {
    do throws(ObjectStoreError) {
      return try client.listPage(request)
    } catch {
      throw FilesystemError(error, context: "\(doing) \(client.identity)/\(key)")
    }
  }

  /// The first lookup in a directory lists only the keys that start with the name
  /// (`prefix=dir/name`), stopping once past `dir/name/`: one request, whatever the size of the
  /// directory. A directory whose names are looked up one after another is read a page of keys at a
  /// time from the name on (`KeyRuns`), and the names a page covered cost nothing more.
  public func lookup(directory key: String, name: String) throws(FilesystemError) -> NamespaceEntry? {
    if let listing = subtrees?.peek(key) { return listing.entries.first { sameBytes($0.name, name) } }
    if let listingAhead, !name.isEmpty, let found = listingAhead.reach(key + name, in: key) {
      let page: ListPage
      switch found.entry(key + name) {
      case .directory: page = ListPage(objects: [], commonPrefixes: [key + name + "/"], nextContinuationToken: nil)
      case .file(let object): page = ListPage(objects: [object], commonPrefixes: [], nextContinuationToken: nil)
      case .missing: return nil
      }
      return entries(of: page, in: key).entries.first { sameBytes($0.name, name) }
    }
    if let subtrees, let runs, !name.isEmpty {
      var known = runs.answer(directory: key, name: name)
      if known == nil {
        if runs.noteLookup(in: key) {
          known = try lookupByPage(directory: key, name: name, subtrees, runs)
        } else if looksUpUUIDs, case .decided(let entry) = try lookupByUUID(directory: key, name: name) {
          return entry
        }
      }
      if let known { return entries(of: known, in: key).entries.first { sameBytes($0.name, name) } }
    }
    return try lookupByPrefix(directory: key, name: name)
  }

  /// The first lookup in a directory (a path pasted or typed, not a walk) of a name in Buildkite's
  /// layout, answered without listing: a UUID is taken as a directory (an organization, pipeline or
  /// build) with no request, and `{UUID}.log` as a job's log, learned with one HEAD. A HEAD rather
  /// than a GET of its end: on a mount whose disk cache holds the log, its blocks are then read from
  /// the cache (by the ETag the HEAD gives) with no GET. `.notDecided` for any other name.
  ///
  /// A mistyped directory then shows as an empty directory; a mistyped log is not found (ENOENT).
  private func lookupByUUID(directory key: String, name: String) throws(FilesystemError) -> UUIDLookup {
    switch PackedName(name) {
    case .text:
      return .notDecided
    case .uuid:
      return .decided(NamespaceEntry(name: name, content: .directory(key: key + name + "/")))
    case .uuidLog:
      let objectKey = key + name
      let info: ObjectInfo
      do throws(ObjectStoreError) {
        info = try client.head(key: objectKey)
      } catch  where error.kind == .notFound {
        return .decided(nil)
      } catch {
        throw FilesystemError(error, context: "looking up \(client.identity)/\(objectKey)")
      }
      let page = ListPage(objects: [info], commonPrefixes: [], nextContinuationToken: nil)
      guard let entry = entries(of: page, in: key).entries.first(where: { sameBytes($0.name, name) }) else {
        return .decided(nil)
      }
      return .decided(entry)
    }
  }

  private enum UUIDLookup {
    /// The name is not one of Buildkite's layout: a listing decides it.
    case notDecided
    /// The entry (nil: no such name), decided without a listing.
    case decided(NamespaceEntry?)
  }

  /// Decides `name` from one page of the directory's keys from the name on, or from where the run
  /// the name follows ends; nil when the page ended too soon to decide it.
  private func lookupByPage(
    directory key: String, name: String, _ subtrees: SubtreeListings, _ runs: KeyRuns
  ) throws(FilesystemError) -> ListPage? {
    let start = runs.pageStart(directory: key, name: name)
    let page = try listPage(ListRequest(prefix: key, delimiter: nil, startAfter: start), "looking up", key + name)
    let through = page.nextContinuationToken == nil ? nil : page.objects.last?.key
    guard page.nextContinuationToken == nil || through != nil else { return nil }
    runs.record(directory: key, after: start, through: through, objects: page.objects)
    _ = learn(from: page, under: key, after: start, through: through, keeping: nil, subtrees, runs)
    return runs.answer(directory: key, name: name)
  }

  private func lookupByPrefix(directory key: String, name: String) throws(FilesystemError) -> NamespaceEntry? {
    let target = key + name
    let asDirectory = target + "/"
    var request = ListRequest(prefix: target, delimiter: "/")
    var found = ListPage(objects: [], commonPrefixes: [], nextContinuationToken: nil)
    while true {
      let page = try listPage(request, "looking up", target)
      found.objects += page.objects.filter { sameBytes($0.key, target) }
      found.commonPrefixes += page.commonPrefixes.filter { sameBytes($0, asDirectory) }
      let last = [page.objects.last?.key, page.commonPrefixes.last].compactMap { $0 }.max(by: utf8Less)
      // Keys come in byte order: once past "name/", nothing later can match.
      guard let token = page.nextContinuationToken, let last, !utf8Less(asDirectory, last) else { break }
      request.continuationToken = token
    }
    return entries(of: found, in: key).entries.first { sameBytes($0.name, name) }
  }

  /// The entries a listing of `directory` shows: directories win over files of the same name,
  /// and keys that cannot be file names are left out.
  func entries(of page: ListPage, in directory: String) -> NamespaceListing {
    let base = directory.utf8.count
    var entries: [NamespaceEntry] = []
    var names = Set<ExactName>()
    var leftOut: [(source: String, reason: String)] = page.undecodableKeys.map {
      ("\($0) (percent-encoded as listed)", "its key is not UTF-8")
    }
    for prefix in page.commonPrefixes {
      let name = String(decoding: prefix.utf8.dropFirst(base).dropLast(), as: UTF8.self)
      if let problem = nameProblem(name) {
        leftOut.append((prefix, problem))
        continue
      }
      names.insert(ExactName(name))
      entries.append(NamespaceEntry(name: name, content: .directory(key: prefix)))
    }
    for object in page.objects {
      let name = String(decoding: object.key.utf8.dropFirst(base), as: UTF8.self)
      // A zero-byte "directory marker" named like the directory itself.
      if name.isEmpty && object.key.hasSuffix("/") { continue }
      if let problem = nameProblem(name) {
        leftOut.append((object.key, problem))
        continue
      }
      guard !names.contains(ExactName(name)) else {
        leftOut.append((object.key, "a directory of the same name hides it"))
        continue
      }
      let content = FileContent(
        size: object.size, modified: object.lastModified, isImmutable: true,
        source: .object(client: client, key: object.key, etag: object.etag, version: object.versionID),
        storage: object.storage)
      entries.append(NamespaceEntry(name: name, content: .file(content)))
    }
    return NamespaceListing(entries: entries, leftOut: leftOut)
  }

  /// Lists the keys from directory `key` on, across its later siblings, without a delimiter, in
  /// pages of up to 1,000 keys. Every directory the pages cover to its end (the directory itself,
  /// and those after it that a walk such as `find` or `grep -r` enters next) is known whole from
  /// them. A directory of files only is paged to its end (as many pages as a delimiter listing);
  /// one with subdirectories is given one page. Returns the directory's listing when the pages
  /// covered all of it, else nil (the caller lists it by delimiter); the other directories covered
  /// are kept for later calls.
  private func listSubtree(
    from key: String, _ subtrees: SubtreeListings, _ runs: KeyRuns
  ) throws(FilesystemError) -> NamespaceListing? {
    guard let parent = parentKey(of: key) else { return nil }
    // Where an earlier page stopped inside this directory, go on from there with what it had.
    let resumed = runs.start(of: key)
    var request = ListRequest(prefix: parent, delimiter: nil, startAfter: resumed?.through ?? key)
    var page = ListPage(objects: resumed?.objects ?? [], commonPrefixes: [], nextContinuationToken: nil)
    var pages = 0
    while true {
      let next = try listPage(request, "listing", key)
      page.objects += next.objects
      page.undecodableKeys += next.undecodableKeys
      page.nextContinuationToken = next.nextContinuationToken
      guard let token = next.nextContinuationToken, let last = page.objects.last?.key,
        last.utf8.starts(with: key.utf8)
      else { break }
      // Still inside the directory. While it holds only files, the next page costs what a
      // delimiter listing's would; once it has subdirectories, their subtrees could be large.
      let inside = last.utf8.dropFirst(key.utf8.count)
      if inside.contains(UInt8(ascii: "/")) { break }
      pages += 1
      if pages >= pagesBeforeStreaming {
        // A big directory of files: what came so far, and the rest as it is read.
        var listing = entries(of: page, in: key)
        listing.isComplete = false
        listing.continuation = "after:" + last
        return listing
      }
      request = ListRequest(prefix: parent, delimiter: nil, continuationToken: token)
    }
    let through = page.nextContinuationToken == nil ? nil : page.objects.last?.key
    guard page.nextContinuationToken == nil || through != nil else { return nil }
    // The walk looks up the parent's next names before it lists them: the same keys answer those.
    let listedAfter = resumed?.through ?? key
    let fresh = Array(page.objects.drop { !utf8Less(listedAfter, $0.key) })
    runs.record(directory: parent, after: listedAfter, through: through, objects: fresh)
    let found = learn(from: page, under: parent, after: key, through: through, keeping: key, subtrees, runs)
    if found != nil, let through, let listingAhead {
      // The walk's directories are smaller than a page: list the ones after them ahead, in ranges.
      listingAhead.start(parent: parent, through: through, names: directoryNames(fresh, in: parent), keys: fresh.count)
    }
    return found
  }

  /// Lists one range of a walk's keys (`ListingAhead`), up to `pages` pages, learning the directories
  /// it holds as a page of a subtree listing does.
  func listRange(_ range: ListingAhead.Range, in parent: String, pages: Int) throws(FilesystemError)
    -> ListingAhead.Outcome
  {
    guard let subtrees, let runs else { throw FilesystemError(.local, "no walk ahead in a local store") }
    var request = ListRequest(prefix: parent, delimiter: nil, startAfter: range.after)
    var after = range.after
    var outcome = ListingAhead.Outcome(keys: 0, found: ListingAhead.Found(), reachedEnd: false, stoppedAfter: nil)
    var finished = false
    for _ in 0..<pages {
      let listed = try listPage(request, "listing ahead", parent)
      var page = listed
      var passed = false
      if let end = range.end, let cut = page.objects.firstIndex(where: { utf8Less(end, $0.key) }) {
        page.objects.removeSubrange(cut...)
        passed = true
      }
      let last = listed.nextContinuationToken == nil && !passed
      let through = passed ? range.end : (last ? nil : page.objects.last?.key)
      // A page that ends early without a key to go on from: what the walk lists itself.
      guard passed || last || through != nil else { throw FilesystemError(.malformed, "an empty page of \(parent)") }
      _ = learn(from: page, under: parent, after: after, through: through, keeping: nil, subtrees, runs)
      outcome.keys += page.objects.count
      outcome.found.directories += directoryNames(page.objects, in: parent).map { parent + $0 }.filter { name in
        !(outcome.found.directories.last.map { sameBytes($0, name) } ?? false)
      }
      outcome.found.files += page.objects.filter {
        !$0.key.utf8.dropFirst(parent.utf8.count).contains(UInt8(ascii: "/"))
      }
      if passed || last {
        outcome.reachedEnd = last
        outcome.found.end = through
        finished = true
        break
      }
      after = through!
      request = ListRequest(prefix: parent, delimiter: nil, continuationToken: listed.nextContinuationToken)
    }
    if !finished {
      outcome.stoppedAfter = after
      outcome.found.end = after
    }
    // Names in byte order ("a-b" sorts before "a", whose keys "a/…" come first).
    outcome.found.directories.sort(by: utf8Less)
    return outcome
  }

  /// The names of the subdirectories of `parent` the keys (in byte order) are in, in order.
  private func directoryNames(_ objects: some Sequence<ObjectInfo>, in parent: String) -> [String] {
    var names: [String] = []
    let skip = parent.utf8.count
    for object in objects {
      let inside = object.key.utf8.dropFirst(skip)
      guard let slash = inside.firstIndex(of: UInt8(ascii: "/")) else { continue }
      let name = String(decoding: inside[..<slash], as: UTF8.self)
      if !(names.last.map { sameBytes($0, name) } ?? false) { names.append(name) }
    }
    return names
  }

  /// What a page of keys below `parent` without delimiter says of the directories it holds, the
  /// page holding every key above `after` and at most `through` (nil: to the end): the listing of
  /// each directory it holds whole is kept (that of `keeping` returned instead), and the keys of
  /// each it holds in part kept as a run, which a later page may complete.
  private func learn(
    from page: ListPage, under parent: String, after start: String, through: String?, keeping wanted: String?,
    _ subtrees: SubtreeListings, _ runs: KeyRuns
  ) -> NamespaceListing? {
    var (pages, order, _) = directoryPages(of: page.objects, below: parent)
    // A key that is not UTF-8 is logged with the listing of its directory (S3 leaves "/" unescaped).
    for encoded in page.undecodableKeys {
      let bytes = Array(encoded.utf8)
      guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { continue }
      let directory = ExactName(String(decoding: bytes[...slash], as: UTF8.self))
      pages[directory]?.undecodableKeys.append(encoded)
    }
    var found: NamespaceListing?
    var learned: [(String, NamespaceListing)] = []
    func takeIfWhole(_ directory: String) {
      guard let all = runs.whole(directory) else { return }
      var page = directoryPages(of: all.objects, below: directory).listing
      page.undecodableKeys = all.undecodable
      let listing = entries(of: page, in: directory)
      if let wanted, sameBytes(directory, wanted) { found = listing } else { learned.append((directory, listing)) }
    }
    for directory in order {
      // Keys come in byte order: a directory is held from its start unless the page began inside
      // it, and to its end unless the page stopped inside it.
      let fromStart = !hasBytePrefix(start, directory) || start.utf8.count == directory.utf8.count
      let toEnd = through.map { !hasBytePrefix($0, directory) } ?? true
      if fromStart && toEnd {
        let listing = entries(of: pages[ExactName(directory)]!, in: directory)
        if let wanted, sameBytes(directory, wanted) { found = listing } else { learned.append((directory, listing)) }
        continue
      }
      let objects = page.objects.filter { hasBytePrefix($0.key, directory) }
      runs.record(
        directory: directory, after: fromStart ? directory : start, through: toEnd ? nil : through, objects: objects,
        undecodable: pages[ExactName(directory)]!.undecodableKeys)
      // A page that goes on where an earlier one stopped may complete a directory.
      takeIfWhole(directory)
    }
    // A page that goes on from a directory's last key holds none of its keys, yet says it ended.
    var ancestor = start.utf8.index(start.utf8.startIndex, offsetBy: parent.utf8.count, limitedBy: start.utf8.endIndex)
    while let from = ancestor, let slash = start.utf8[from...].firstIndex(of: UInt8(ascii: "/")) {
      ancestor = start.utf8.index(after: slash)
      let directory = String(decoding: start.utf8[...slash], as: UTF8.self)
      guard pages[ExactName(directory)] == nil, through.map({ !hasBytePrefix($0, directory) }) ?? true,
        !sameBytes(directory, start)
      else { continue }
      runs.record(directory: directory, after: start, through: nil, objects: [])
      takeIfWhole(directory)
    }
    subtrees.store(learned)
    return found
  }

  /// The keys of a page split by the directory below `parent` that holds them: for each, the
  /// objects directly in it and its subdirectories, as a delimiter listing would show them; with the
  /// directories in the order they came, and the listing of `parent` itself.
  private func directoryPages(
    of objects: [ObjectInfo], below parent: String
  ) -> (pages: [ExactName: ListPage], order: [String], listing: ListPage) {
    var pages: [ExactName: ListPage] = [:]
    var order: [String] = []
    var listing = ListPage(objects: [], commonPrefixes: [], nextContinuationToken: nil)
    let parentLength = parent.utf8.count
    for object in objects {
      // Each directory between the parent and the object holds the next directory down, or the object.
      let bytes = Array(object.key.utf8)
      let slashes = bytes.indices.filter { $0 >= parentLength && bytes[$0] == UInt8(ascii: "/") }
      if let first = slashes.first {
        let child = String(decoding: bytes[...first], as: UTF8.self)
        if !(listing.commonPrefixes.last.map { sameBytes($0, child) } ?? false) { listing.commonPrefixes.append(child) }
      } else {
        listing.objects.append(object)
      }
      for (level, slash) in slashes.enumerated() {
        let directory = String(decoding: bytes[...slash], as: UTF8.self)
        let name = ExactName(directory)
        if pages[name] == nil {
          pages[name] = ListPage(objects: [], commonPrefixes: [], nextContinuationToken: nil)
          order.append(directory)
        }
        if level + 1 < slashes.count {
          let child = String(decoding: bytes[...slashes[level + 1]], as: UTF8.self)
          if !(pages[name]!.commonPrefixes.last.map { sameBytes($0, child) } ?? false) {
            pages[name]!.commonPrefixes.append(child)
          }
        } else {
          pages[name]!.objects.append(object)
        }
      }
    }
    return (pages, order, listing)
  }
}

/// The key of the directory holding directory `key` ("a/b/" is in "a/"), or nil for a top-level key.
private func parentKey(of key: String) -> String? {
  let bytes = key.utf8.dropLast()
  guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return "" }
  return String(key.utf8[key.utf8.startIndex...slash])
}

/// Directory listings learned from subtree listings before anyone asked for them, kept until a
/// directory is opened (each is handed out once: the filesystem then trusts it for its TTL) or
/// until they are `freshness` seconds old.
///
/// A walk of a big tree (`find`, `du`, `grep -r`, `rsync`) opens directories in name order, which
/// is the order of their keys: one delimiter-less page of 1,000 keys lists every directory it
/// covers, so the walk costs about one request per 1,000 keys rather than one per directory,
/// as goofys does it.
final class SubtreeListings: Sendable {
  private struct Learned {
    var listing: NamespaceListing
    var learnedAt: Double
  }

  let freshness: Double
  /// The most entries kept, in all listings; a walk consumes them about as fast as pages arrive.
  let capacity: Int
  private let learned = Mutex<(listings: [ExactName: Learned], entries: Int)>(([:], 0))

  let clock: any MonotonicClock

  init(freshness: Double, capacity: Int = 100_000, clock: any MonotonicClock) {
    self.freshness = freshness
    self.capacity = capacity
    self.clock = clock
  }

  func store(_ listings: [(String, NamespaceListing)]) {
    guard !listings.isEmpty else { return }
    let now = clock.now()
    let adding = listings.reduce(0) { $0 + $1.1.entries.count }
    learned.withLock { learned in
      if learned.entries + adding > capacity {
        learned.listings = learned.listings.filter { now - $0.value.learnedAt < freshness }
        learned.entries = learned.listings.values.reduce(0) { $0 + $1.listing.entries.count }
        if learned.entries + adding > capacity { learned = ([:], 0) }
      }
      for (key, listing) in listings {
        let previous = learned.listings.updateValue(Learned(listing: listing, learnedAt: now), forKey: ExactName(key))
        learned.entries += listing.entries.count - (previous?.listing.entries.count ?? 0)
      }
    }
  }

  /// The listing of `key` if one was learned recently, handed out once.
  func take(_ key: String) -> NamespaceListing? {
    let now = clock.now()
    return learned.withLock { learned in
      guard let found = learned.listings.removeValue(forKey: ExactName(key)) else { return nil }
      learned.entries -= found.listing.entries.count
      guard now - found.learnedAt < freshness else { return nil }
      return found.listing
    }
  }

  /// The listing of `key` if one was learned recently, kept for a later `take`.
  func peek(_ key: String) -> NamespaceListing? {
    let now = clock.now()
    return learned.withLock { learned in
      guard let found = learned.listings[ExactName(key)], now - found.learnedAt < freshness else { return nil }
      return found.listing
    }
  }
}

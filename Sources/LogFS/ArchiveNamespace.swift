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
  private let subtrees: SubtreeListings?

  public var clients: [any ObjectClient] { [client] }

  /// `rootPrefix` is empty or ends in "/". Listings learned ahead of time from a subtree listing are
  /// used for at most `listingFreshness` seconds (the directory TTL) on `clock`; 0 turns subtree
  /// listing off.
  public init(
    client: any ObjectClient, rootPrefix: String, listingFreshness: Double = 60,
    clock: any MonotonicClock = SystemClock()
  ) {
    self.client = client
    self.rootKey = rootPrefix
    self.subtrees =
      client.isRemote && listingFreshness > 0 ? SubtreeListings(freshness: listingFreshness, clock: clock) : nil
  }

  public func list(directory key: String) throws(FilesystemError) -> NamespaceListing {
    if let subtrees, key != rootKey {
      if let listing = subtrees.take(key) { return listing }
      if let listing = try listSubtree(from: key, subtrees) { return listing }
    }
    let page: ListPage
    do throws(ObjectStoreError) {
      page = try client.listAll(prefix: key, delimiter: "/")
    } catch {
      throw FilesystemError(error, context: "listing \(client.identity)/\(key)")
    }
    return entries(of: page, in: key)
  }

  /// Lists only the keys that start with the name (`prefix=dir/name`), stopping once past
  /// `dir/name/`: one request, whatever the size of the directory.
  public func lookup(directory key: String, name: String) throws(FilesystemError) -> NamespaceEntry? {
    if let listing = subtrees?.peek(key) { return listing.entries.first { sameBytes($0.name, name) } }
    let target = key + name
    let asDirectory = target + "/"
    var request = ListRequest(prefix: target, delimiter: "/")
    var found = ListPage(objects: [], commonPrefixes: [], nextContinuationToken: nil)
    while true {
      let page: ListPage
      do throws(ObjectStoreError) {
        page = try client.listPage(request)
      } catch {
        throw FilesystemError(error, context: "looking up \(client.identity)/\(target)")
      }
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
        source: .object(client: client, key: object.key, etag: object.etag))
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
  private func listSubtree(from key: String, _ subtrees: SubtreeListings) throws(FilesystemError) -> NamespaceListing? {
    guard let parent = parentKey(of: key) else { return nil }
    // Where an earlier page stopped inside this directory, go on from there with what it had.
    let resumed = subtrees.frontier(inside: key)
    var request = ListRequest(prefix: parent, delimiter: nil, startAfter: resumed?.lastKey ?? key)
    var page = ListPage(objects: resumed?.objects ?? [], commonPrefixes: [], nextContinuationToken: nil)
    while true {
      let next: ListPage
      do throws(ObjectStoreError) {
        next = try client.listPage(request)
      } catch {
        throw FilesystemError(error, context: "listing \(client.identity)/\(key)")
      }
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
      request = ListRequest(prefix: parent, delimiter: nil, continuationToken: token)
    }
    var pages: [ExactName: ListPage] = [:]
    var order: [String] = []
    let parentLength = parent.utf8.count
    for object in page.objects {
      // Each directory between the parent and the object holds the next directory down, or the object.
      let bytes = Array(object.key.utf8)
      let slashes = bytes.indices.filter { $0 >= parentLength && bytes[$0] == UInt8(ascii: "/") }
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
    // A key that is not UTF-8 is logged with the listing of its directory (S3 leaves "/" unescaped).
    for encoded in page.undecodableKeys {
      let bytes = Array(encoded.utf8)
      guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { continue }
      let directory = ExactName(String(decoding: bytes[...slash], as: UTF8.self))
      pages[directory]?.undecodableKeys.append(encoded)
    }
    // Keys come in byte order, so a directory is whole unless the page stopped inside it.
    let lastKey = page.objects.last?.key
    func isWhole(_ directory: String) -> Bool {
      page.nextContinuationToken == nil || !(lastKey?.utf8.starts(with: directory.utf8) ?? false)
    }
    var found: NamespaceListing?
    var learned: [(String, NamespaceListing)] = []
    for directory in order where isWhole(directory) {
      let listing = entries(of: pages[ExactName(directory)]!, in: directory)
      if sameBytes(directory, key) { found = listing } else { learned.append((directory, listing)) }
    }
    subtrees.store(learned)
    // The directories the page stopped inside (all begin within it): their keys so far, so that
    // opening one goes on from the last key rather than listing its start again.
    if page.nextContinuationToken != nil, let lastKey {
      let cut = order.filter { lastKey.utf8.starts(with: $0.utf8) }
      if let outermost = cut.first {
        let objects = page.objects.filter { $0.key.utf8.starts(with: outermost.utf8) }
        subtrees.storeFrontier(Frontier(lastKey: lastKey, directories: cut, objects: objects))
      }
    }
    return found
  }
}

/// The key of the directory holding directory `key` ("a/b/" is in "a/"), or nil for a top-level key.
private func parentKey(of key: String) -> String? {
  let bytes = key.utf8.dropLast()
  guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return "" }
  return String(key.utf8[key.utf8.startIndex...slash])
}

/// Where a subtree page stopped: its last key, the directories it stopped inside (outermost
/// first), and the objects it had of the outermost (so of all of them).
struct Frontier: Sendable {
  var lastKey: String
  var directories: [String]
  var objects: [ObjectInfo]
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
  /// The most listings kept; a walk consumes them about as fast as pages arrive.
  let capacity = 100_000
  private let learned = Mutex<[ExactName: Learned]>([:])

  let clock: any MonotonicClock

  init(freshness: Double, clock: any MonotonicClock) {
    self.freshness = freshness
    self.clock = clock
  }

  func store(_ listings: [(String, NamespaceListing)]) {
    guard !listings.isEmpty else { return }
    let now = clock.now()
    learned.withLock { learned in
      if learned.count + listings.count > capacity {
        learned = learned.filter { now - $0.value.learnedAt < freshness }
        if learned.count + listings.count > capacity { learned.removeAll() }
      }
      for (key, listing) in listings { learned[ExactName(key)] = Learned(listing: listing, learnedAt: now) }
    }
  }

  /// The listing of `key` if one was learned recently, handed out once.
  func take(_ key: String) -> NamespaceListing? {
    let now = clock.now()
    return learned.withLock { learned in
      guard let found = learned.removeValue(forKey: ExactName(key)), now - found.learnedAt < freshness else {
        return nil
      }
      return found.listing
    }
  }

  /// The listing of `key` if one was learned recently, kept for a later `take`.
  func peek(_ key: String) -> NamespaceListing? {
    let now = clock.now()
    return learned.withLock { learned in
      guard let found = learned[ExactName(key)], now - found.learnedAt < freshness else { return nil }
      return found.listing
    }
  }

  private let frontiers = Mutex<[(frontier: Frontier, at: Double)]>([])

  func storeFrontier(_ frontier: Frontier) {
    let now = clock.now()
    frontiers.withLock { frontiers in
      frontiers.removeAll { now - $0.at >= freshness }
      frontiers.append((frontier, now))
      if frontiers.count > 64 { frontiers.removeFirst(frontiers.count - 64) }
    }
  }

  /// Where the latest recent page stopped inside directory `key`, and the objects it had of it.
  func frontier(inside key: String) -> (lastKey: String, objects: [ObjectInfo])? {
    let now = clock.now()
    return frontiers.withLock { frontiers in
      guard
        let found = frontiers.last(where: {
          now - $0.at < freshness && $0.frontier.directories.contains { sameBytes($0, key) }
        })
      else { return nil }
      return (found.frontier.lastKey, found.frontier.objects.filter { $0.key.utf8.starts(with: key.utf8) })
    }
  }
}

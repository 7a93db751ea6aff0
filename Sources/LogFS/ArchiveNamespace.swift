public import ObjectStore

/// The tree of an object store's keys, split at "/": `org/pipeline/build/job.log` is that file.
/// Directory keys are prefixes ending in "/" (the root's is the mount's prefix, possibly empty).
public struct ArchiveNamespace: Namespace {
  public let client: any ObjectClient
  public let rootKey: String

  public var clients: [any ObjectClient] { [client] }

  /// `rootPrefix` is empty or ends in "/".
  public init(client: any ObjectClient, rootPrefix: String) {
    self.client = client
    self.rootKey = rootPrefix
  }

  public func list(directory key: String) throws(FilesystemError) -> NamespaceListing {
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
      found.objects += page.objects.filter { $0.key == target }
      found.commonPrefixes += page.commonPrefixes.filter { $0 == asDirectory }
      let last = [page.objects.last?.key, page.commonPrefixes.last].compactMap { $0 }.max(by: utf8Less)
      // Keys come in byte order: once past "name/", nothing later can match.
      guard let token = page.nextContinuationToken, let last, !utf8Less(asDirectory, last) else { break }
      request.continuationToken = token
    }
    return entries(of: found, in: key).entries.first { $0.name == name }
  }

  /// The entries a listing of `directory` shows: directories win over files of the same name,
  /// and keys that cannot be file names are left out.
  func entries(of page: ListPage, in directory: String) -> NamespaceListing {
    let base = directory.utf8.count
    var entries: [NamespaceEntry] = []
    var names = Set<String>()
    var leftOut: [(source: String, reason: String)] = []
    for prefix in page.commonPrefixes {
      let name = String(decoding: prefix.utf8.dropFirst(base).dropLast(), as: UTF8.self)
      if let problem = nameProblem(name) {
        leftOut.append((prefix, problem))
        continue
      }
      names.insert(name)
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
      guard !names.contains(name) else {
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
}

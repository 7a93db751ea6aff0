import SystemBase

/// A versioned store as it was at a moment (`bklogfs mount --as-of`): each key shows the newest of
/// its versions written at or before `time`, unless that is a delete marker (the object was
/// deleted by then); a key whose versions all came later does not show. Reads name the version, so
/// a log overwritten since shows its old bytes.
///
/// Listings are ListObjectVersions pages turned into ListObjectsV2 pages: a page of versions that
/// ends inside a key's versions goes on from there, remembering (in the continuation token) whether
/// that key was already decided. Common prefixes are passed on as they are: a directory whose every
/// object came after `time` shows, empty.
public final class AsOfObjectClient: ObjectClient {
  public let inner: any VersionedObjectClient
  public let time: Timestamp

  public init(_ inner: any VersionedObjectClient, time: Timestamp) {
    self.inner = inner
    self.time = time
  }

  /// The bucket's: blocks are keyed by ETag, which names the bytes, so a current mount and this
  /// one share the blocks of versions that are the same.
  public var identity: String { inner.identity }
  public var isRemote: Bool { inner.isRemote }
  public var counters: RequestCounters { inner.counters }
  public var hasStorageClasses: Bool { inner.hasStorageClasses }
  public func isFixed(etag: String) -> Bool { inner.isFixed(etag: etag) }

  public func listPage(_ request: ListRequest) throws(ObjectStoreError) -> ListPage {
    var position = try Position(token: request.continuationToken)
    if request.continuationToken == nil { position.keyMarker = request.startAfter }
    let page = try inner.listVersionsPage(
      VersionListRequest(
        prefix: request.prefix, delimiter: request.delimiter, keyMarker: position.keyMarker,
        versionIDMarker: position.versionIDMarker, maxKeys: request.maxKeys))
    // Each key's versions and delete markers, in key order. Not every server sends a key's entries
    // together and newest first (moto sends the delete markers after all the versions), so each
    // key's entry at the time is chosen by time, not by place.
    var keys: [String] = []
    var entries: [String: [ObjectVersionEntry]] = [:]
    for entry in page.versions {
      if entries[entry.key] == nil { keys.append(entry.key) }
      entries[entry.key, default: []].append(entry)
    }
    keys.sort(by: utf8Less)
    var token: String?
    var commonPrefixes = page.commonPrefixes
    var decided: Set<String> = []
    if let key = position.decidedKey { decided.insert(key) }
    if page.isTruncated {
      if keys.count >= 2 {
        // The last key's entries may go on in the next page: it is listed again from its start.
        let last = keys.removeLast()
        let restart = keys.last!
        token = Position(keyMarker: restart, versionIDMarker: nil, decidedKey: nil).token
        entries[last] = nil
        // What sorts after the restart point is listed again by the next page.
        commonPrefixes.removeAll { !utf8Less($0, restart) }
      } else {
        // One key with more versions than a page: S3 lists them newest first, so the first page
        // that holds one at or before the time decides.
        let key = keys.first
        let decidedNow = key.map { key in decided.contains(key) || entries[key]!.contains { $0.lastModified <= time } }
        token =
          Position(
            keyMarker: page.nextKeyMarker, versionIDMarker: page.nextVersionIDMarker,
            decidedKey: decidedNow == true ? key : nil
          ).token
      }
    }
    var objects: [ObjectInfo] = []
    for key in keys where !decided.contains(key) {
      guard let entry = Self.current(at: time, among: entries[key]!), !entry.isDeleteMarker else { continue }
      objects.append(
        ObjectInfo(
          key: entry.key, size: entry.size, lastModified: entry.lastModified, etag: entry.etag, storage: entry.storage,
          versionID: entry.versionID))
    }
    return ListPage(
      objects: objects, commonPrefixes: commonPrefixes, nextContinuationToken: token,
      undecodableKeys: page.undecodableKeys)
  }

  /// The entry of one key that was current at `time`: the newest written at or before it (of two
  /// written in the same instant, the one listed first, as S3 lists newest first).
  static func current(at time: Timestamp, among entries: [ObjectVersionEntry]) -> ObjectVersionEntry? {
    var best: ObjectVersionEntry?
    for entry in entries where entry.lastModified <= time {
      if best == nil || best!.lastModified < entry.lastModified { best = entry }
    }
    return best
  }

  /// The version of `key` current at the time.
  public func head(key: String) throws(ObjectStoreError) -> ObjectInfo {
    guard let entry = Self.current(at: time, among: try inner.versions(of: key)), !entry.isDeleteMarker else {
      throw ObjectStoreError(
        .notFound,
        "\(inner.identity)/\(key) did not exist at \(formatRFC3339(seconds: time.seconds, nanoseconds: time.nanoseconds))"
      )
    }
    return ObjectInfo(
      key: key, size: entry.size, lastModified: entry.lastModified, etag: entry.etag, storage: entry.storage,
      versionID: entry.versionID)
  }

  public func get(
    key: String, version: String?, range: Range<UInt64>, ifMatch: String?, body: (UnsafeRawBufferPointer) -> Void
  ) throws(ObjectStoreError) {
    var chosen = version
    if chosen == nil { chosen = try head(key: key).versionID }
    try inner.get(key: key, version: chosen, range: range, ifMatch: ifMatch, body: body)
  }

  /// Where a listing goes on: ListObjectVersions' markers, and the key whose version at the time
  /// was already found when a page ended inside its versions.
  private struct Position {
    var keyMarker: String?
    var versionIDMarker: String?
    var decidedKey: String?

    init(keyMarker: String?, versionIDMarker: String?, decidedKey: String?) {
      self.keyMarker = keyMarker
      self.versionIDMarker = versionIDMarker
      self.decidedKey = decidedKey
    }

    /// Each field as "-" for none, else its length in UTF-8 bytes, ":" and its bytes, so that any
    /// key (even one holding the separators) comes back as it was.
    init(token: String?) throws(ObjectStoreError) {
      guard let token else { return }
      var rest = Substring(token).utf8[...]
      var fields: [String?] = []
      while !rest.isEmpty {
        if rest.first == UInt8(ascii: "-") {
          fields.append(nil)
          rest = rest.dropFirst()
          continue
        }
        guard let colon = rest.firstIndex(of: UInt8(ascii: ":")),
          let length = Int(String(decoding: rest[..<colon], as: UTF8.self)), length >= 0,
          rest[rest.index(after: colon)...].count >= length
        else { throw ObjectStoreError(.invalidRequest, "not a version listing's token") }
        let start = rest.index(after: colon)
        let end = rest.index(start, offsetBy: length)
        fields.append(String(decoding: rest[start..<end], as: UTF8.self))
        rest = rest[end...]
      }
      guard fields.count == 3 else { throw ObjectStoreError(.invalidRequest, "not a version listing's token") }
      (keyMarker, versionIDMarker, decidedKey) = (fields[0], fields[1], fields[2])
    }

    var token: String {
      [keyMarker, versionIDMarker, decidedKey].map { $0.map { "\($0.utf8.count):\($0)" } ?? "-" }.joined()
    }
  }
}

public import ObjectStore
import Synchronization

/// An object store held in memory, with S3's semantics, for tests of the layers above: ListObjectsV2
/// (keys in UTF-8 byte order, delimiter roll-up, pages and continuation tokens, start-after), ranged
/// GETs, If-Match. It counts calls, so tests can check what the filesystem asks for. It never fails
/// of its own accord: wrap it in `FaultInjectingObjectClient` for that.
public final class InMemoryObjectClient: WritableObjectClient {
  private struct State {
    var objects: [ExactName: (info: ObjectInfo, bytes: [UInt8])] = [:]
    /// What a HEAD and a GET find of an object's storage, where a test set it apart from what its
    /// listing says (`setStorage`).
    var actualStorage: [ExactName: ObjectStorage] = [:]
    var pageSize = 1000
    var undecodable: [String] = []
  }

  private let state = Mutex(State())
  private let etagSerial = Atomic<Int>(0)
  public let identity: String
  public let isRemote: Bool
  public let rangeSupport: RangeSupport
  /// ETags starting with this name versions that may change (as a running job's log's do).
  public let changingETagPrefix: String?
  public let hasStorageClasses: Bool

  /// With `rangeSupport: .suffixOnly` the store refuses any range that does not end at the object's
  /// end, as Buildkite's log endpoint does.
  public init(
    identity: String = "memory://test", isRemote: Bool = true, rangeSupport: RangeSupport = .any,
    changingETagPrefix: String? = nil, hasStorageClasses: Bool = false
  ) {
    self.hasStorageClasses = hasStorageClasses
    self.identity = identity
    self.isRemote = isRemote
    self.rangeSupport = rangeSupport
    self.changingETagPrefix = changingETagPrefix
  }

  public func isFixed(etag: String) -> Bool {
    guard let changingETagPrefix else { return true }
    return !etag.hasPrefix(changingETagPrefix)
  }

  /// Stores an object under an ETag chosen by the caller.
  public func put(_ key: String, _ bytes: [UInt8], etag: String) {
    let info = ObjectInfo(
      key: key, size: UInt64(bytes.count), lastModified: Timestamp(seconds: 1_700_000_000), etag: etag)
    state.withLock { $0.objects[ExactName(key)] = (info, bytes) }
  }

  /// The bytes of an object, if there is one (not counted).
  public func bytes(of key: String) -> [UInt8]? { state.withLock { $0.objects[ExactName(key)]?.bytes } }

  /// Every key held, in byte order (not counted).
  public var keys: [String] { state.withLock { $0.objects.keys.map(\.string).sorted(by: utf8Less) } }

  // MARK: WritableObjectClient

  public func getObject(key: String, limit: Int) throws(ObjectStoreError) -> [UInt8]? {
    counters.gets.add(1, ordering: .relaxed)
    guard let bytes = bytes(of: key) else { return nil }
    guard bytes.count <= limit else {
      throw ObjectStoreError(.invalidResponse, "the response is larger than \(limit) bytes")
    }
    counters.bytesFetched.add(bytes.count, ordering: .relaxed)
    return bytes
  }

  public func put(key: String, bytes: [UInt8]) throws(ObjectStoreError) {
    put(key, bytes)
  }

  public func put(_ key: String, _ bytes: [UInt8], lastModified: Timestamp = Timestamp(seconds: 1_700_000_000)) {
    let serial = etagSerial.add(1, ordering: .relaxed).newValue
    let info = ObjectInfo(key: key, size: UInt64(bytes.count), lastModified: lastModified, etag: "\"etag-\(serial)\"")
    state.withLock { $0.objects[ExactName(key)] = (info, bytes) }
  }

  public func put(_ key: String, _ text: String) { put(key, Array(text.utf8)) }

  /// Makes listings report a key that is not UTF-8, as a hostile S3 could send it (percent-encoded,
  /// e.g. `dir/bad%FF.log`): it is listed, in the last page of a listing of a prefix it starts with
  /// and has no delimiter after, in `undecodableKeys`.
  public func putUndecodable(_ encodedKey: String) { state.withLock { $0.undecodable.append(encodedKey) } }

  /// Gives an object a storage class as S3 would: listings show `listed` (a server that ignores
  /// `RestoreStatus` lists the class alone), a HEAD shows `actual`, and a GET fails as `.archived`
  /// (S3's `InvalidObjectState`) while `actual` is not readable.
  public func setStorage(_ key: String, listed: ObjectStorage?, actual: ObjectStorage?) {
    state.withLock { state in
      state.objects[ExactName(key)]?.info.storage = listed
      state.actualStorage[ExactName(key)] = actual
    }
  }

  public func remove(_ key: String) { _ = state.withLock { $0.objects.removeValue(forKey: ExactName(key)) } }

  public let counters = RequestCounters()

  /// Keys per listing page, to exercise continuation tokens.
  public func setPageSize(_ size: Int) { state.withLock { $0.pageSize = size } }

  public func listPage(_ request: ListRequest) throws(ObjectStoreError) -> ListPage {
    counters.lists.add(1, ordering: .relaxed)
    return state.withLock { state in
      let keys = state.objects.keys.map(\.string).filter { hasBytePrefix($0, request.prefix) }.sorted(by: utf8Less)
      // Entries in order, each a key or a rolled-up prefix, as S3 pages them.
      var entries: [(name: String, info: ObjectInfo?)] = []
      for key in keys {
        if let common = commonPrefix(of: key, prefix: request.prefix, delimiter: request.delimiter) {
          if !(entries.last?.name.utf8.elementsEqual(common.utf8) ?? false) { entries.append((common, nil)) }
        } else {
          entries.append((key, state.objects[ExactName(key)]!.info))
        }
      }
      let after = request.continuationToken ?? request.startAfter
      if let after { entries = entries.filter { utf8Less(after, $0.name) } }
      let limit = min(request.maxKeys ?? 1000, state.pageSize)
      let page = entries.prefix(limit)
      let truncated = entries.count > limit
      let undecodable = state.undecodable.filter { key in
        hasBytePrefix(key, request.prefix)
          && commonPrefix(of: key, prefix: request.prefix, delimiter: request.delimiter) == nil
      }
      return ListPage(
        objects: page.compactMap(\.info), commonPrefixes: page.filter { $0.info == nil }.map(\.name),
        nextContinuationToken: truncated ? page.last!.name : nil, undecodableKeys: truncated ? [] : undecodable)
    }
  }

  public func head(key: String) throws(ObjectStoreError) -> ObjectInfo {
    counters.heads.add(1, ordering: .relaxed)
    let found = state.withLock { state -> ObjectInfo? in
      guard var info = state.objects[ExactName(key)]?.info else { return nil }
      if let actual = state.actualStorage[ExactName(key)] { info.storage = actual }
      return info
    }
    guard let found else { throw ObjectStoreError(.notFound, "no object \(key) in \(identity)") }
    return found
  }

  public func get(
    key: String, version: String?, range: Range<UInt64>, ifMatch: String?, body: (UnsafeRawBufferPointer) -> Void
  ) throws(ObjectStoreError) {
    counters.gets.add(1, ordering: .relaxed)
    let result = state.withLock { state -> Result<[UInt8], ObjectStoreError> in
      guard let object = state.objects[ExactName(key)] else {
        return .failure(ObjectStoreError(.notFound, "no object \(key) in \(identity)"))
      }
      if let actual = state.actualStorage[ExactName(key)], actual.isReadable != true {
        var refused = actual
        refused.restore = .notRestored
        return .failure(ObjectStoreError(.archived, "\(key) is archived (\(actual.storageClass))", storage: refused))
      }
      if let ifMatch, ifMatch != object.info.etag {
        return .failure(ObjectStoreError(.preconditionFailed, "\(key) changed (ETag \(object.info.etag))"))
      }
      guard range.upperBound <= object.info.size else {
        return .failure(ObjectStoreError(.invalidRequest, "range \(range) past the end of \(key)"))
      }
      if rangeSupport == .suffixOnly && range.upperBound != object.info.size {
        return .failure(ObjectStoreError(.invalidRequest, "only suffix ranges of \(key) can be read"))
      }
      return .success(Array(object.bytes[Int(range.lowerBound)..<Int(range.upperBound)]))
    }
    let bytes = try result.get()
    counters.bytesFetched.add(bytes.count, ordering: .relaxed)
    bytes.withUnsafeBytes { body($0) }
  }
}

/// The common prefix `key` rolls up into under ListObjectsV2 rules: the prefix, then the rest of the
/// key up to and including the first delimiter after the prefix. Nil when the key does not roll up.
func commonPrefix(of key: String, prefix: String, delimiter: String?) -> String? {
  guard let delimiter, !delimiter.isEmpty else { return nil }
  let keyBytes = Array(key.utf8)
  let delimiterBytes = Array(delimiter.utf8)
  let start = prefix.utf8.count
  guard keyBytes.count >= start + delimiterBytes.count else { return nil }
  var index = start
  while index + delimiterBytes.count <= keyBytes.count {
    if keyBytes[index..<index + delimiterBytes.count].elementsEqual(delimiterBytes) {
      return String(decoding: keyBytes[..<(index + delimiterBytes.count)], as: UTF8.self)
    }
    index += 1
  }
  return nil
}

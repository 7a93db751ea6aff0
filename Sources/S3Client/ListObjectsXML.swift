public import ObjectStore
import SystemBase

/// Parses a ListObjectsV2 response body.
///
/// Keys and `CommonPrefixes/Prefix` are percent-decoded ('+' as a space) when the response says
/// `<EncodingType>url</EncodingType>`, which S3 does exactly when the request had
/// `encoding-type=url` (`urlEncoded`). The response decides: a server that ignores the parameter
/// sends raw keys and no `EncodingType`, and decoding those would corrupt keys holding '+' or '%'.
///
/// The echoed request fields (`Prefix`, `StartAfter`, `Delimiter`) are not read at all: the client
/// knows what it asked, and servers disagree on their encoding. Ceph's RADOS Gateway echoes them
/// raw under `EncodingType=url`, so a prefix such as `dir 100%/` is no valid escape there, and
/// checking it would fail every page of a listing that names it.
///
/// A key or common prefix that is well escaped but not UTF-8 once decoded (S3 stores only UTF-8
/// keys, but a buggy or hostile server can send `%FF`) is not a `String`: it goes into
/// `undecodableKeys` as sent, and the rest of the page stands.
///
/// An `<Error>` body throws with its code and message; a missing `Key`, `Size` or `LastModified`,
/// a size that is not a `UInt64`, or `IsTruncated` true with no `NextContinuationToken` is
/// `.invalidResponse`. A missing `ETag` is taken as "".
///
/// Each object's `<StorageClass>` (STANDARD when absent) and `<RestoreStatus>` (sent when the
/// request had `x-amz-optional-object-attributes: RestoreStatus`) make its `storage`. S3 sends a
/// `RestoreStatus` only for an object restored or being restored: with `restoreStatusIsReliable`
/// (the server honours the header, as S3 does), an archived object without one is not restored;
/// without it (moto and Ceph ignore the header), its restore state is left unknown.
public func parseListObjectsV2(_ body: [UInt8], urlEncoded: Bool, restoreStatusIsReliable: Bool = false)
  throws(ObjectStoreError) -> ListPage
{
  var listing = try ListingBody(body, root: "ListBucketResult")
  let root = listing.root
  var objects: [ObjectInfo] = []
  for contents in root.children(named: "Contents") {
    guard let rawKey = try contents.childText("Key") else { throw invalidListing("a <Contents> without <Key>") }
    let decodedKey = try listing.name(rawKey)
    let key = decodedKey ?? rawKey
    guard let sizeText = try contents.childText("Size") else {
      throw invalidListing("no <Size> for key \(key)")
    }
    guard let size = parseUInt64(sizeText) else { throw invalidListing("size \(sizeText) of key \(key)") }
    guard let modifiedText = try contents.childText("LastModified") else {
      throw invalidListing("no <LastModified> for key \(key)")
    }
    guard let modified = parseISO8601(modifiedText) else {
      throw invalidListing("LastModified \(modifiedText) of key \(key)")
    }
    let etag = try contents.childText("ETag") ?? ""
    let storage = try listedStorage(contents, key: key, restoreStatusIsReliable: restoreStatusIsReliable)
    guard decodedKey != nil else { continue }
    objects.append(
      ObjectInfo(
        key: key, size: size, lastModified: Timestamp(seconds: modified.seconds, nanoseconds: modified.nanoseconds),
        etag: etag, storage: storage))
  }

  let commonPrefixes = try listing.commonPrefixes()
  var token: String?
  if try listing.isTruncated() {
    guard let next = try root.childText("NextContinuationToken"), !next.isEmpty else {
      throw invalidListing("IsTruncated is true but there is no NextContinuationToken")
    }
    token = next
  }
  return ListPage(
    objects: objects, commonPrefixes: commonPrefixes, nextContinuationToken: token,
    undecodableKeys: listing.undecodable)
}

/// The storage of one `<Contents>`: nil for STANDARD.
private func listedStorage(_ contents: XMLElement, key: String, restoreStatusIsReliable: Bool)
  throws(ObjectStoreError) -> ObjectStorage?
{
  let storageClass = try contents.childText("StorageClass")
  var restore: RestoreState?
  if let status = contents.children(named: "RestoreStatus").first {
    switch try status.childText("IsRestoreInProgress")?.lowercased() {
    case "true": restore = .inProgress
    case "false", nil:
      let expiry = try status.childText("RestoreExpiryDate")
      guard let expiry else {
        restore = .restored(expiry: nil)
        break
      }
      guard let date = parseISO8601(expiry) else {
        throw invalidListing("RestoreExpiryDate \(expiry) of key \(key)")
      }
      restore = .restored(expiry: Timestamp(seconds: date.seconds, nanoseconds: date.nanoseconds))
    case let other?: throw invalidListing("IsRestoreInProgress is \(other) for key \(key)")
    }
  }
  var storage = ObjectStorage.reported(storageClass: storageClass, restore: restore)
  if restore == nil, restoreStatusIsReliable, storage?.isArchiveClass == true { storage?.restore = .notRestored }
  return storage
}

/// Parses a ListObjectVersions response body (`ListVersionsResult`), under the same rules as
/// `parseListObjectsV2`: keys and prefixes decoded when the response says `EncodingType=url`, a key
/// that is not UTF-8 set apart, `<Version>` and `<DeleteMarker>` kept in the order sent. A
/// version without `Key`, `VersionId` or `LastModified`, or without `Size` (a delete marker has
/// none), or `IsTruncated` true with no `NextKeyMarker`, is `.invalidResponse`.
public func parseListObjectVersions(_ body: [UInt8]) throws(ObjectStoreError) -> VersionPage {
  var listing = try ListingBody(body, root: "ListVersionsResult")
  let root = listing.root
  var versions: [ObjectVersionEntry] = []
  for element in root.children where element.name == "Version" || element.name == "DeleteMarker" {
    let isDeleteMarker = element.name == "DeleteMarker"
    guard let rawKey = try element.childText("Key") else { throw invalidListing("a <\(element.name)> without <Key>") }
    let decodedKey = try listing.name(rawKey)
    let key = decodedKey ?? rawKey
    guard let versionID = try element.childText("VersionId"), !versionID.isEmpty else {
      throw invalidListing("no <VersionId> for a version of key \(key)")
    }
    guard let modifiedText = try element.childText("LastModified"), let modified = parseISO8601(modifiedText) else {
      throw invalidListing("no valid <LastModified> for version \(versionID) of key \(key)")
    }
    let isLatest: Bool
    switch try element.childText("IsLatest") {
    case "true": isLatest = true
    case "false", nil: isLatest = false
    case let other?: throw invalidListing("IsLatest is \(other) for key \(key)")
    }
    var size: UInt64 = 0
    if !isDeleteMarker {
      guard let sizeText = try element.childText("Size"), let parsed = parseUInt64(sizeText) else {
        throw invalidListing("no valid <Size> for version \(versionID) of key \(key)")
      }
      size = parsed
    }
    let storage = isDeleteMarker ? nil : ObjectStorage.reported(storageClass: try element.childText("StorageClass"))
    guard decodedKey != nil else { continue }
    versions.append(
      ObjectVersionEntry(
        key: key, versionID: versionID, isLatest: isLatest, isDeleteMarker: isDeleteMarker,
        lastModified: Timestamp(seconds: modified.seconds, nanoseconds: modified.nanoseconds), size: size,
        etag: try element.childText("ETag") ?? "", storage: storage))
  }
  let commonPrefixes = try listing.commonPrefixes()
  var nextKeyMarker: String?
  var nextVersionIDMarker: String?
  if try listing.isTruncated() {
    guard let marker = try root.childText("NextKeyMarker"), !marker.isEmpty else {
      throw invalidListing("IsTruncated is true but there is no NextKeyMarker")
    }
    // The marker is encoded as the keys are; one that is not UTF-8 cannot be sent back.
    guard let decodedMarker = try listing.name(marker) else { throw invalidListing("NextKeyMarker is not UTF-8") }
    nextKeyMarker = decodedMarker
    nextVersionIDMarker = try root.childText("NextVersionIdMarker").flatMap { $0.isEmpty ? nil : $0 }
  }
  return VersionPage(
    versions: versions, commonPrefixes: commonPrefixes, nextKeyMarker: nextKeyMarker,
    nextVersionIDMarker: nextVersionIDMarker, undecodableKeys: listing.undecodable)
}

/// What a ListObjectsV2 and a ListObjectVersions body share: the root element (or an `<Error>`,
/// thrown), `EncodingType`, names decoded by it with those that are not UTF-8 set apart, the
/// common prefixes, and `IsTruncated`.
private struct ListingBody {
  let root: XMLElement
  private let decode: Bool
  /// Names (keys, prefixes, markers) that are not UTF-8 once decoded, as sent.
  private(set) var undecodable: [String] = []

  init(_ body: [UInt8], root name: String) throws(ObjectStoreError) {
    root = try XMLReader().parse(body)
    if root.name == "Error" { throw S3ErrorBody(root).objectStoreError }
    guard root.name == name else { throw invalidListing("the root element is <\(root.name)>, not <\(name)>") }
    switch try root.childText("EncodingType") {
    case nil: decode = false
    case "url": decode = true
    case let other?: throw invalidListing("unknown EncodingType \(other)")
    }
  }

  /// A key or prefix, or nil (and noted) when it is not UTF-8 once decoded.
  mutating func name(_ text: String) throws(ObjectStoreError) -> String? {
    guard decode else { return text }
    if let decoded = String(validating: try formURLDecodeBytes(text), as: UTF8.self) { return decoded }
    undecodable.append(text)
    return nil
  }

  /// The `<CommonPrefixes>`, decoded; one that is not UTF-8 is noted and left out.
  mutating func commonPrefixes() throws(ObjectStoreError) -> [String] {
    var prefixes: [String] = []
    for group in root.children(named: "CommonPrefixes") {
      guard let prefix = try group.childText("Prefix") else {
        throw invalidListing("a <CommonPrefixes> without <Prefix>")
      }
      if let decoded = try name(prefix) { prefixes.append(decoded) }
    }
    return prefixes
  }

  func isTruncated() throws(ObjectStoreError) -> Bool {
    switch try root.childText("IsTruncated") {
    case nil, "false": return false
    case "true": return true
    case let other?: throw invalidListing("IsTruncated is \(other)")
    }
  }
}

private func invalidListing(_ message: String) -> ObjectStoreError {
  ObjectStoreError(.invalidResponse, "S3 sent an invalid listing: \(message)")
}

private func parseUInt64(_ text: String) -> UInt64? {
  guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
  return UInt64(text)
}

/// The bytes `encoding-type=url` text stands for: `%XX` to the byte, '+' to a space.
func formURLDecodeBytes(_ text: String) throws(ObjectStoreError) -> [UInt8] {
  let bytes = Array(text.utf8)
  var out: [UInt8] = []
  out.reserveCapacity(bytes.count)
  var index = 0
  func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case 0x30...0x39: byte - 0x30
    case 0x41...0x46: byte - 0x41 + 10
    case 0x61...0x66: byte - 0x61 + 10
    default: nil
    }
  }
  while index < bytes.count {
    switch bytes[index] {
    case 0x25:
      guard index + 2 < bytes.count, let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) else {
        throw invalidListing("a bad percent-escape in a url-encoded value")
      }
      out.append(high << 4 | low)
      index += 3
    case 0x2B:
      out.append(0x20)
      index += 1
    default:
      out.append(bytes[index])
      index += 1
    }
  }
  return out
}

/// An S3 `<Error>` body.
public struct S3ErrorBody: Sendable, Hashable {
  /// "NoSuchBucket", "AccessDenied", "PermanentRedirect", …; "" when the body had none.
  public var code: String
  public var message: String
  /// The bucket's region, from `AuthorizationHeaderMalformed` and the like.
  public var region: String?
  /// From `<BucketName>` or `<Bucket>`.
  public var bucketName: String?
  /// The endpoint to use instead, from `PermanentRedirect`/`TemporaryRedirect`.
  public var endpoint: String?
  public var requestID: String?
  /// The object's storage class, from `InvalidObjectState`.
  public var storageClass: String?
  /// An INTELLIGENT_TIERING object's archive tier, from `InvalidObjectState`.
  public var accessTier: String?

  public init(
    code: String, message: String, region: String? = nil, bucketName: String? = nil, endpoint: String? = nil,
    requestID: String? = nil, storageClass: String? = nil, accessTier: String? = nil
  ) {
    self.accessTier = accessTier
    self.code = code
    self.message = message
    self.region = region
    self.bucketName = bucketName
    self.endpoint = endpoint
    self.requestID = requestID
    self.storageClass = storageClass
  }

  init(_ element: XMLElement) {
    func text(_ name: String) -> String? { (try? element.childText(name)) ?? nil }
    self.init(
      code: text("Code") ?? "", message: text("Message") ?? "", region: text("Region"),
      bucketName: text("BucketName") ?? text("Bucket"), endpoint: text("Endpoint"), requestID: text("RequestId"),
      storageClass: text("StorageClass"), accessTier: text("AccessTier"))
  }

  /// For `InvalidObjectState` on a read: the object's storage, not restored. S3 names the class;
  /// when it does not, GLACIER stands for "an archive class".
  public var archivedStorage: ObjectStorage {
    let storageClass = storageClass ?? "GLACIER"
    let tier = accessTier ?? (storageClass == "INTELLIGENT_TIERING" ? "ARCHIVE_ACCESS" : nil)
    return ObjectStorage(storageClass: storageClass, restore: .notRestored, archiveTier: tier)
  }

  /// S3's message, or when the server sent none (Ceph's RADOS Gateway sends an empty `<Message>`)
  /// a hint of ours for the codes that mean a wrong key, so that a refused mount says what to fix.
  public var explanation: String? {
    if !message.isEmpty { return message }
    switch code {
    case "SignatureDoesNotMatch":
      return "the server sent no message; the secret access key is probably wrong"
    case "InvalidAccessKeyId":
      return "the server sent no message; it knows no such access key id, so the access key is probably wrong"
    default: return nil
    }
  }

  /// For `InvalidObjectState`: what it means for a reader, naming the storage class when S3 said it.
  public var archivedExplanation: String {
    let storageClass = (accessTier ?? storageClass).map { " (\($0))" } ?? ""
    return "the object is in an archive storage class\(storageClass) and not restored: it can be read once "
      + "restored (S3 RestoreObject, such as `aws s3api restore-object --bucket BUCKET --key KEY "
      + "--restore-request Days=7`)"
  }

  /// The error for the filesystem: the kind from the code, a message naming code and S3's message
  /// (never the string to sign or key id S3 echoes in `SignatureDoesNotMatch`).
  public var objectStoreError: ObjectStoreError {
    let kind: ObjectStoreError.Kind =
      switch code {
      case "NoSuchKey": .notFound
      case "NoSuchBucket": .noSuchBucket
      case "PreconditionFailed": .preconditionFailed
      case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
        "TokenRefreshRequired", "AllAccessDisabled", "AccountProblem":
        .accessDenied
      case "InvalidObjectState": .archived
      case "SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout": .serverError
      case "InvalidRange", "InvalidArgument", "InvalidRequest": .invalidRequest
      default: .invalidResponse
      }
    var text = "S3 error \(code.isEmpty ? "(no code)" : code)"
    if code == "InvalidObjectState" {
      text += ": \(archivedExplanation)"
    } else if let explanation {
      text += ": \(explanation)"
    }
    var details: [String] = []
    if let bucketName { details.append("bucket \(bucketName)") }
    if let region { details.append("region \(region)") }
    if let endpoint { details.append("endpoint \(endpoint)") }
    if !details.isEmpty { text += " (\(details.joined(separator: ", ")))" }
    return ObjectStoreError(kind, text, storage: kind == .archived ? archivedStorage : nil)
  }
}

/// Parses an S3 `<Error>` body; nil when the body is not one (not XML, or another root).
public func parseS3Error(_ body: [UInt8]) -> S3ErrorBody? {
  guard let root = try? XMLReader().parse(body), root.name == "Error" else { return nil }
  return S3ErrorBody(root)
}

import Synchronization
import SystemBase
import SystemPackage

/// A local directory laid out like the archive (`org/pipeline/build/job.log`), served with the same
/// listing semantics as S3. Only regular files and directories are shown; symbolic links and other
/// file types are left out, so nothing outside the directory is ever reachable through the mount.
public final class LocalDirectoryClient: ObjectClient {
  public let root: String
  public let identity: String
  public let isRemote = false
  public let counters = RequestCounters()
  private let clock = SystemClock()

  /// Fails with `.notFound` when `root` is not a readable directory.
  public init(root: String) throws(ObjectStoreError) {
    var trimmed = root
    while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
    self.root = trimmed
    self.identity = "file://" + trimmed
    guard (try? FileSystem.stat(trimmed, followingSymlinks: false))?.type == .directory else {
      throw ObjectStoreError(.notFound, "\(root) is not a directory")
    }
    guard FileSystem.canRead(trimmed) else {
      throw ObjectStoreError(.accessDenied, "\(root) is not readable")
    }
  }

  public func listPage(_ request: ListRequest) throws(ObjectStoreError) -> ListPage {
    counters.lists.add(1, ordering: .relaxed)
    let started = clock.now()
    defer { counters.listLatency.record(seconds: clock.now() - started) }
    // The directory holding the prefix's last, partial component.
    let prefixBytes = Array(request.prefix.utf8)
    let lastSlash = prefixBytes.lastIndex(of: UInt8(ascii: "/"))
    let directory = lastSlash.map { String(decoding: prefixBytes[...$0], as: UTF8.self) } ?? ""
    guard request.delimiter == nil || request.delimiter == "/" else {
      throw ObjectStoreError(.invalidRequest, "a local archive lists with the delimiter \"/\" only")
    }
    var keys: [ObjectInfo] = []
    var prefixes: [String] = []
    var undecodable: [String] = []
    collect(
      directory: directory, request: request, recursive: request.delimiter != "/", keys: &keys, prefixes: &prefixes,
      undecodable: &undecodable)
    // One page holds everything, in S3's order.
    var entries: [(name: String, info: ObjectInfo?)] = keys.map { ($0.key, $0) } + prefixes.map { ($0, nil) }
    entries.sort { utf8Less($0.name, $1.name) }
    if let after = request.continuationToken ?? request.startAfter {
      entries = entries.filter { utf8Less(after, $0.name) }
    }
    let limit = request.maxKeys ?? Int.max
    let page = entries.prefix(limit)
    return ListPage(
      objects: page.compactMap(\.info), commonPrefixes: page.filter { $0.info == nil }.map(\.name),
      nextContinuationToken: entries.count > limit ? page.last?.name : nil,
      undecodableKeys: entries.count > limit ? [] : undecodable)
  }

  private func collect(
    directory: String, request: ListRequest, recursive: Bool, keys: inout [ObjectInfo], prefixes: inout [String],
    undecodable: inout [String]
  ) {
    let path = directory.isEmpty ? root : root + "/" + directory
    // A directory that cannot be read, or that went away, holds no keys.
    guard let names = try? FileSystem.listDirectoryBytes(path) else { return }
    for bytes in names {
      guard let name = String(validating: bytes, as: UTF8.self) else {
        // A file name that is not UTF-8: it cannot be a key. Reported, percent-encoded, to be logged.
        let encoded = directory + percentEncodedName(bytes)
        if hasBytePrefix(encoded, request.prefix) { undecodable.append(encoded) }
        continue
      }
      let key = directory + name
      // lstat, so that a symbolic link is seen as one and left out, never followed.
      guard let status = try? FileSystem.stat(root + "/" + key, followingSymlinks: false) else { continue }
      if status.type == .directory {
        let dirKey = key + "/"
        if recursive {
          // A directory can hold matching keys even when its own name is shorter than the prefix.
          if hasBytePrefix(dirKey, request.prefix) || hasBytePrefix(request.prefix, dirKey) {
            collect(
              directory: dirKey, request: request, recursive: true, keys: &keys, prefixes: &prefixes,
              undecodable: &undecodable)
          }
        } else if hasBytePrefix(dirKey, request.prefix) {
          prefixes.append(dirKey)
        }
      } else if status.type == .regular, hasBytePrefix(key, request.prefix) {
        keys.append(info(key: key, status: status))
      }
    }
  }

  private func info(key: String, status: Stat) -> ObjectInfo {
    let modified = status.modifiedSinceEpoch
    let mtime = Timestamp(seconds: Int64(modified.seconds), nanoseconds: Int32(modified.nanoseconds))
    // Changes whenever the file is replaced or rewritten, like an S3 ETag.
    let etag =
      "\"\(status.deviceID.rawValue)-\(status.inode.rawValue)-\(status.size)-\(mtime.seconds).\(mtime.nanoseconds)\""
    return ObjectInfo(key: key, size: UInt64(status.size), lastModified: mtime, etag: etag)
  }

  public func head(key: String) throws(ObjectStoreError) -> ObjectInfo {
    counters.heads.add(1, ordering: .relaxed)
    let started = clock.now()
    defer { counters.headLatency.record(seconds: clock.now() - started) }
    guard isSafe(key), let status = try? FileSystem.stat(root + "/" + key, followingSymlinks: false),
      status.type == .regular
    else {
      throw ObjectStoreError(.notFound, "no file \(key) in \(root)")
    }
    return info(key: key, status: status)
  }

  public func get(
    key: String, version: String?, range: Range<UInt64>, ifMatch: String?, body: (UnsafeRawBufferPointer) -> Void
  ) throws(ObjectStoreError) {
    guard version == nil else {
      throw ObjectStoreError(
        .invalidRequest, "\(identity) keeps no versions: it cannot read version \(version!) of \(key)")
    }
    counters.gets.add(1, ordering: .relaxed)
    let started = clock.now()
    defer { counters.getLatency.record(seconds: clock.now() - started) }
    guard isSafe(key) else { throw ObjectStoreError(.notFound, "no file \(key) in \(root)") }
    let file: OpenedFile
    do throws(SystemCallError) {
      // O_NOFOLLOW: a symbolic link put in place of the file is refused, never followed.
      file = try FileSystem.open(root + "/" + key, .readOnly, options: .noFollow)
    } catch {
      let code = error.errno
      throw ObjectStoreError(
        code == .noSuchFileOrDirectory ? .notFound : .accessDenied,
        "cannot open \(key) in \(root): errno \(code.rawValue)")
    }
    defer { file.closeIgnoringErrors() }
    let status: Stat
    do { status = try file.stat() } catch { throw ObjectStoreError(.invalidResponse, "cannot stat \(key) in \(root)") }
    if let ifMatch, info(key: key, status: status).etag != ifMatch {
      throw ObjectStoreError(.preconditionFailed, "\(key) in \(root) changed while mounted")
    }
    guard range.upperBound <= UInt64(status.size) else {
      throw ObjectStoreError(.invalidRequest, "range \(range) is past the end of \(key)")
    }
    var buffer = [UInt8](repeating: 0, count: min(Int(range.count), 1 << 20))
    var offset = range.lowerBound
    while offset < range.upperBound {
      let want = min(buffer.count, Int(range.upperBound - offset))
      // A file that shrank, or a read that failed, ends the body where it stopped.
      let got = buffer.withUnsafeMutableBytes { bytes in
        (try? file.read(into: UnsafeMutableRawBufferPointer(rebasing: bytes[..<want]), at: Int(offset))) ?? 0
      }
      guard got > 0 else {
        throw ObjectStoreError(.invalidResponse, "\(key) in \(root) ended early at byte \(offset)")
      }
      buffer.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[..<got])) }
      counters.bytesFetched.add(got, ordering: .relaxed)
      offset += UInt64(got)
    }
  }

  /// No key may climb out of the root.
  private func isSafe(_ key: String) -> Bool {
    !key.isEmpty && !key.hasPrefix("/")
      && !key.split(separator: "/", omittingEmptySubsequences: false).contains { $0 == ".." || $0 == "." || $0.isEmpty }
  }
}

/// A file name's bytes with `%`, control bytes and every byte that is not ASCII as `%XX`, as S3's
/// `encoding-type=url` would show them: for naming a file whose name is not UTF-8.
func percentEncodedName(_ bytes: [UInt8]) -> String {
  var out = ""
  for byte in bytes {
    if byte < 0x20 || byte >= 0x7F || byte == UInt8(ascii: "%") {
      let hex = String(byte, radix: 16, uppercase: true)
      out += "%" + (hex.count == 1 ? "0" : "") + hex
    } else {
      out.unicodeScalars.append(Unicode.Scalar(byte))
    }
  }
  return out
}

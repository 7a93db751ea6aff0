import Glibc
import Synchronization

/// A local directory laid out like the archive (`org/pipeline/build/job.log`), served with the same
/// listing semantics as S3. Only regular files and directories are shown; symbolic links and other
/// file types are left out, so nothing outside the directory is ever reachable through the mount.
public final class LocalDirectoryClient: ObjectClient {
  public let root: String
  public let identity: String
  public let isRemote = false
  public let counters = RequestCounters()

  /// Fails with `.notFound` when `root` is not a readable directory.
  public init(root: String) throws(ObjectStoreError) {
    var trimmed = root
    while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
    self.root = trimmed
    self.identity = "file://" + trimmed
    var status = stat()
    guard lstat(trimmed, &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR else {
      throw ObjectStoreError(.notFound, "\(root) is not a directory")
    }
    guard access(trimmed, R_OK | X_OK) == 0 else {
      throw ObjectStoreError(.accessDenied, "\(root) is not readable")
    }
  }

  public func listPage(_ request: ListRequest) throws(ObjectStoreError) -> ListPage {
    counters.lists.add(1, ordering: .relaxed)
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
    guard let handle = opendir(path) else { return }
    defer { closedir(handle) }
    while let entry = readdir(handle) {
      let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
        String(validatingCString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
      }
      guard let name else {
        // A file name that is not UTF-8: it cannot be a key. Reported, percent-encoded, to be logged.
        let bytes = withUnsafeBytes(of: entry.pointee.d_name) { raw in Array(raw.prefix { $0 != 0 }) }
        let encoded = directory + percentEncodedName(bytes)
        if hasBytePrefix(encoded, request.prefix) { undecodable.append(encoded) }
        continue
      }
      guard name != ".", name != ".." else { continue }
      let key = directory + name
      var status = stat()
      guard lstat(root + "/" + key, &status) == 0 else { continue }
      let type = status.st_mode & S_IFMT
      if type == S_IFDIR {
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
      } else if type == S_IFREG, hasBytePrefix(key, request.prefix) {
        keys.append(info(key: key, status: status))
      }
    }
  }

  private func info(key: String, status: stat) -> ObjectInfo {
    let mtime = Timestamp(seconds: Int64(status.st_mtim.tv_sec), nanoseconds: Int32(status.st_mtim.tv_nsec))
    // Changes whenever the file is replaced or rewritten, like an S3 ETag.
    let etag = "\"\(status.st_dev)-\(status.st_ino)-\(status.st_size)-\(mtime.seconds).\(mtime.nanoseconds)\""
    return ObjectInfo(key: key, size: UInt64(status.st_size), lastModified: mtime, etag: etag)
  }

  public func head(key: String) throws(ObjectStoreError) -> ObjectInfo {
    counters.heads.add(1, ordering: .relaxed)
    var status = stat()
    guard isSafe(key), lstat(root + "/" + key, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
      throw ObjectStoreError(.notFound, "no file \(key) in \(root)")
    }
    return info(key: key, status: status)
  }

  public func get(
    key: String, range: Range<UInt64>, ifMatch: String?, body: (UnsafeRawBufferPointer) -> Void
  ) throws(ObjectStoreError) {
    counters.gets.add(1, ordering: .relaxed)
    guard isSafe(key) else { throw ObjectStoreError(.notFound, "no file \(key) in \(root)") }
    let fd = open(root + "/" + key, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
    guard fd >= 0 else {
      let code = errno
      throw ObjectStoreError(code == ENOENT ? .notFound : .accessDenied, "cannot open \(key) in \(root): errno \(code)")
    }
    defer { close(fd) }
    var status = stat()
    guard fstat(fd, &status) == 0 else { throw ObjectStoreError(.invalidResponse, "cannot stat \(key) in \(root)") }
    if let ifMatch, info(key: key, status: status).etag != ifMatch {
      throw ObjectStoreError(.preconditionFailed, "\(key) in \(root) changed while mounted")
    }
    guard range.upperBound <= UInt64(status.st_size) else {
      throw ObjectStoreError(.invalidRequest, "range \(range) is past the end of \(key)")
    }
    var buffer = [UInt8](repeating: 0, count: min(Int(range.count), 1 << 20))
    var offset = range.lowerBound
    while offset < range.upperBound {
      let want = min(buffer.count, Int(range.upperBound - offset))
      let got = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want, off_t(offset)) }
      if got < 0 && errno == EINTR { continue }
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

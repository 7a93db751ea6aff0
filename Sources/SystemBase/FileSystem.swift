internal import CLinux
import Glibc
public import SystemPackage

/// Calls on paths. Each failure names the C function and the path; every descriptor is opened
/// close-on-exec, so none leaks into a process the daemon starts.
public enum FileSystem {
  /// `open(2)` with `O_CLOEXEC` added, retried on EINTR.
  public static func open(
    _ path: String, _ mode: FileDescriptor.AccessMode, options: FileDescriptor.OpenOptions = [],
    permissions: FilePermissions? = nil
  ) throws(SystemCallError) -> OpenedFile {
    let descriptor = try naming("open", path: path) {
      try path.withCString {
        try FileDescriptor.open($0, mode, options: options.union(.closeOnExec), permissions: permissions)
      }
    }
    return OpenedFile(descriptor: descriptor, path: path)
  }

  /// `stat(2)`, or `lstat(2)` when `followingSymlinks` is false, so that a symbolic link is
  /// described itself rather than what it points at; nil if nothing is at `path`.
  public static func stat(_ path: String, followingSymlinks: Bool = true) throws(SystemCallError) -> Stat? {
    let result = path.withCString { cPath in
      Result { () throws(Errno) in try Stat(cPath, followTargetSymlink: followingSymlinks) }
    }
    switch result {
    case .success(let info): return info
    case .failure(.noSuchFileOrDirectory): return nil
    case .failure(let error):
      throw SystemCallError(function: followingSymlinks ? "stat" : "lstat", errno: error, path: path)
    }
  }

  /// `rename(2)`; a failure names the destination.
  public static func rename(_ from: String, to: String) throws(SystemCallError) {
    _ = try systemCall("rename", path: to) { Glibc.rename(from, to) }
  }

  /// `unlink(2)`; a file already gone is not an error.
  public static func unlink(_ path: String) throws(SystemCallError) {
    do throws(SystemCallError) {
      _ = try systemCall("unlink", path: path) { Glibc.unlink(path) }
    } catch  where error.errno == .noSuchFileOrDirectory {}
  }

  /// `mkdir(2)`; something already at `path` is not an error (the caller checks what it is).
  public static func makeDirectory(_ path: String, permissions: FilePermissions) throws(SystemCallError) {
    do throws(SystemCallError) {
      _ = try systemCall("mkdir", path: path) { Glibc.mkdir(path, permissions.rawValue) }
    } catch  where error.errno == .fileExists {}
  }

  /// `mkdir -p`: creates `path` and each missing directory above it with `permissions`, leaving
  /// existing ones as they are. Something other than a directory in the way throws ENOTDIR naming
  /// it. A directory is looked at before it is made, so existing ancestors need not be writable.
  public static func makeDirectories(_ path: String, permissions: FilePermissions) throws(SystemCallError) {
    var prefix = path.hasPrefix("/") ? "/" : ""
    for component in path.split(separator: "/") {
      prefix += component
      if let info = try stat(prefix) {
        guard info.type == .directory else {
          throw SystemCallError(function: "mkdir", errno: .notDirectory, path: prefix)
        }
      } else {
        try makeDirectory(prefix, permissions: permissions)
      }
      prefix += "/"
    }
  }

  /// `mkdir -p` of the directory holding `path`.
  public static func makeParentDirectories(of path: String, permissions: FilePermissions) throws(SystemCallError) {
    guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return }
    let parent = String(path[..<slash])
    try makeDirectories(parent.isEmpty ? "/" : parent, permissions: permissions)
  }

  /// The names in a directory, without "." and ".." (`opendir`, `readdir`); a name that is not
  /// UTF-8 has its bad bytes replaced (`listDirectoryBytes` keeps them).
  public static func listDirectory(_ path: String) throws(SystemCallError) -> [String] {
    try listDirectoryBytes(path).map { String(decoding: $0, as: UTF8.self) }
  }

  /// The names in a directory as the bytes the kernel holds, in `readdir`'s order, without "." and
  /// ".." (`opendir`, `readdir`). A Linux file name is any bytes but "/" and NUL, so one that is not
  /// UTF-8 can only be told apart, and named, from its bytes.
  public static func listDirectoryBytes(_ path: String) throws(SystemCallError) -> [[UInt8]] {
    guard let directory = opendir(path) else {
      throw SystemCallError(function: "opendir", errno: Errno(rawValue: Glibc.errno), path: path)
    }
    defer { closedir(directory) }
    let dot = [UInt8(ascii: ".")]
    let dotDot = dot + dot
    var names: [[UInt8]] = []
    while true {
      // readdir returns NULL both at the end and on failure; only errno tells them apart.
      Glibc.errno = 0
      guard let entry = readdir(directory) else {
        let error = Glibc.errno
        if error == 0 { break }
        if error == EINTR { continue }
        throw SystemCallError(function: "readdir", errno: Errno(rawValue: error), path: path)
      }
      let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in Array(raw.prefix { $0 != 0 }) }
      if name != dot && name != dotDot { names.append(name) }
    }
    return names
  }

  /// The value of the extended attribute `name` of `path` (`getxattr(2)`), or nil when the file has
  /// no such attribute or its filesystem keeps none (ENODATA, ENOTSUP). A value that grows between
  /// asking its size and reading it is asked for again.
  public static func extendedAttribute(_ path: String, _ name: String) throws(SystemCallError) -> [UInt8]? {
    while true {
      let size: Int
      do throws(SystemCallError) {
        size = try systemCall("getxattr", path: path) { getxattr(path, name, nil, 0) }
      } catch  where error.errno == .noData || error.errno == .notSupported {
        return nil
      }
      var buffer = [UInt8](repeating: 0, count: size)
      do throws(SystemCallError) {
        let count = try systemCall("getxattr", path: path) { getxattr(path, name, &buffer, buffer.count) }
        return Array(buffer[..<count])
      } catch  where error.errno == .outOfRange {
        continue
      }
    }
  }

  /// `access(path, R_OK)`: returns when this user may read the file, or throws the refusal's
  /// errno (a bklogfs mount answers EACCES for a log that is archived and not restored).
  public static func checkReadable(_ path: String) throws(SystemCallError) {
    _ = try systemCall("access", path: path) { Glibc.access(path, R_OK) }
  }

  /// Whether this user may create and remove names in the directory (`access(path, W_OK | X_OK)`).
  public static func canWrite(_ path: String) -> Bool { access(path, W_OK | X_OK) == 0 }

  /// Whether this user may list the directory and open what is in it (`access(path, R_OK | X_OK)`).
  public static func canRead(_ path: String) -> Bool { access(path, R_OK | X_OK) == 0 }
}

/// A descriptor and the path it was opened at, which its failures name.
public struct OpenedFile: Sendable {
  public let descriptor: FileDescriptor
  public let path: String

  public init(descriptor: FileDescriptor, path: String) {
    self.descriptor = descriptor
    self.path = path
  }

  /// Reads at `offset` (`pread`) until `buffer` is full or the file ends; returns the bytes read.
  public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(SystemCallError) -> Int {
    var done = 0
    while done < buffer.count {
      let count = try naming("pread", path: path) {
        try descriptor.read(
          fromAbsoluteOffset: Int64(offset + done), into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
      }
      if count == 0 { break }
      done += count
    }
    return done
  }

  /// Up to `count` bytes at `offset` (`pread`); fewer if the file ends first.
  public func read(count: Int, at offset: Int) throws(SystemCallError) -> [UInt8] {
    var failure: SystemCallError?
    let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
      do throws(SystemCallError) {
        initialized = try read(into: UnsafeMutableRawBufferPointer(buffer), at: offset)
      } catch {
        failure = error
        initialized = 0
      }
    }
    if let failure { throw failure }
    return bytes
  }

  /// Writes all of `bytes` at `offset` (`pwrite`, repeated after a short write).
  public func write(_ bytes: [UInt8], at offset: Int) throws(SystemCallError) {
    _ = try naming("pwrite", path: path) { try descriptor.writeAll(toAbsoluteOffset: Int64(offset), bytes) }
  }

  /// `fstat(2)`.
  public func stat() throws(SystemCallError) -> Stat {
    do { return try descriptor.stat() } catch { throw SystemCallError(function: "fstat", errno: error, path: path) }
  }

  /// `fchmod(2)`.
  public func setPermissions(_ permissions: FilePermissions) throws(SystemCallError) {
    _ = try systemCall("fchmod", path: path) { fchmod(descriptor.rawValue, permissions.rawValue) }
  }

  /// Sets the file's access and modification times to now (`futimens(fd, NULL)`).
  public func touch() throws(SystemCallError) {
    _ = try systemCall("futimens", path: path) { futimens(descriptor.rawValue, nil) }
  }

  /// `close(2)`, not retried: on Linux the descriptor is gone even when close reports EINTR, so
  /// that is no error either.
  public func close() throws(SystemCallError) {
    do throws(SystemCallError) {
      try naming("close", path: path) { try descriptor.close() }
    } catch  where error.errno == .interrupted {}
  }

  /// `close(2)`, for paths where the file was only read or its writing already failed.
  public func closeIgnoringErrors() { try? descriptor.close() }
}

extension Stat {
  /// The time of last modification (`st_mtim`), as whole seconds since the Epoch and the
  /// nanoseconds past them, so callers need not reach into Glibc's `timespec`.
  public var modifiedSinceEpoch: (seconds: Int, nanoseconds: Int) {
    (st_mtim.tv_sec, st_mtim.tv_nsec)
  }
}

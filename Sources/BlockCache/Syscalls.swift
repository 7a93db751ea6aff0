import Glibc

// Every system call the disk cache makes lives here, behind `syscall(_:path:_:)`, which retries on EINTR and
// throws a `SystemCallError` naming the function and the path.

/// A failed system call: the function's name, `errno`, and the path it was about, if any.
struct SystemCallError: Error, CustomStringConvertible {
  var function: String
  var errno: Int32
  var path: String?

  var description: String {
    let reason = String(cString: strerror(errno))
    if let path { return "\(function)(\(path)): \(reason) (errno \(errno))" }
    return "\(function): \(reason) (errno \(errno))"
  }

  /// The reason alone, for sentences written for users.
  var reason: String { String(cString: strerror(errno)) }
}

/// Calls `body` until it does not fail with EINTR; a result of -1 throws with the current `errno`.
@inline(__always)
func syscall<Result: FixedWidthInteger>(
  _ function: String, path: String? = nil, _ body: () -> Result
) throws(SystemCallError) -> Result {
  while true {
    let result = body()
    if result != -1 { return result }
    let error = Glibc.errno
    if error == EINTR { continue }
    throw SystemCallError(function: function, errno: error, path: path)
  }
}

enum FileSystem {
  static func open(_ path: String, _ flags: Int32, mode: mode_t = 0) throws(SystemCallError) -> Int32 {
    try syscall("open", path: path) { Glibc.open(path, flags | O_CLOEXEC, mode) }
  }

  /// Closes without retrying: on Linux the descriptor is gone even when close reports EINTR.
  static func close(_ fd: Int32, path: String? = nil) throws(SystemCallError) {
    if Glibc.close(fd) == -1 {
      let error = Glibc.errno
      if error != EINTR { throw SystemCallError(function: "close", errno: error, path: path) }
    }
  }

  static func closeIgnoringErrors(_ fd: Int32) { _ = Glibc.close(fd) }

  static func fstat(_ fd: Int32, path: String? = nil) throws(SystemCallError) -> stat {
    var info = stat()
    _ = try syscall("fstat", path: path) { Glibc.fstat(fd, &info) }
    return info
  }

  /// `stat`, or nil if nothing is at `path`.
  static func statIfPresent(_ path: String) throws(SystemCallError) -> stat? {
    var info = stat()
    do throws(SystemCallError) {
      _ = try syscall("stat", path: path) { stat(path, &info) }
    } catch  where error.errno == ENOENT {
      return nil
    }
    return info
  }

  /// Reads until `buffer` is full or the file ends; returns the number of bytes read.
  static func pread(
    _ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int, path: String? = nil
  ) throws(SystemCallError) -> Int {
    var done = 0
    while done < buffer.count {
      let count = try syscall("pread", path: path) {
        Glibc.pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
      }
      if count == 0 { break }
      done += count
    }
    return done
  }

  /// Writes all of `buffer` at `offset`.
  static func pwrite(
    _ fd: Int32, _ buffer: UnsafeRawBufferPointer, at offset: Int, path: String? = nil
  ) throws(SystemCallError) {
    var done = 0
    while done < buffer.count {
      let count = try syscall("pwrite", path: path) {
        Glibc.pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
      }
      done += count
    }
  }

  /// Writes all of `bytes` at `offset`.
  static func pwrite(_ fd: Int32, _ bytes: [UInt8], at offset: Int, path: String? = nil) throws(SystemCallError) {
    var failure: SystemCallError?
    bytes.withUnsafeBytes { raw in
      do throws(SystemCallError) { try pwrite(fd, raw, at: offset, path: path) } catch { failure = error }
    }
    if let failure { throw failure }
  }

  static func rename(_ from: String, _ to: String) throws(SystemCallError) {
    _ = try syscall("rename", path: to) { Glibc.rename(from, to) }
  }

  /// Removes a file; a file already gone is not an error.
  static func unlink(_ path: String) throws(SystemCallError) {
    do throws(SystemCallError) {
      _ = try syscall("unlink", path: path) { Glibc.unlink(path) }
    } catch  where error.errno == ENOENT {}
  }

  /// Creates a directory; one already there is not an error (the caller checks what it is).
  static func mkdir(_ path: String, mode: mode_t) throws(SystemCallError) {
    do throws(SystemCallError) {
      _ = try syscall("mkdir", path: path) { Glibc.mkdir(path, mode) }
    } catch  where error.errno == EEXIST {}
  }

  /// Creates a directory and its missing parents, each with `mode`.
  static func makeDirectories(_ path: String, mode: mode_t) throws(SystemCallError) {
    var prefix = path.hasPrefix("/") ? "/" : ""
    for component in path.split(separator: "/") {
      prefix += component
      if try statIfPresent(prefix) == nil { try mkdir(prefix, mode: mode) }
      prefix += "/"
    }
  }

  /// The names in a directory, without "." and "..".
  static func listDirectory(_ path: String) throws(SystemCallError) -> [String] {
    guard let directory = opendir(path) else {
      throw SystemCallError(function: "opendir", errno: Glibc.errno, path: path)
    }
    defer { closedir(directory) }
    var names: [String] = []
    while true {
      Glibc.errno = 0
      guard let entry = readdir(directory) else {
        let error = Glibc.errno
        if error == 0 { break }
        if error == EINTR { continue }
        throw SystemCallError(function: "readdir", errno: error, path: path)
      }
      let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
        String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
      }
      if name != "." && name != ".." { names.append(name) }
    }
    return names
  }

  /// Sets the file's access and modification times to now.
  static func touch(_ fd: Int32, path: String? = nil) throws(SystemCallError) {
    _ = try syscall("futimens", path: path) { futimens(fd, nil) }
  }

  static func canWrite(_ path: String) -> Bool { access(path, W_OK | X_OK) == 0 }

  static var effectiveUserID: uid_t { geteuid() }
  static var processID: Int32 { getpid() }

  /// Whether a process with this id exists (it may belong to another user).
  static func processExists(_ pid: Int32) -> Bool {
    guard pid > 0 else { return false }
    return kill(pid, 0) == 0 || Glibc.errno == EPERM
  }

  /// Wall-clock seconds since the epoch.
  static func now() -> Int {
    var time = timespec()
    clock_gettime(CLOCK_REALTIME, &time)
    return time.tv_sec
  }

  static func isDirectory(_ info: stat) -> Bool { info.st_mode & S_IFMT == S_IFDIR }
  static func isRegularFile(_ info: stat) -> Bool { info.st_mode & S_IFMT == S_IFREG }
}

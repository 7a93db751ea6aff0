internal import CLinux
import Glibc
public import SystemPackage

/// This process's id (`getpid`).
public var currentProcessID: Int32 { getpid() }

/// The effective user's id (`geteuid`).
public var effectiveUserID: UserID { UserID(rawValue: geteuid()) }

/// Whether a process with this id exists, though it may belong to another user (`kill(pid, 0)`).
public func processExists(_ pid: Int32) -> Bool {
  guard pid > 0 else { return false }
  guard kill(pid, 0) == 0 || Glibc.errno == EPERM else { return false }
  // A process killed and not yet reaped (a zombie, state Z or X in /proc/PID/stat) runs no more.
  guard let file = try? FileSystem.open("/proc/\(pid)/stat", .readOnly) else { return true }
  defer { file.closeIgnoringErrors() }
  guard let stat = try? file.read(count: 1024, at: 0),
    let close = stat.lastIndex(of: UInt8(ascii: ")")), close + 2 < stat.count
  else { return true }
  let state = stat[close + 2]
  return state != UInt8(ascii: "Z") && state != UInt8(ascii: "X")
}

/// Marks the process not dumpable (`prctl(PR_SET_DUMPABLE, 0)`): no core dump, and its memory,
/// environment and maps under /proc become readable by root alone (proc(5)).
public func markProcessNotDumpable() throws(SystemCallError) {
  _ = try systemCall("prctl") { clinux_set_not_dumpable() }
}

/// The variable's value (`getenv`), or nil when it is unset or empty.
public func environmentValue(_ name: String) -> String? {
  getenv(name).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
}

/// `$HOME`, else the user's home in the password database (`getpwuid`), else "/".
public func homeDirectory() -> String {
  if let home = environmentValue("HOME") { return home }
  if let entry = getpwuid(getuid()), let directory = entry.pointee.pw_dir { return String(cString: directory) }
  return "/"
}

/// `path` made absolute against the working directory (`getcwd`); unchanged if that is unknown.
public func absolutePath(_ path: String) -> String {
  if path.hasPrefix("/") { return path }
  guard let cwd = getcwd(nil, 0) else { return path }
  defer { free(cwd) }
  return String(cString: cwd) + "/" + path
}

/// The first line written to `descriptor` (`poll`, `read`), or nil if none came within
/// `timeoutSeconds` or the writer closed it without a word.
public func readFirstLine(
  from descriptor: FileDescriptor, timeoutSeconds: Double, clock: some MonotonicClock = SystemClock()
)
  -> String?
{
  var collected = [UInt8]()
  let end = clock.now() + timeoutSeconds
  while true {
    let remaining = Int32(max(0, min((end - clock.now()) * 1000, Double(Int32.max))).rounded(.up))
    if remaining == 0 { return nil }
    var poller = pollfd(fd: descriptor.rawValue, events: Int16(POLLIN), revents: 0)
    let ready = poll(&poller, 1, remaining)
    if ready < 0 && Glibc.errno == EINTR { continue }
    if ready <= 0 { return nil }
    var buffer = [UInt8](repeating: 0, count: 4096)
    let count: Int
    do {
      count = try buffer.withUnsafeMutableBytes { try descriptor.read(into: $0) }
    } catch {
      break
    }
    if count == 0 { break }
    collected += buffer[..<count]
    if collected.contains(UInt8(ascii: "\n")) { break }
  }
  guard let line = collected.split(separator: UInt8(ascii: "\n")).first else { return nil }
  return String(decoding: line, as: UTF8.self)
}

/// Tells the service manager that started this process how it is, by systemd's notify protocol
/// (sd_notify(3)): `message` as one datagram to the Unix socket `$NOTIFY_SOCKET` names (a path, or
/// an abstract name after "@"). Does nothing, and returns false, when the variable is unset, as it
/// is outside a `Type=notify` service.
@discardableResult
public func notifyServiceManager(_ message: String) -> Bool {
  guard let target = environmentValue("NOTIFY_SOCKET"), target.hasPrefix("/") || target.hasPrefix("@") else {
    return false
  }
  var path = Array(target.utf8)
  if path.first == UInt8(ascii: "@") { path[0] = 0 }
  var address = sockaddr_un()
  address.sun_family = sa_family_t(AF_UNIX)
  let capacity = MemoryLayout.size(ofValue: address.sun_path)
  guard path.count < capacity else { return false }
  withUnsafeMutableBytes(of: &address.sun_path) { bytes in
    for (index, byte) in path.enumerated() { bytes[index] = byte }
  }
  let socketDescriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
  guard socketDescriptor >= 0 else { return false }
  defer { close(socketDescriptor) }
  let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count)
  let bytes = Array(message.utf8)
  let sent = withUnsafePointer(to: &address) { pointer in
    pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
      bytes.withUnsafeBytes {
        sendto(socketDescriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), socketAddress, length)
      }
    }
  }
  return sent == bytes.count
}

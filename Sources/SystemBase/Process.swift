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
  return kill(pid, 0) == 0 || Glibc.errno == EPERM
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

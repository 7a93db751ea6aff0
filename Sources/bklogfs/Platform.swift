import Glibc

/// Why `path` cannot be mounted on, or nil when it can: it must be an existing, empty directory.
func mountpointProblem(_ path: String) -> String? {
  var status = stat()
  guard stat(path, &status) == 0 else {
    return errno == ENOTCONN
      ? "\(path) is a mount whose filesystem has gone away; run fusermount3 -u \(path) first"
      : "the mountpoint \(path) does not exist"
  }
  guard (status.st_mode & S_IFMT) == S_IFDIR else { return "the mountpoint \(path) is not a directory" }
  guard let directory = opendir(path) else { return "cannot read the mountpoint \(path): \(lastError())" }
  defer { closedir(directory) }
  while let entry = readdir(directory) {
    let name = withUnsafeBytes(of: entry.pointee.d_name) {
      String(cString: $0.baseAddress!.assumingMemoryBound(to: CChar.self))
    }
    if name != "." && name != ".." { return "the mountpoint \(path) is not empty" }
  }
  return nil
}

func lastError() -> String { String(cString: strerror(errno)) }

func absolutePath(_ path: String) -> String {
  if path.hasPrefix("/") { return path }
  guard let cwd = getcwd(nil, 0) else { return path }
  defer { free(cwd) }
  return String(cString: cwd) + "/" + path
}

func environmentValue(_ name: String) -> String? {
  getenv(name).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
}

func homeDirectory() -> String {
  if let home = environmentValue("HOME") { return home }
  if let entry = getpwuid(getuid()), let directory = entry.pointee.pw_dir { return String(cString: directory) }
  return "/"
}

/// `$XDG_CACHE_HOME/bklogfs`, or `~/.cache/bklogfs`.
func defaultCacheDirectory() -> String {
  (environmentValue("XDG_CACHE_HOME") ?? homeDirectory() + "/.cache") + "/bklogfs"
}

/// `$XDG_STATE_HOME/bklogfs/bklogfs.log`, or `~/.local/state/bklogfs/bklogfs.log`.
func defaultLogPath() -> String {
  (environmentValue("XDG_STATE_HOME") ?? homeDirectory() + "/.local/state") + "/bklogfs/bklogfs.log"
}

/// Creates the directories above `path`, private to this user.
func makeParentDirectory(of path: String) throws {
  var components = path.split(separator: "/", omittingEmptySubsequences: true).dropLast()
  var current = path.hasPrefix("/") ? "" : "."
  while let next = components.first {
    components.removeFirst()
    current += "/" + next
    if mkdir(current, 0o700) != 0 && errno != EEXIST {
      throw MountFailure("cannot create the directory \(current): \(lastError())")
    }
  }
}

/// Runs `body` with `strings` as a NULL-terminated C array.
func withCStrings<Result>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> Result) -> Result {
  let pointers = strings.map { strdup($0) } + [nil]
  defer { pointers.forEach { free($0) } }
  return body(pointers)
}

/// The first line written to `descriptor`, or nil if none came within the timeout or the writer
/// closed it without a word.
func readReport(from descriptor: Int32, timeoutSeconds: Int32) -> String? {
  var collected = [UInt8]()
  var deadline = timespec()
  clock_gettime(CLOCK_MONOTONIC, &deadline)
  let end = deadline.tv_sec + Int(timeoutSeconds)
  while true {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    let remaining = Int32(max(0, end - now.tv_sec)) * 1000
    if remaining == 0 { return nil }
    var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
    let ready = poll(&poller, 1, remaining)
    if ready < 0 && errno == EINTR { continue }
    if ready <= 0 { return nil }
    var buffer = [UInt8](repeating: 0, count: 4096)
    let count = read(descriptor, &buffer, buffer.count)
    if count < 0 && errno == EINTR { continue }
    if count <= 0 { break }
    collected += buffer[..<count]
    if collected.contains(UInt8(ascii: "\n")) { break }
  }
  guard let line = collected.split(separator: UInt8(ascii: "\n")).first else { return nil }
  return String(decoding: line, as: UTF8.self)
}

/// How the daemon's malloc is set up, through glibc's tunables (read only when a process starts):
/// one arena grown by sbrk in 64 MiB steps and backed by transparent huge pages, with 1 MiB blocks
/// taken from it rather than mapped one by one, and freed memory kept for the next blocks.
///
/// Blocks are 1 MiB buffers written once each. With 4 KiB pages a cold read of 160 MiB costs 40,000
/// page faults, about 40% of the daemon's CPU time; with huge pages, 80 (doc/BENCHMARKS.md). glibc
/// versions before 2.35 ignore `hugetlb`; systems whose transparent huge pages are `never` ignore
/// the advice. Nothing is changed when the user already sets a `glibc.malloc` tunable.
let mallocTunables = [
  "glibc.malloc.hugetlb=1", "glibc.malloc.arena_max=1", "glibc.malloc.top_pad=67108864",
  "glibc.malloc.mmap_threshold=33554432", "glibc.malloc.trim_threshold=268435456",
]

/// Sets `mallocTunables` in this process's environment, for the processes it starts; returns
/// whether it changed anything.
func setMallocTunablesForChildren() -> Bool {
  let current = environmentValue("GLIBC_TUNABLES") ?? ""
  guard !current.contains("glibc.malloc.") else { return false }
  let value = ([current].filter { !$0.isEmpty } + mallocTunables).joined(separator: ":")
  return setenv("GLIBC_TUNABLES", value, 1) == 0
}

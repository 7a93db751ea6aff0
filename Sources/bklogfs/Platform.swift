import Glibc
import SystemBase
import SystemPackage

/// Why `path` cannot be mounted on, or nil when it can: it must be an existing, empty directory.
func mountpointProblem(_ path: String) -> String? {
  let status: Stat
  do {
    guard let found = try FileSystem.stat(path) else { return "the mountpoint \(path) does not exist" }
    status = found
  } catch {
    return error.errno == .socketNotConnected
      ? "\(path) is a mount whose filesystem has gone away; run fusermount3 -u \(path) first"
      : "the mountpoint \(path) does not exist"
  }
  guard status.type == .directory else { return "the mountpoint \(path) is not a directory" }
  do {
    guard try FileSystem.listDirectory(path).isEmpty else { return "the mountpoint \(path) is not empty" }
  } catch {
    return "cannot read the mountpoint \(path): \(error.reason)"
  }
  return nil
}

/// `$XDG_CACHE_HOME/bklogfs`, or `~/.cache/bklogfs`.
func defaultCacheDirectory() -> String {
  (environmentValue("XDG_CACHE_HOME") ?? homeDirectory() + "/.cache") + "/bklogfs"
}

/// `$XDG_STATE_HOME/bklogfs/bklogfs.log`, or `~/.local/state/bklogfs/bklogfs.log`.
func defaultLogPath() -> String {
  (environmentValue("XDG_STATE_HOME") ?? homeDirectory() + "/.local/state") + "/bklogfs/bklogfs.log"
}

/// Runs `body` with `strings` as a NULL-terminated C array.
func withCStrings<Result>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> Result) -> Result {
  let pointers = strings.map { strdup($0) } + [nil]
  defer { pointers.forEach { free($0) } }
  return body(pointers)
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

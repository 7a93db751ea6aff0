import ArgumentParser
import FuseAdapter
import Glibc

struct UnmountCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "unmount", abstract: "Unmounts a bklogfs mount (as fusermount3 -u does).")

  @Argument(help: "The directory a bklogfs filesystem is mounted on.", completion: .directory)
  var mountpoint: String

  @Flag(help: "Detach the mount even while files on it are open.")
  var lazy = false

  func run() throws {
    let arguments = ["fusermount3", lazy ? "-uz" : "-u", mountpoint]
    var child: pid_t = 0
    let spawned = withCStrings(arguments) { argv in posix_spawnp(&child, "fusermount3", nil, nil, argv, environ) }
    guard spawned == 0 else {
      throw MountFailure(
        "cannot run fusermount3 (\(String(cString: strerror(spawned)))); is the fuse3 package installed?")
    }
    var status: Int32 = 0
    while waitpid(child, &status, 0) < 0 && errno == EINTR {}
    // fusermount3 has already said why on standard error.
    if status != 0 { throw ExitCode.failure }
  }
}

struct StatsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "stats",
    abstract: "Prints a mount's counters as JSON: requests by kind, bytes fetched, cache hits and misses, retries.")

  @Argument(help: "The directory a bklogfs filesystem is mounted on.", completion: .directory)
  var mountpoint: String

  func run() throws {
    do throws(FuseError) {
      print(try readStatistics(mountpoint: mountpoint))
    } catch {
      throw MountFailure(error.description)
    }
  }
}

import ArgumentParser
import Glibc

@main
struct BKLogFS: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bklogfs",
    abstract: "Mounts Buildkite job logs as a read-only filesystem.",
    discussion: """
      Mount an S3 log archive (or a local directory with the same layout), then use grep, less, tail, \
      find and rsync on the logs. Reads are fetched lazily in ranges and kept in a local cache.
      """,
    subcommands: [
      MountCommand.self, UnmountCommand.self, StatsCommand.self, SyncCommand.self, RestoreCommand.self,
      WarmCommand.self, CacheCommand.self,
    ])

  /// Run as `mount.fuse.bklogfs` (mount(8) and /etc/fstab: `MountHelper`), the call becomes
  /// `bklogfs mount`; otherwise the command line is parsed as usual.
  static func main() {
    let program = CommandLine.arguments.first.map { String($0.split(separator: "/").last ?? "") } ?? ""
    guard MountHelper.programNames.contains(program) else { return main(nil) }
    let arguments: [String]?
    do {
      arguments = try MountHelper.arguments(Array(CommandLine.arguments.dropFirst()))
    } catch {
      exit(withError: error)
    }
    guard let arguments else { return }
    // The program again as `bklogfs mount …`, so that the mount (which starts itself again in the
    // background) sees the command line it was given.
    let argv = ["bklogfs", "mount"] + arguments
    var cArguments = argv.map { strdup($0) } + [nil]
    execv("/proc/self/exe", &cArguments)
    exit(withError: MountFailure("cannot run bklogfs mount: \(String(cString: strerror(errno)))"))
  }
}

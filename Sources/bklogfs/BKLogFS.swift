import ArgumentParser

@main
struct BKLogFS: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bklogfs",
    abstract: "Mounts Buildkite job logs as a read-only filesystem.",
    discussion: """
      Mount an S3 log archive (or a local directory with the same layout), then use grep, less, tail, \
      find and rsync on the logs. Reads are fetched lazily in ranges and kept in a local cache.
      """,
    subcommands: [MountCommand.self, UnmountCommand.self, StatsCommand.self, SyncCommand.self, RestoreCommand.self])
}

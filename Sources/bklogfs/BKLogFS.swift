import ArgumentParser

@main
struct BKLogFS: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bklogfs", abstract: "Mounts Buildkite job logs as a read-only filesystem.")
}

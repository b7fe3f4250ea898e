import ArgumentParser

@main
struct Ebb: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ebb",
        abstract: "A micro-VMM for Linux/x86-64 on KVM that gives freed guest memory back to the host.",
        subcommands: [Run.self],
        defaultSubcommand: Run.self)
}

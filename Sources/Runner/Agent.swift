/// The agent's entry point: parses the command line and returns a sysexits status.
enum Agent {
    static func main(arguments: [String]) -> Int32 {
        0
    }
}

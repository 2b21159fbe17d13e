#if canImport(Glibc)
import Glibc
#endif

exit(Agent.main(arguments: Array(CommandLine.arguments.dropFirst())))

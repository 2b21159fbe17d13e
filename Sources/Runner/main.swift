#if canImport(Glibc)
import Glibc
#endif
import Platform

// Before any other thread exists (Platform/Memory.swift says why).
Heap.useOneArena()
exit(Agent.main(arguments: Array(CommandLine.arguments.dropFirst())))

import Pipeline
import Testing
import TestSupport
@testable import Runner

/// Crashes found by following what the panel_response fuzz target's parsers accept into the code
/// that uses it (reliability/fuzz, docs/reliability.md "Fuzzing"): numbers the panel may send
/// that traps in the agent's arithmetic turned into a crash at every start.
@Suite struct FuzzFindingsTests {
    /// A valid command may say it expires at `Int64.max`; once answered, pruning its record added
    /// a day to that and trapped, at every start of the daemon.
    @Test func aCommandThatNeverExpiresIsKeptWithoutTrapping() throws {
        let store = CommandStore(stateDir: try TestEnvironment.makeTempDir("prune"))
        let record = CommandRecord(id: "cmd_forever", type: "resync", instance: nil, expiresAt: .max, phase: .done,
                                   startedAt: 10, result: CommandResult(status: .succeeded, startedAt: 10, finishedAt: 11,
                                                                        message: "ok"), reported: true)
        try store.save(record)
        store.prune(now: unixNow())
        #expect(store.exists("cmd_forever"))
        #expect(!CommandStore.isPastKeeping(record, now: .max))
    }
}

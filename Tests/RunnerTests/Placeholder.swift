import Testing
@Test func placeholderRunnerTests() { #expect(Bool(true)) }

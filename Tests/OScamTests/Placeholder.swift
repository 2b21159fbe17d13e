import Testing
@Test func placeholderOScamTests() { #expect(Bool(true)) }

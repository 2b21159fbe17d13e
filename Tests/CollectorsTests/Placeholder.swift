import Testing
@Test func placeholderCollectorsTests() { #expect(Bool(true)) }
